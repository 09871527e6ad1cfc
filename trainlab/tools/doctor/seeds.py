"""Check 3, seeds: the same seed gives the same run, another seed a different one.

Three short runs, each with a model built from scratch under its seed (as `trainlab run` builds
it) and trained on the same SEED_STEPS batches: seed s, seed s again, seed s + 1.
The first two must give bit-identical losses on a CPU; anything that draws random numbers outside
the seeded generators of Python, NumPy and torch (`np.random.default_rng()` or `os.urandom`
without a seed, a self-seeding `torch.Generator`) breaks that. The third must differ, or the
seed reaches neither the initial weights nor dropout. The loader is read twice too: the same
epoch must give the same first batch. A loss that turns NaN or infinite within those steps is
compared as it is (NaN repeats NaN), and the check warns: the steps from there say nothing, and
a loss that is not finite from the first step leaves nothing to compare.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch import nn

from trainlab.engine.device import Placement
from trainlab.engine.step import training_step
from trainlab.tools.doctor.checks import (
    FAIL, PASS, WARN, Batch, Check, LossFn, first_non_finite, fmt, non_finite_advice, seeded,
)  # fmt: skip

SEED_STEPS = 3  # training steps per run: enough for init, dropout and the optimizer's state to show
GPU_TOLERANCE = 1e-4  # relative loss difference a GPU's non-deterministic kernels may cause (cudnn.benchmark)


@dataclass
class Trial:
    """One short run, just built under its seed: a model, its optimizer, the loss, the batches to train on."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    loss_fn: LossFn
    batches: list[Batch]


def check_seeds(
    build: Callable[[int], Trial], seed: int, placement: Placement, loader: Iterable[Batch] | None = None
) -> Check:
    """Train `build(s)` (called with the generators seeded by s) for s = seed, seed, seed + 1."""
    first, again, other = (_losses(build, s, placement) for s in (seed, seed, seed + 1))
    differences = _differences(first, again)
    difference = differences.max().item()
    finite = first[first.isfinite()]
    relative = difference / finite.abs().max().clamp_min(1e-12).item() if len(finite) else difference
    evidence = {
        "seed": seed, "steps": len(first), "losses_seed": first.tolist(), "losses_seed_again": again.tolist(),
        "losses_seed_plus_1": other.tolist(), "same_seed_max_difference": difference,
    }  # fmt: skip
    repeats = _loader_repeats(loader) if loader is not None else None
    evidence["loader_repeats_epoch"] = repeats
    broken = first_non_finite(first.tolist())
    if broken is not None:  # the runs are compared step by step all the same: NaN where the other run has NaN is a repeat
        evidence |= {"non_finite_step": broken + 1, "non_finite_loss": first[broken].item()}

    if repeats is False:
        return Check("seeds", FAIL, "the loader gives a different first batch each time it is read",
                     "seed the loader's shuffling and augmentation from the run's seed and the epoch", evidence)  # fmt: skip
    if broken == 0:
        return Check("seeds", WARN, f"not applicable: the loss is {fmt(first[0].item())} from the first step, so the runs "
                     "cannot be told apart", non_finite_advice(1, None), evidence)  # fmt: skip
    if difference > 0:
        step = int(differences.gt(0).nonzero()[0]) + 1
        summary = f"seed {seed} twice: the losses differ from step {step} (by {difference:.3g})"
        if placement.device.type == "cuda" and relative < GPU_TOLERANCE:
            return Check("seeds", WARN, summary, "tiny differences come from the GPU's non-deterministic kernels; "
                         "torch.use_deterministic_algorithms(True) makes them bit-exact, slower", evidence)  # fmt: skip
        return Check("seeds", FAIL, summary,
                     "something draws random numbers the seed does not reach: np.random.default_rng() or os.urandom "
                     "without a seed, a torch.Generator seeded from the clock; draw from torch's global generator, or "
                     "seed your own from the run's seed", evidence)  # fmt: skip
    if not _differences(first, other).any():
        return Check("seeds", WARN, f"seeds {seed} and {seed + 1} give identical losses",
                     "the seed reaches neither the initial weights nor dropout: are the weights loaded from a file?",
                     evidence)  # fmt: skip
    summary = f"seed {seed} twice: identical losses over {len(first)} steps; seed {seed + 1} differs"
    if broken is not None:  # repeats, but on the steps before the loss blew up only
        return Check("seeds", WARN, summary + f"; but the loss is {fmt(first[broken].item())} from step {broken + 1}",
                     f"runs repeat up to step {broken}; {non_finite_advice(broken + 1, None)}", evidence)  # fmt: skip
    return Check("seeds", PASS, summary, "runs repeat: a difference between two configs is the configs, not luck", evidence)


def _differences(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """|a - b| per step (steps,): 0 where both are the same value, NaN and NaN included; inf where only one is finite."""
    same = (a == b) | (a.isnan() & b.isnan())
    return torch.where(same, 0.0, (a - b).abs().nan_to_num(nan=math.inf))


def _losses(build: Callable[[int], Trial], seed: int, placement: Placement) -> torch.Tensor:
    with seeded(seed):
        trial = build(seed)
        model = trial.model.train()
        losses = [training_step(model, trial.optimizer, trial.loss_fn, x, y, placement).loss.detach().float()
                  for x, y in trial.batches]
        return torch.stack(losses).cpu()


def _loader_repeats(loader: Iterable[Batch]) -> bool:
    """Whether reading epoch 0 twice gives the same first batch."""
    def first() -> Batch:
        if hasattr(loader, "set_epoch"):
            loader.set_epoch(0)
        return next(iter(loader))

    (x1, y1), (x2, y2) = first(), first()
    return torch.equal(x1, x2) and torch.equal(y1, y2)
