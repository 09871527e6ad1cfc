"""Check 6, the learning-rate range test (Smith, "Cyclical learning rates", 2015; fastai's lr_find).

The rate grows exponentially from LR_START to LR_END over LR_STEPS training steps, a new batch
each step. The raw loss is noisy, so it is smoothed with a bias-corrected exponential moving
average; the sweep stops once the smoothed loss exceeds DIVERGENCE_FACTOR times its lowest
value, is not finite, or, having fallen, is back at its starting level: Adam's huge steps
often kill every ReLU, and the loss then returns to an even guess instead of blowing up. The
rate where the sweep stopped is where the loss diverges.

Rule: the suggested rate is a tenth of the rate at the lowest smoothed loss ("min/10"). At the
minimum the loss is about to blow up; a decade lower it still falls quickly and stays stable.
It needs no derivative of a noisy curve, unlike "steepest descent", which jumps between
neighbouring dips.

The model's weights and buffers and the optimizer's state come back bit-identical afterwards,
and the sweep runs under its own seed, so it repeats and leaves other random streams alone.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from matplotlib.figure import Figure
from torch import nn

from trainlab.engine.device import Placement
from trainlab.tools.doctor.checks import FAIL, PASS, WARN, Batch, Check, LossFn, base_lr, fmt, new_figure, seeded, train_step

LR_START, LR_END = 1e-7, 10.0  # from surely too small to surely too large, for SGD and Adam alike
LR_STEPS = 100  # 12 steps per decade, fastai's default
SMOOTHING = 0.9  # EMA factor: ~10 steps, a bit more than a decade of rates; fastai's 0.98 lags 4 decades over 100 steps
DIVERGENCE_FACTOR = 4.0  # the smoothed loss at 4x its best: diverged, stop (fastai's criterion)
MIN_DROP = 0.02  # the smoothed loss must fall 2 % below its start (CIFAR's workshop CNN: ~4 %; the noise: < 0.5 %)
LR_TOLERANCE = 10.0  # a configured rate within 10x of the suggestion passes: the rule is good to about that
RULE = "min/10: a tenth of the rate at the lowest smoothed loss"


@dataclass
class LRSweep:
    lrs: list[float]
    losses: list[float]  # raw loss of each step
    smoothed: list[float]
    lr_at_min: float
    suggested: float
    diverged_at: float | None  # the rate from which the loss diverges; None: not within the sweep
    fell: bool  # whether the smoothed loss fell by MIN_DROP at all
    rule: str = RULE


def find_lr(
    model: nn.Module, optimizer: torch.optim.Optimizer, loss_fn: LossFn, batches: Iterable[Batch], placement: Placement,
    *, seed: int, start: float = LR_START, end: float = LR_END, steps: int = LR_STEPS,
) -> LRSweep:  # fmt: skip
    """Sweep the rate of `optimizer` on `model` over `steps` batches; both are restored afterwards."""
    saved_model, saved_optimizer = copy.deepcopy(model.state_dict()), copy.deepcopy(optimizer.state_dict())
    was_training = model.training
    growth = (end / start) ** (1 / (steps - 1))
    lrs: list[float] = []
    losses: list[float] = []
    smoothed: list[float] = []
    average, best, diverged_at = 0.0, math.inf, None
    try:
        with seeded(seed):
            model.train()
            for step, (inputs, targets) in zip(range(steps), batches):
                lr = start * growth**step
                for group in optimizer.param_groups:
                    group["lr"] = lr
                loss = train_step(model, optimizer, loss_fn, inputs, targets, placement).item()
                average = SMOOTHING * average + (1 - SMOOTHING) * loss
                lrs.append(lr)
                losses.append(loss)
                smoothed.append(average / (1 - SMOOTHING ** (step + 1)))  # bias correction: the average starts at 0
                best = min(best, smoothed[-1])
                if _diverged(smoothed[-1], best, _start_level(losses)):
                    diverged_at = lr
                    break
    finally:
        model.load_state_dict(saved_model)
        optimizer.load_state_dict(saved_optimizer)
        model.train(was_training)
    lowest = min(range(len(smoothed)), key=lambda i: smoothed[i] if math.isfinite(smoothed[i]) else math.inf)
    fell = smoothed[lowest] < (1 - MIN_DROP) * _start_level(losses)
    return LRSweep(lrs, losses, smoothed, lrs[lowest], lrs[lowest] / 10, diverged_at, fell)


def _start_level(losses: list[float]) -> float:
    """The loss before the sweep changes anything: the mean of its first steps, whose rates are far too small."""
    return sum(losses[:5]) / len(losses[:5])


def _diverged(smoothed: float, best: float, start: float) -> bool:
    """Not finite, DIVERGENCE_FACTOR x the best so far, or back at the starting level after falling below it."""
    fell = best < (1 - MIN_DROP) * start
    return not math.isfinite(smoothed) or smoothed > DIVERGENCE_FACTOR * best or (fell and smoothed >= start)


def check_lr(
    model: nn.Module, optimizer: torch.optim.Optimizer, loss_fn: LossFn, batches: Iterable[Batch], placement: Placement,
    seed: int,
) -> Check:  # fmt: skip
    """Run the range test and compare the optimizer's configured rate with the suggestion."""
    configured = base_lr(optimizer)
    sweep = find_lr(model, optimizer, loss_fn, batches, placement, seed=seed)
    evidence = {
        "configured_lr": configured, "suggested_lr": sweep.suggested, "rule": sweep.rule, "lr_at_min": sweep.lr_at_min,
        "diverged_at": sweep.diverged_at, "loss_fell": sweep.fell, "steps": len(sweep.lrs),
        "sweep": {"lr": sweep.lrs, "loss": sweep.losses, "smoothed": sweep.smoothed},
    }  # fmt: skip
    figures = {"lr_finder": sweep_figure(sweep, configured)}
    summary = f"suggested {fmt(sweep.suggested)} (min/10), configured {fmt(configured)}"
    if sweep.diverged_at is not None:
        summary += f", diverges from {fmt(sweep.diverged_at)}"
    ratio, suggestion = configured / sweep.suggested, f"optimizer.lr={fmt(sweep.suggested)}"
    if sweep.diverged_at is not None and configured >= sweep.diverged_at:
        status, advice = FAIL, f"the configured rate is past the point where the loss diverges: try {suggestion}"
    elif not sweep.fell:
        status = WARN
        advice = "the loss did not fall at any rate of the sweep: the model is stuck; see the overfit and health checks"
    elif ratio > LR_TOLERANCE:
        status, advice = WARN, f"the configured rate is {ratio:.0f}x the suggestion: try {suggestion}"
    elif ratio < 1 / LR_TOLERANCE:
        status, advice = WARN, f"the configured rate is {1 / ratio:.0f}x below the suggestion, training will crawl: try {suggestion}"
    else:
        status, advice = PASS, f"the configured rate is within {LR_TOLERANCE:.0f}x of the suggestion"
    return Check("lr", status, summary, advice, evidence, figures)


def sweep_figure(sweep: LRSweep, configured: float | None = None) -> Figure:
    """Loss against learning rate (log axis): raw and smoothed, the lowest point and the suggestion."""
    fig = new_figure(7, 4)
    ax = fig.subplots()
    ax.plot(sweep.lrs, sweep.losses, color="tab:blue", alpha=0.3, label="loss")
    ax.plot(sweep.lrs, sweep.smoothed, color="tab:blue", label="smoothed loss")
    lowest = sweep.lrs.index(sweep.lr_at_min)
    ax.plot([sweep.lr_at_min], [sweep.smoothed[lowest]], "o", color="tab:red", label=f"lowest at {fmt(sweep.lr_at_min)}")
    ax.axvline(sweep.suggested, color="tab:green", label=f"suggested {fmt(sweep.suggested)} (min/10)")
    if configured is not None:
        ax.axvline(configured, color="0.4", linestyle="--", label=f"configured {fmt(configured)}")
    finite = [v for v in sweep.smoothed if math.isfinite(v)]
    ax.set_ylim(min(finite) * 0.9, min(max(finite), 2 * finite[0]) * 1.1)  # the divergence would squash the rest
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss")
    ax.set_title("learning-rate range test")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return fig
