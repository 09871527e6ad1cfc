"""What every doctor check returns, which checks there are, and the pieces the checks share.

A check is a function of plain objects (a model, a loss function, an optimizer factory,
batches, a placement) that returns a `Check`: pass, warn or fail, the measured evidence, one
line of advice, and its figures. Checks never read a config and never write a file; the runner
(`runner.py`) does both. A check that trains takes the Trainer's own step (`engine/step.py`).
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter
from torch import nn

from trainlab.engine.checkpoint import rng_state, set_rng_state
from trainlab.engine.seed import seed_everything
from trainlab.errors import UsageError
from trainlab.evaluation.plots import DPI
from trainlab.registry import did_you_mean

PASS, WARN, FAIL = "pass", "warn", "fail"
SEVERITY = {PASS: 0, WARN: 1, FAIL: 2}

# The ritual, in the order it is run and reported.
CHECK_NAMES = ("initial_loss", "data", "seeds", "overfit_example", "overfit_batch", "lr", "health", "curves")
GROUPS = {"overfit": ("overfit_example", "overfit_batch")}  # names --only accepts for several checks

Batch = tuple[torch.Tensor, torch.Tensor]  # inputs (B, ...), integer targets (B,)
OptimizerFactory = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class Check:
    name: str
    status: str  # pass | warn | fail
    summary: str  # the measured evidence in one line, for the table
    advice: str  # what to try (for a pass: what the result means)
    evidence: dict[str, Any] = field(default_factory=dict)  # the measurements, JSON-ready
    figures: dict[str, Figure] = field(default_factory=dict, repr=False)  # file stem -> figure, saved by the runner
    pictures: list[str] = field(default_factory=list)  # the PNG files written for it, relative to the doctor folder
    seconds: float = 0.0

    @property
    def failed(self) -> bool:
        return self.status == FAIL

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "status": self.status, "summary": self.summary, "advice": self.advice,
            "evidence": self.evidence, "pictures": self.pictures, "seconds": round(self.seconds, 2),
        }  # fmt: skip


def worst(statuses: Iterable[str]) -> str:
    return max(statuses, key=SEVERITY.__getitem__, default=PASS)


class Problem(NamedTuple):
    status: str  # warn | fail
    what: str  # what was measured, for the summary
    advice: str  # what to try


def from_problems(name: str, problems: list[Problem], evidence: dict[str, Any], healthy: tuple[str, str]) -> Check:
    """A check whose status is its worst problem's; its summary and advice are those of the problems of that status.

    `healthy` is the (summary, advice) when there is no problem. Every problem found is kept in the evidence.
    """
    evidence["problems"] = [problem.what for problem in problems]
    status = worst(problem.status for problem in problems)
    if not problems:
        return Check(name, PASS, *healthy, evidence)
    shown = [problem for problem in problems if problem.status == status]
    return Check(name, status, "; ".join(p.what for p in shown), "; ".join(p.advice for p in shown), evidence)


def select_checks(only: str | None) -> list[str]:
    """The checks to run, in ritual order: all of them, or those named in `only` ("lr,overfit").

    An unknown name is a UsageError (exit 2) with a suggestion and the valid names.
    """
    if not only or not only.strip():
        return list(CHECK_NAMES)
    choices = [*CHECK_NAMES, *GROUPS]
    wanted: set[str] = set()
    for name in filter(None, (part.strip() for part in only.split(","))):
        if name not in choices:
            raise UsageError(f"--only: unknown check '{name}'{did_you_mean(name, choices)}; checks: {', '.join(choices)}")
        wanted.update(GROUPS.get(name, (name,)))
    return [name for name in CHECK_NAMES if name in wanted]


# ---------------------------------------------------------------------------------------- shared pieces


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Seed Python, NumPy and torch for the block, then put their states back: a check gives the
    same result whichever checks ran before it, and leaves the caller's random streams untouched."""

    saved = rng_state()
    seed_everything(seed)
    try:
        yield
    finally:
        set_rng_state(saved)


def take_batches(loader: Iterable[Batch], count: int) -> list[Batch]:
    """The first `count` training batches, epoch after epoch when the loader has fewer (epochs 0, 1, ...)."""
    return list(itertools.islice(cycle_batches(loader), count))


def cycle_batches(loader: Iterable[Batch]) -> Iterator[Batch]:
    """Batches of epoch 0, then epoch 1, ...; shuffling follows the loader's seed and epoch, so this repeats."""
    for epoch in itertools.count():
        if hasattr(loader, "set_epoch"):
            loader.set_epoch(epoch)
        empty = True
        for batch in loader:
            empty = False
            yield batch
        if empty:
            raise ValueError("the training loader gives no batches")


def fresh_copy(model: nn.Module, make_optimizer: OptimizerFactory) -> tuple[nn.Module, torch.optim.Optimizer]:
    """A copy of the model with its initial weights and a new optimizer on it: checks train copies, never the model."""
    model = copy.deepcopy(model).train()
    return model, make_optimizer(model.parameters())


def without_dropout(model: nn.Module) -> nn.Module:
    """Dropout layers to eval mode (they pass inputs through); batch norm stays in training mode."""
    for module in model.modules():
        if isinstance(module, nn.modules.dropout._DropoutNd):
            module.eval()
    return model


def base_lr(optimizer: torch.optim.Optimizer) -> float:
    """The configured learning rate of the first parameter group, before any schedule scales it."""
    group = optimizer.param_groups[0]
    return float(group.get("initial_lr", group["lr"]))


def new_figure(width: float, height: float) -> Figure:
    """A figure on an Agg canvas (no pyplot), laid out as the run folder's figures are."""
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def loss_curve_figure(losses: list[float], title: str, target: float | None = None) -> Figure:
    """Loss against step (a log axis when it spans over a decade): the picture of an overfitting check.

    A loss that turns NaN or infinite ends the line; a dotted red line marks the step where it did.
    """
    fig = new_figure(6, 3.6)
    ax = fig.subplots()
    steps = range(1, len(losses) + 1)
    finite = [v if math.isfinite(v) else math.nan for v in losses]  # matplotlib takes no infinite axis limit
    ax.plot(steps, finite, color="tab:blue", marker="o" if len(losses) <= 20 else None, label="training loss")
    broken = first_non_finite(losses)
    if broken is not None:
        ax.axvline(broken + 1, color="tab:red", linestyle=":", label=f"{fmt(losses[broken])} from step {broken + 1}")
    if broken == 0:
        ax.text(0.5, 0.5, f"the loss is {fmt(losses[0])} from the first step", transform=ax.transAxes, ha="center",
                color="tab:red")  # fmt: skip
    if target is not None and math.isfinite(target):
        ax.axhline(target, color="tab:green", linestyle="--", linewidth=1, label=f"target {fmt(target)}")
    positive = [v for v in [*finite, target or math.nan] if math.isfinite(v) and v > 0]
    if positive and max(positive) > 10 * min(positive):  # a loss falling to ~0 reads best on a log axis
        log_scale(ax, "y", positive)
    ax.set_title(title)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    ax.legend()
    return fig


def log_scale(ax: Axes, which: str, values: list[float]) -> None:
    """A log scale on the x or y axis of `ax` spanning at least two decades around `values` (so bars that start at the
    axis' edge do not exaggerate small differences), with ticks at 1, 2 and 5 of each decade, written plainly (0.02).

    Only the finite positive values count; without any, the axis stays linear."""
    values = [v for v in values if math.isfinite(v) and v > 0]
    if not values:
        return
    low, high = min(values) / 2, max(values) * 2
    if high < 100 * low:
        middle = math.sqrt(low * high)
        low, high = middle / 10, middle * 10
    if which == "x":
        ax.set_xscale("log")
        ax.set_xlim(low, high)
    else:
        ax.set_yscale("log")
        ax.set_ylim(low, high)
    axis = ax.xaxis if which == "x" else ax.yaxis
    if high <= 1000 * low:  # up to three decades: 1, 2, 5 of each are few enough to read
        axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0), numticks=20))  # "auto" may keep only 10^k
        axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axis.set_minor_formatter(NullFormatter())


def first_non_finite(values: Iterable[float]) -> int | None:
    """The index of the first NaN or infinite value; None when every value is finite."""
    return next((i for i, value in enumerate(values) if not math.isfinite(value)), None)


def non_finite_advice(step: int, lr: float | None) -> str:
    """What to try when the training loss turned NaN or infinite at `step` (1-based) under the rate `lr`.

    At the first step no update has happened yet, so no rate is to blame: the forward or the loss overflows."""
    if step == 1:
        return ("the loss is not finite before any update, so the rate is not the cause: the model's output or the loss "
                "overflows; look in the forward for an exp, a log of 0 or a division, at the initialisation scale, and "
                "at the inputs (the data check)")  # fmt: skip
    lower = f"optimizer.lr={fmt(lr / 10)}" if lr else "a rate 10x lower"
    return (f"the loss diverged after {step - 1} update{'s' * (step != 2)}, so the learning rate is too high: lower it "
            f"({lower}), clip gradients (regularization.clip_grad_norm=1), or add warmup")  # fmt: skip


def fmt(value: float) -> str:
    """A number in 3 significant digits: 2.3026 -> 2.3, 0.0065801 -> 0.00658, 1.234e-05 -> 1.23e-05."""
    return f"{value:.3g}"
