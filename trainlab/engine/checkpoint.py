"""Checkpoints: everything needed to continue a run bit-for-bit, loadable with weights_only=True."""

from __future__ import annotations

import pickle
import random
import zipfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from trainlab.errors import DataError, UsageError
from trainlab.utils.io import atomic_path

if TYPE_CHECKING:
    from trainlab.engine.loop import Callback, Trainer

FORMAT = "trainlab-checkpoint/1"


def rng_state() -> dict[str, Any]:
    _, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss = random.getstate()
    return {
        "python": [version, list(internal), gauss],
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos), "has_gauss": int(has_gauss),
                  "cached_gaussian": float(cached)},
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }  # fmt: skip


def set_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def state_keys(callbacks: Sequence[Callback]) -> list[str]:
    """The checkpoint key of each callback: its class name, then `Name#2`, `Name#3` for later instances of that class.

    The first instance keeps the bare class name, so checkpoints written before keys were numbered still restore."""
    seen: Counter[str] = Counter()
    keys = []
    for callback in callbacks:
        name = type(callback).__name__
        seen[name] += 1
        keys.append(name if seen[name] == 1 else f"{name}#{seen[name]}")
    return keys


def save_checkpoint(path: Path, trainer: Trainer, config: dict[str, Any], model_file: dict[str, str] | None = None) -> None:
    """`model_file`: the path and hash of the user's file the model is built from (see trainlab.models.user)."""
    state = {
        "format": FORMAT,
        "config": config,
        **({"model_file": model_file} if model_file else {}),
        "model": trainer.model.state_dict(),
        "optimizer": trainer.optimizer.state_dict(),
        "trainer": {"epoch": trainer.epoch, "global_step": trainer.global_step, "history": trainer.history,
                    "world_size": trainer.dist.world_size if trainer.dist is not None else 1},
        "callbacks": {key: cb.state_dict() for key, cb in zip(state_keys(trainer.callbacks), trainer.callbacks)},
        "rng": rng_state(),
    }
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        try:
            torch.save(state, f)  # a Python file, so that a failed write keeps its OSError (ENOSPC) as the cause
        except RuntimeError as e:
            if isinstance(e.__context__, OSError):
                raise e.__context__ from None
            raise


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a checkpoint safely (weights_only); a missing or corrupt file is a clear error."""
    if not path.is_file():
        raise UsageError(f"checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, zipfile.BadZipFile, EOFError, ValueError, OSError) as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DataError(f"{path}: not a readable checkpoint, the file is corrupt or truncated ({reason[:200]})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise DataError(f"{path}: not a trainlab checkpoint (expected format {FORMAT})")
    return state


def restore(trainer: Trainer, state: dict[str, Any]) -> None:
    """Put a trainer back where `state` left it: weights, optimizer, callbacks, counters, RNG."""
    trainer.model.load_state_dict(state["model"])
    trainer.optimizer.load_state_dict(state["optimizer"])
    trainer.epoch = state["trainer"]["epoch"]
    trainer.global_step = state["trainer"]["global_step"]
    trainer.history = list(state["trainer"]["history"])
    for key, cb in zip(state_keys(trainer.callbacks), trainer.callbacks):
        if key in state["callbacks"]:
            cb.load_state_dict(state["callbacks"][key])
    set_rng_state(state["rng"])
