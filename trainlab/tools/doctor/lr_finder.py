"""Check 6, the learning-rate range test (Smith, "Cyclical learning rates", 2015; fastai's lr_find).

The rate grows exponentially from LR_START to LR_END over LR_STEPS training steps, a new batch
each step. The raw loss is noisy, so it is smoothed with a bias-corrected exponential moving
average; the sweep stops once the smoothed loss exceeds DIVERGENCE_FACTOR times its lowest
value, is not finite, or, having fallen, is back at its starting level: Adam's huge steps
often kill every ReLU, and the loss then returns to an even guess instead of blowing up. The
rate where the sweep stopped is where the loss diverges.

"Fallen" means below the starting level by MIN_DROP and by more than the noise: batches of a few rows of
a regression table give losses that differ by a third from batch to batch, whose smoothed curve dips 15 %
at rates far too small to matter. The noise is measured from the sweep itself (the median difference of
consecutive raw losses), and a drop must exceed NOISE_MARGIN times the noise of the smoothed loss minus
the starting level.

Rule: the suggested rate is a tenth of the rate at the lowest smoothed loss ("min/10"). At the
minimum the loss is about to blow up; a decade lower it still falls quickly and stays stable.
It needs no derivative of a noisy curve, unlike "steepest descent", which jumps between
neighbouring dips.

A configured rate above LR_END extends the sweep, at the same steps per decade, to LR_BEYOND
times that rate, so the test says whether the configured rate diverges. A loss that is NaN or
infinite within the first START_STEPS steps blows up at rates far too small to matter: the model
or the loss overflows, and there is no rate to suggest.

The model's weights and buffers and the optimizer's state come back bit-identical afterwards,
and the sweep runs under its own seed, so it repeats and leaves other random streams alone.
"""

from __future__ import annotations

import copy
import math
import statistics
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from matplotlib.figure import Figure
from torch import nn

from trainlab.engine.device import Placement
from trainlab.engine.step import training_step
from trainlab.tools.doctor.checks import (
    FAIL, PASS, WARN, Batch, Check, LossFn, base_lr, first_non_finite, fmt, new_figure, non_finite_advice, seeded,
)  # fmt: skip

LR_START, LR_END = 1e-7, 10.0  # from surely too small to surely too large, for SGD and Adam alike
LR_STEPS = 100  # 12 steps per decade, fastai's default
LR_BEYOND = 10.0  # a configured rate above LR_END: the sweep runs on to 10x it, the smoothed loss lags about a decade
START_STEPS = 5  # the first steps, at rates far too small to change anything: the loss's starting level
SMOOTHING = 0.9  # EMA factor: ~10 steps, a bit more than a decade of rates; fastai's 0.98 lags 4 decades over 100 steps
DIVERGENCE_FACTOR = 4.0  # the smoothed loss at 4x its best: diverged, stop (fastai's criterion)
MIN_DROP = 0.02  # the smoothed loss must fall 2 % below its start (CIFAR's workshop CNN: ~4 %; the noise: < 0.5 %)
NOISE_MARGIN = 3.0  # and by 3 standard deviations of the smoothed loss's difference from the starting level
LR_TOLERANCE = 10.0  # a configured rate within 10x of the suggestion passes: the rule is good to about that
RULE = "min/10: a tenth of the rate at the lowest smoothed loss"


@dataclass
class LRSweep:
    lrs: list[float]
    losses: list[float]  # raw loss of each step
    smoothed: list[float]
    lr_at_min: float | None  # None: no finite loss before the sweep diverged
    suggested: float | None
    diverged_at: float | None  # the rate from which the loss diverges; None: not within the sweep
    fell: bool  # whether the smoothed loss fell below its start by MIN_DROP and beyond the noise
    noise: float = 0.0  # the raw loss's standard deviation from batch to batch, as measured
    rule: str = RULE

    @property
    def non_finite_step(self) -> int | None:
        """The step (1-based) whose raw loss is NaN or infinite (the sweep stops there); None if every loss is finite."""
        broken = first_non_finite(self.losses)
        return None if broken is None else broken + 1

    @property
    def blew_up_at_start(self) -> bool:
        """NaN or infinite within the first START_STEPS steps, at rates far too small for the rate to be the cause."""
        return self.non_finite_step is not None and self.non_finite_step <= START_STEPS


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
                loss = training_step(model, optimizer, loss_fn, inputs, targets, placement).loss.item()
                average = SMOOTHING * average + (1 - SMOOTHING) * loss
                lrs.append(lr)
                losses.append(loss)
                smoothed.append(average / (1 - SMOOTHING ** (step + 1)))  # bias correction: the average starts at 0
                best = min(best, smoothed[-1])
                if _diverged(smoothed[-1], best, losses):
                    diverged_at = lr
                    break
    finally:
        model.load_state_dict(saved_model)
        optimizer.load_state_dict(saved_optimizer)
        model.train(was_training)
    finite = [i for i, v in enumerate(smoothed) if math.isfinite(v)]
    if not finite:
        return LRSweep(lrs, losses, smoothed, None, None, diverged_at, fell=False)
    lowest = min(finite, key=smoothed.__getitem__)
    noise = _loss_noise(losses)
    fell = _fell(smoothed[lowest], _start_level(losses), noise)
    return LRSweep(lrs, losses, smoothed, lrs[lowest], lrs[lowest] / 10, diverged_at, fell, noise=noise)


def sweep_end(configured: float) -> tuple[float, int]:
    """The sweep's last rate and its step count: LR_END in LR_STEPS, or on to LR_BEYOND x a rate above LR_END."""
    end = LR_BEYOND * configured if configured > LR_END else LR_END
    return end, round(LR_STEPS * math.log(end / LR_START) / math.log(LR_END / LR_START))


def _start_level(losses: list[float]) -> float:
    """The loss before the sweep changes anything: the mean of its first steps, whose rates are far too small."""
    return sum(losses[:START_STEPS]) / len(losses[:START_STEPS])


def _loss_noise(losses: list[float]) -> float:
    """The raw loss's standard deviation from batch to batch: the median absolute difference of consecutive finite
    losses over 0.954 (its value for Gaussian noise), which a trend or a blow-up hardly moves; 0 before 3 steps."""
    steps = [abs(b - a) for a, b in zip(losses, losses[1:]) if math.isfinite(a) and math.isfinite(b)]
    return statistics.median(steps) / 0.954 if len(steps) >= 2 else 0.0


def _fell(smoothed: float, start: float, noise: float) -> bool:
    """Below the starting level by MIN_DROP, and by NOISE_MARGIN x the noise of (smoothed loss - starting level):
    the starting level is a mean of START_STEPS losses, the smoothed loss an EMA of about (1+s)/(1-s) of them."""
    spread = noise * math.sqrt(1 / START_STEPS + (1 - SMOOTHING) / (1 + SMOOTHING))
    return smoothed < start - max(MIN_DROP * start, NOISE_MARGIN * spread)


def _diverged(smoothed: float, best: float, losses: list[float]) -> bool:
    """Not finite, DIVERGENCE_FACTOR x the best so far, or back at the starting level after falling below it (once
    the starting level is measured: its first START_STEPS losses are the level itself)."""
    if not math.isfinite(smoothed) or smoothed > DIVERGENCE_FACTOR * best:
        return True
    start = _start_level(losses)
    return len(losses) > START_STEPS and _fell(best, start, _loss_noise(losses)) and smoothed >= start


def check_lr(
    model: nn.Module, optimizer: torch.optim.Optimizer, loss_fn: LossFn, batches: Iterable[Batch], placement: Placement,
    seed: int,
) -> Check:  # fmt: skip
    """Run the range test and compare the optimizer's configured rate with the suggestion."""
    configured = base_lr(optimizer)
    end, steps = sweep_end(configured)
    sweep = find_lr(model, optimizer, loss_fn, batches, placement, seed=seed, end=end, steps=steps)
    evidence = {
        "configured_lr": configured, "suggested_lr": sweep.suggested, "rule": sweep.rule, "lr_at_min": sweep.lr_at_min,
        "diverged_at": sweep.diverged_at, "loss_fell": sweep.fell, "loss_noise": sweep.noise, "steps": len(sweep.lrs),
        "sweep_end": end,
        "sweep": {"lr": sweep.lrs, "loss": sweep.losses, "smoothed": sweep.smoothed},
    }  # fmt: skip
    broken = sweep.non_finite_step
    if broken is not None:
        evidence |= {"non_finite_step": broken, "non_finite_loss": sweep.losses[-1], "non_finite_lr": sweep.lrs[-1]}
    figures = {"lr_finder": sweep_figure(sweep, configured)}
    if sweep.suggested is None or sweep.blew_up_at_start:
        step, value = len(sweep.lrs), sweep.losses[-1]
        summary = f"the loss is {fmt(value)} at step {step} of the sweep, at lr {fmt(sweep.lrs[-1])}: no rate to suggest"
        advice = non_finite_advice(1, None) if step == 1 else (
            "the loss blows up at rates far too small to matter, so the rate is not the cause: the model's output or "
            "the loss overflows; look in the forward for an exp, a log of 0 or a division, and at the init scale"
        )  # fmt: skip
        return Check("lr", FAIL, summary, advice, evidence, figures)
    summary = f"suggested {fmt(sweep.suggested)} (min/10), configured {fmt(configured)}"
    if sweep.diverged_at is not None:
        summary += f", diverges from {fmt(sweep.diverged_at)}"
    if broken is not None:
        summary += f" (loss {fmt(sweep.losses[-1])} at lr {fmt(sweep.lrs[-1])})"
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
    """Loss against learning rate (log axis): raw and smoothed, the lowest point, the suggestion, the divergence.

    NaN and infinite losses are left out of the lines (matplotlib takes no infinite axis limit)."""
    fig = new_figure(7, 4)
    ax = fig.subplots()
    marker = "o" if len(sweep.lrs) <= START_STEPS else None  # a line of one point is invisible
    for values, alpha, label in ((sweep.losses, 0.3, "loss"), (sweep.smoothed, 1.0, "smoothed loss")):
        shown = [v if math.isfinite(v) else math.nan for v in values]
        ax.plot(sweep.lrs, shown, color="tab:blue", alpha=alpha, marker=marker, label=label)
    if sweep.lr_at_min is not None and sweep.suggested is not None:
        lowest = sweep.lrs.index(sweep.lr_at_min)
        ax.plot([sweep.lr_at_min], [sweep.smoothed[lowest]], "o", color="tab:red", label=f"lowest at {fmt(sweep.lr_at_min)}")
        ax.axvline(sweep.suggested, color="tab:green", label=f"suggested {fmt(sweep.suggested)} (min/10)")
    if sweep.diverged_at is not None:
        ax.axvline(sweep.diverged_at, color="tab:red", linestyle=":", label=f"diverged from {fmt(sweep.diverged_at)}")
    if configured is not None:
        ax.axvline(configured, color="0.4", linestyle="--", label=f"configured {fmt(configured)}")
    finite = [v for v in sweep.smoothed if math.isfinite(v)]
    low, high = (min(finite) * 0.9, min(max(finite), 2 * finite[0]) * 1.1) if finite else (0, 0)
    if low < high:
        ax.set_ylim(low, high)  # the divergence would squash the rest
    if not finite:
        ax.text(0.5, 0.5, f"the loss is {fmt(sweep.losses[0])} from the first step", transform=ax.transAxes, ha="center",
                color="tab:red")  # fmt: skip
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss")
    ax.set_title("learning-rate range test")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return fig
