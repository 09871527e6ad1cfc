"""Check 8, curve diagnosis: what the per-epoch losses of a run say, with the epochs that show it.

Works on rows shaped like metrics.csv (epoch, train_loss, val_loss, ...): a finished run
folder's, or those of the short run doctor makes. `chance` is the loss of an even guess (ln C
for cross-entropy); without it, the first epoch's train loss stands in.

- divergence: a loss that is not finite, a train loss that climbs back above DIVERGENCE_RISE x
  its lowest, one that ends above the chance loss by that factor, or one that blew up in some
  epoch, even if it came back: above DIVERGENCE_RISE x its first step's loss (or chance, if
  higher) when the run says where it started (the short run does), else above BLOWUP_FACTOR x
  chance; one epoch is enough to read a divergence from;
- overfitting: the validation loss rises OVERFIT_RISE above its best while the train loss keeps
  falling, so the gap between them grows;
- underfitting: the train loss ends above UNDERFIT_FRACTION of chance and validation is no worse
  (both high, no gap); not judged on a short run, which is meant to end early;
- plateau: PLATEAU_EPOCHS or more epochs in a row in which the train loss improves on its best
  by under PLATEAU_IMPROVEMENT, while still above PLATEAU_FLOOR of chance (not converged);
- noisy: the train loss rises from one epoch to the next by over NOISE_RISE in at least
  NOISY_SHARE of the epochs.

The figure leaves NaN and infinite values out of the lines (a dotted red line marks the epoch
from which the train loss is not finite) and puts the loss on a log axis when a blow-up spans
more than LOG_AXIS_SPAN.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from matplotlib.figure import Figure

from trainlab.evaluation.plots import curves_figure
from trainlab.tools.doctor.checks import FAIL, PASS, WARN, Check, fmt, non_finite_advice, worst
from trainlab.utils.records import to_float

DIVERGENCE_RISE = 1.5  # the train loss back at 1.5x its lowest: the optimizer is throwing away what it learned
BLOWUP_FACTOR = 10.0  # an epoch's mean train loss at 10x an even guess's: steps threw the weights far off (a hot init
# starts a few x above it, and the first step's loss, which would tell the two apart, is not in metrics.csv)
OVERFIT_RISE = 0.1  # validation loss 10 % above its best, with the train loss still falling
UNDERFIT_FRACTION = 0.5  # a train loss still above half the chance loss at the end of a full run
UNDERFIT_GAP = 0.1  # validation at most 10 % above train: "no gap"
PLATEAU_EPOCHS = 3  # epochs in a row without progress; fewer is ordinary noise
PLATEAU_IMPROVEMENT = 0.01  # under 1 % better than the best so far counts as no progress
PLATEAU_FLOOR = 0.05  # below 5 % of chance the loss has converged; flat there is not a plateau
NOISE_RISE = 0.02  # an epoch whose train loss is 2 % above the previous one's
NOISY_SHARE = 0.25  # a quarter of the epochs rising; an epoch-averaged train loss should nearly always fall
NOISY_MIN_RISES = 2
LOG_AXIS_SPAN = 100.0  # finite losses spanning over two decades (a blow-up) are drawn on a log axis

_COLORS = {"failure": "tab:red", "divergence": "tab:red", "overfitting": "tab:orange", "underfitting": "tab:purple",
           "plateau": "tab:gray", "noisy": "tab:olive"}  # fmt: skip


@dataclass
class Finding:
    diagnosis: str  # failure | divergence | overfitting | underfitting | plateau | noisy
    status: str
    epochs: list[int]  # the epochs that show it
    detail: str
    advice: str


@dataclass
class Curves:
    """A run's losses per epoch, and what the advice may name."""

    epochs: list[int]
    train: list[float]
    val: list[float]  # all NaN when the run had no validation split
    chance: float | None  # the loss of an even guess
    lr: float | None
    batch_size: int | None
    start: float | None = None  # the loss of the first step, before any update (a short run's)

    @property
    def reference(self) -> float:
        """What "high" is measured against: the chance loss, else the first epoch's train loss."""
        return self.chance if self.chance is not None else self.train[0]

    def lower_lr(self, factor: int) -> str:
        return f"optimizer.lr={fmt(self.lr / factor)}" if self.lr else f"a learning rate {factor}x lower"


def diagnose(
    history: Sequence[Mapping[str, Any]], chance: float | None = None, *, short_run: bool = False,
    lr: float | None = None, batch_size: int | None = None, start: float | None = None,
) -> list[Finding]:  # fmt: skip
    """The findings, worst first. `lr` and `batch_size` (the run's) make the advice concrete; `start`, the loss
    of the first step (before any update), shows an epoch whose loss rose above it."""
    curves = Curves(
        epochs=[int(to_float(row.get("epoch", i + 1))) for i, row in enumerate(history)],
        train=[to_float(row.get("train_loss")) for row in history],
        val=[to_float(row.get("val_loss")) for row in history],
        chance=chance, lr=lr, batch_size=batch_size, start=start,
    )  # fmt: skip
    divergence = _divergence(curves)
    if divergence:
        return [divergence]  # the other diagnoses describe a run that learns
    found = [_overfitting(curves), None if short_run else _underfitting(curves), _plateau(curves), _noisy(curves)]
    return [finding for finding in found if finding is not None]


def _divergence(c: Curves) -> Finding | None:
    advice = f"lower the rate ({c.lower_lr(10)}), add warmup or clip gradients (regularization.clip_grad_norm=1)"
    broken = next((i for i, v in enumerate(c.train) if not math.isfinite(v)), None)
    if broken is not None:
        detail = f"the train loss is {c.train[broken]} from epoch {c.epochs[broken]}"
        return Finding("divergence", FAIL, c.epochs[broken:], detail, advice)
    lowest = min(range(len(c.train)), key=c.train.__getitem__)
    above_chance = c.chance is not None and c.train[-1] > DIVERGENCE_RISE * c.chance
    if c.train[-1] > DIVERGENCE_RISE * c.train[lowest]:
        rising = next(i for i in range(lowest, len(c.train)) if c.train[i] > DIVERGENCE_RISE * c.train[lowest])
        detail = f"the train loss climbs from {fmt(c.train[lowest])} (epoch {c.epochs[lowest]}) to {fmt(c.train[-1])}"
        if above_chance:
            detail += f", above an even guess's {fmt(c.chance)}"
        return Finding("divergence", FAIL, c.epochs[rising:], detail, advice)
    peak = max(range(len(c.train)), key=c.train.__getitem__)
    if above_chance:  # it never came down to an even guess
        high = [c.epochs[i] for i, v in enumerate(c.train) if v > DIVERGENCE_RISE * c.chance]
        peaked = ""
        if c.train[peak] > DIVERGENCE_RISE * c.train[-1]:  # it came down from a blow-up, not enough
            peaked = f" after {fmt(c.train[peak])} in epoch {c.epochs[peak]}"
        detail = (f"the train loss ends at {fmt(c.train[-1])}{peaked}, {c.train[-1] / c.chance:.3g}x an even guess's "
                  f"{fmt(c.chance)}")  # fmt: skip
        return Finding("divergence", FAIL, high, detail, advice)
    if c.start is not None and math.isfinite(c.start):  # a short run: it knows where the loss started
        ceiling, rose = DIVERGENCE_RISE * max(c.start, c.chance or 0.0), f"from {fmt(c.start)} at the first step"
    elif c.chance is not None:
        ceiling = BLOWUP_FACTOR * c.chance
        rose = f"{c.train[peak] / c.chance:.3g}x an even guess's {fmt(c.chance)}"
    else:
        return None
    blown = [c.epochs[i] for i, v in enumerate(c.train) if v > ceiling]
    if not blown:
        return None
    detail = (f"the train loss blew up to {fmt(c.train[peak])} in epoch {c.epochs[peak]}, {rose}, before it came back "
              f"to {fmt(c.train[-1])}")  # fmt: skip
    return Finding("divergence", FAIL, blown, detail, advice)


def _overfitting(c: Curves) -> Finding | None:
    if not all(math.isfinite(v) for v in c.val):
        return None
    best = min(range(len(c.val)), key=c.val.__getitem__)
    risen = any(v > (1 + OVERFIT_RISE) * c.val[best] for v in c.val[best + 1 :])
    if not risen or c.train[-1] >= c.train[best]:
        return None
    gap_then, gap_now = c.val[best] - c.train[best], c.val[-1] - c.train[-1]
    return Finding(
        "overfitting", WARN, c.epochs[best + 1 :],
        f"validation loss lowest at epoch {c.epochs[best]} ({fmt(c.val[best])}), {fmt(c.val[-1])} by epoch {c.epochs[-1]} "
        f"while the train loss fell to {fmt(c.train[-1])}: the gap grew from {fmt(gap_then)} to {fmt(gap_now)}",
        f"stop near epoch {c.epochs[best]} (early_stopping.enabled=true) or regularise: augmentation "
        "(augment.flip_p=0.5, augment.crop_padding=4), model.dropout=0.3, optimizer.weight_decay",
    )  # fmt: skip


def _underfitting(c: Curves) -> Finding | None:
    no_gap = not math.isfinite(c.val[-1]) or c.val[-1] <= (1 + UNDERFIT_GAP) * c.train[-1]
    if c.train[-1] <= UNDERFIT_FRACTION * c.reference or not no_gap:
        return None
    against = "an even guess" if c.chance is not None else "the first epoch"
    return Finding(
        "underfitting", WARN, c.epochs[-max(1, len(c.epochs) // 3) :],  # the last third: where it should have got low
        f"the train loss ends at {fmt(c.train[-1])}, {c.train[-1] / c.reference:.0%} of {against}'s, validation as high",
        "the model does not fit even its training data: train longer, a bigger model, a higher rate, less regularisation",
    )  # fmt: skip


def _plateau(c: Curves) -> Finding | None:
    flat = _longest_flat_run(c.train, PLATEAU_FLOOR * c.reference)
    if len(flat) < PLATEAU_EPOCHS:
        return None
    return Finding(
        "plateau", WARN, [c.epochs[i] for i in flat],
        f"the train loss stalls near {fmt(c.train[flat[0]])} over epochs {c.epochs[flat[0]]}-{c.epochs[flat[-1]]}",
        "a higher rate, or a schedule that warms up then decays it (scheduler.name=cosine); "
        "see the health check for dead or saturated units",
    )  # fmt: skip


def _noisy(c: Curves) -> Finding | None:
    rises = [i for i in range(1, len(c.train)) if c.train[i] > (1 + NOISE_RISE) * c.train[i - 1]]
    if len(rises) < max(NOISY_MIN_RISES, NOISY_SHARE * (len(c.train) - 1)):
        return None
    bigger = f"data.batch_size={2 * c.batch_size}" if c.batch_size else "a bigger batch"
    detail = f"the train loss rises in {len(rises)} of {len(c.train) - 1} epochs"
    return Finding("noisy", WARN, [c.epochs[i] for i in rises], detail, f"steadier steps: {bigger}, or a lower rate ({c.lower_lr(3)})")


def _longest_flat_run(losses: list[float], floor: float) -> list[int]:
    """Indices of the longest run of epochs that beat the best loss so far by under PLATEAU_IMPROVEMENT, above `floor`."""
    longest: list[int] = []
    current: list[int] = []
    best = losses[0]
    for i in range(1, len(losses)):
        if floor < losses[i] and losses[i] > (1 - PLATEAU_IMPROVEMENT) * best:
            current = [*current, i]
            if len(current) > len(longest):
                longest = current
        else:
            current = []
        best = min(best, losses[i])
    return longest


def check_curves(
    history: Sequence[Mapping[str, Any]], chance: float | None = None, *, short_run: bool = False,
    lr: float | None = None, batch_size: int | None = None, source: str = "the run", failure: str | None = None,
    non_finite: Mapping[str, Any] | None = None, start: float | None = None,
) -> Check:  # fmt: skip
    """Diagnose `history`; the figure marks each finding's epochs on the loss curves.

    `failure` is the error that stopped a failed run: its last epoch never reached the history.
    `non_finite` is the first training step whose loss was NaN or infinite ({"step", "epoch", "loss", "lr"}),
    when the run recorded it: the divergence names it. `start` is the loss of the run's first step, before any update.
    """
    findings = diagnose(history, chance, short_run=short_run, lr=lr, batch_size=batch_size, start=start) if history else []
    if len(history) < 2:  # one epoch says whether it blew up, nothing more
        findings = [f for f in findings if f.diagnosis == "divergence"]
    if failure is None and not findings and len(history) < 2:
        return Check("curves", WARN, f"{source} has {len(history)} epoch(s): too few to read a curve",
                     "train for at least a few epochs", {"epochs": len(history)})  # fmt: skip
    divergence = next((f for f in findings if f.diagnosis == "divergence"), None)
    if divergence is not None and non_finite is not None:
        divergence.detail += (f"; the first non-finite loss: {fmt(non_finite['loss'])} at step {non_finite['step']} "
                              f"(epoch {non_finite['epoch']}), lr {fmt(non_finite['lr'])}")  # fmt: skip
        divergence.advice = non_finite_advice(non_finite["step"], non_finite["lr"])
    if failure is not None:
        failed_in = len(history) + 1  # the epoch that never finished
        findings.insert(0, Finding("failure", FAIL, [failed_in], f"the run failed in epoch {failed_in}: {failure}",
                                   "the error above says what to try"))  # fmt: skip
    evidence = {"epochs": len(history), "source": source, "chance_loss": chance, "short_run": short_run,
                **({"first_step_loss": start} if start is not None else {}),
                **({"non_finite": dict(non_finite)} if non_finite else {}),
                "findings": [asdict(f) for f in findings], "history": [dict(row) for row in history]}  # fmt: skip
    figure = marked_curves_figure(history, findings)
    if not findings:
        best = min(range(len(history)), key=lambda i: _finite_or_inf(history[i].get("val_loss")))
        advice = (f"no divergence, overfitting, {'' if short_run else 'underfitting, '}plateau or noise; "
                  f"best validation loss at epoch {history[best].get('epoch', best + 1)}")  # fmt: skip
        summary = f"{len(history)} epochs of {source}: train and validation loss fall together"
        return Check("curves", PASS, summary, advice, evidence, {"curves": figure})
    status = worst(f.status for f in findings)
    summary = "; ".join(f"{f.diagnosis} (epochs {_span(f.epochs)}): {f.detail}" for f in findings)
    advice = " | ".join(f"{f.diagnosis}: {f.advice}" for f in findings if f.status == status)
    return Check("curves", status, summary, advice, evidence, {"curves": figure})


def marked_curves_figure(history: Sequence[Mapping[str, Any]], findings: list[Finding]) -> Figure:
    """The run's loss and accuracy curves, each finding's epochs shaded on both; NaN and infinite values left out."""
    numbers = [{key: _finite_or_nan(value) for key, value in row.items()} for row in history]  # columns are numbers
    fig = curves_figure(numbers)
    loss_ax = fig.axes[0]
    losses = [row[key] for row in numbers for key in ("train_loss", "val_loss") if key in row]
    positive = [v for v in losses if v > 0]  # NaN compares false
    if positive and max(positive) > LOG_AXIS_SPAN * min(positive):  # a blow-up would squash the rest flat
        loss_ax.set_yscale("log")
    broken = next((i for i, row in enumerate(history) if not math.isfinite(to_float(row.get("train_loss")))), None)
    epoch = to_float(history[broken].get("epoch", broken + 1)) if broken is not None else math.nan  # as curves_figure
    if math.isfinite(epoch):
        value = to_float(history[broken].get("train_loss"))
        loss_ax.axvline(epoch, color="tab:red", linestyle=":", label=f"train loss {fmt(value)} from epoch {epoch:g}")
    for ax in fig.axes:
        for finding in findings:
            for i, (first, last) in enumerate(_runs(finding.epochs)):
                ax.axvspan(first - 0.5, last + 0.5, color=_COLORS[finding.diagnosis], alpha=0.15,
                           label=finding.diagnosis if i == 0 else None)  # fmt: skip
        if ax.lines:
            ax.legend(fontsize=8)
    return fig


def _runs(epochs: list[int]) -> list[tuple[int, int]]:
    """[2, 3, 4, 7] -> [(2, 4), (7, 7)]"""
    runs: list[tuple[int, int]] = []
    for e in sorted(epochs):
        if runs and e == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], e)
        else:
            runs.append((e, e))
    return runs


def _span(epochs: list[int]) -> str:
    return ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in _runs(epochs))


def _finite_or_nan(value: Any) -> float:
    """A number as a float; NaN for an infinity (matplotlib takes no infinite axis limit) and for what is no number."""
    number = to_float(value)
    return number if math.isfinite(number) else math.nan


def _finite_or_inf(value: Any) -> float:
    number = to_float(value)
    return number if math.isfinite(number) else math.inf
