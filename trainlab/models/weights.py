"""Loading a published weights file into a model, with errors a user can act on.

Files are read with `torch.load(weights_only=True)`: a weights file is data, and a pickle that would run
code is refused, not executed. The keys and shapes are checked before anything is copied, so a file for
another architecture names the first key that differs instead of failing half-way through the model.
"""

from __future__ import annotations

import hashlib
import pickle
import re
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor, nn

from trainlab.errors import UsageError

# torchvision's (and torch.hub's) convention: name-<first hex digits of the file's SHA-256>.ext
_HASH_PREFIX = re.compile(r".+-([0-9a-f]{8,64})\.[A-Za-z]+")
_CHUNK = 1 << 20  # hash in 1 MiB pieces: weights files run to hundreds of MB


def load_imagenet_weights(model: nn.Module, path: str | Path) -> nn.Module:
    """Copy the state dict in `path` into `model`, every key and shape matching (strict); returns `model`.

    Raises UsageError naming the file, and for a mismatch the first differing key with both shapes.
    """
    path = Path(path)
    state = read_state_dict(path)
    problem = first_mismatch(model.state_dict(), state)
    if problem:
        raise UsageError(f"{path} does not fit {type(model).__name__}: {problem}")
    model.load_state_dict(state, strict=True)
    return model


def read_state_dict(path: Path) -> dict[str, Tensor]:
    """The tensors saved in `path`, read without running any code the file may hold."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except OSError as e:  # no such file, a folder, no permission
        raise UsageError(f"cannot read weights file {path}: {e.strerror or e}") from None
    except pickle.UnpicklingError as e:
        if str(e).startswith("Weights only load failed"):
            raise UsageError(
                f"{path} holds code, not a plain state dict of tensors; trainlab loads weights with "
                f"torch.load(weights_only=True) and will not run it. Save the weights with "
                f"torch.save(model.state_dict(), path)"
            ) from None
        raise _corrupt(path) from None
    except (RuntimeError, EOFError, ValueError, KeyError, IndexError, TypeError):  # what a cut or garbled file gives
        raise _corrupt(path) from None
    if not isinstance(state, Mapping):
        raise UsageError(f"{path} holds a {type(state).__name__}, not a state dict (a mapping of names to tensors)")
    for key, value in state.items():
        if not isinstance(value, Tensor):
            kind = type(value).__name__
            raise UsageError(f"{path} is not a plain state dict: its entry {key!r} is a {kind}, not a tensor")
    return dict(state)


def _corrupt(path: Path) -> UsageError:
    return UsageError(f"{path} is not a readable PyTorch weights file (truncated or corrupt?)")


def first_mismatch(expected: Mapping[str, Tensor], given: Mapping[str, Tensor]) -> str | None:
    """The first key, in the model's order, that is missing from `given` or has another shape, else the first
    key of `given` the model lacks, as a sentence with both shapes; None when the two match key for key."""
    problems = [
        f"the model's {key} {_shape(tensor)} is missing from the file" if key not in given
        else f"{key} is {_shape(given[key])} in the file but {_shape(tensor)} in the model"
        for key, tensor in expected.items()
        if key not in given or given[key].shape != tensor.shape
    ]  # fmt: skip
    problems += [f"the file's {key} {_shape(given[key])} is not in the model" for key in given if key not in expected]
    if not problems:
        return None
    more = len(problems) - 1
    return problems[0] + (f" (and {more} more mismatching key{'s' * (more > 1)})" if more else "")


def _shape(tensor: Tensor) -> str:
    return f"[{', '.join(map(str, tensor.shape))}]"


def check_hash_prefix(path: str | Path) -> None:
    """For a file named like torchvision's `name-<hex>.pth`, check that its SHA-256 starts with those digits:
    a cut download or a renamed file is caught before it loads. Files named otherwise are not checked."""
    path = Path(path)
    match = _HASH_PREFIX.fullmatch(path.name)
    if not match:
        return
    expected = match.group(1)
    digest = hashlib.sha256()
    try:
        with path.open("rb") as file:
            while chunk := file.read(_CHUNK):
                digest.update(chunk)
    except OSError as e:
        raise UsageError(f"cannot read weights file {path}: {e.strerror or e}") from None
    actual = digest.hexdigest()[: len(expected)]
    if actual != expected:
        raise UsageError(
            f"{path}: its name says its SHA-256 starts with {expected}, but it starts with {actual}; "
            f"the file is incomplete or not the one its name says (download it again)"
        )
