"""The validation metric that picks the best epoch: for checkpoints/best.pt, early stopping and sweeps.

A config names it `val/acc`, `val/loss`, `val/macro_f1` (binary tasks: `val/f1`, `val/auc`; regression: `val/mae`,
`val/rmse`, `val/r2`); the trainer's history and metrics.csv call it `val_acc`, `val_loss`, ...; accuracies, F1,
AUC and R² are maximized, losses and errors minimized.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, Literal

import pydantic

from trainlab.engine import metric_names
from trainlab.registry import did_you_mean


@dataclass(frozen=True)
class Monitor:
    """A monitored metric: its name in configs, its history column, and which way is better."""

    name: str  # "val/acc", as configs and run.json write it
    column: str  # "val_acc", the history and metrics.csv column (metric_names.py)
    maximize: bool

    @classmethod
    def parse(cls, name: str | Monitor) -> Monitor:
        """The monitor called `name`; an unknown name is a ValueError with the closest one and the choices."""
        if isinstance(name, Monitor):
            return name
        if isinstance(name, str) and name in MONITORS:
            return MONITORS[name]
        suggestion = did_you_mean(name, MONITORS) if isinstance(name, str) else ""
        raise ValueError(f"unknown monitor {name!r}{suggestion}; expected one of: {', '.join(MONITORS)}")

    @property
    def direction(self) -> Literal["maximize", "minimize"]:
        """As Optuna takes it."""
        return "maximize" if self.maximize else "minimize"

    def improves(self, value: float, best: float | None, min_delta: float = 0.0) -> bool:
        """Whether `value` beats the best so far by more than `min_delta`; NaN never does, any other value beats None."""
        if math.isnan(value):
            return False
        if best is None:
            return True
        return value > best + min_delta if self.maximize else value < best - min_delta

    def best(self, values: Iterable[float]) -> float:
        """The best of `values`: the largest accuracy, the smallest loss."""
        return max(values) if self.maximize else min(values)

    def sort_key(self, value: float) -> float:
        """Sorting by this puts the best value first."""
        return -value if self.maximize else value

    def __str__(self) -> str:
        return self.name


MONITORS = {monitor.name: monitor for monitor in (
    Monitor("val/acc", metric_names.VAL_ACC, maximize=True),
    Monitor("val/loss", metric_names.VAL_LOSS, maximize=False),
    Monitor("val/macro_f1", metric_names.VAL_MACRO_F1, maximize=True),
    Monitor("val/f1", metric_names.VAL_F1, maximize=True),  # binary tasks
    Monitor("val/auc", metric_names.VAL_AUC, maximize=True),
    Monitor("val/mae", metric_names.VAL_MAE, maximize=False),  # regression tasks
    Monitor("val/rmse", metric_names.VAL_RMSE, maximize=False),
    Monitor("val/r2", metric_names.VAL_R2, maximize=True),
)}  # fmt: skip

# A config field holding a Monitor: read from and written as its name, so config.yaml keeps `monitor: val/acc`.
MonitorField = Annotated[
    Monitor, pydantic.PlainValidator(Monitor.parse), pydantic.PlainSerializer(lambda monitor: monitor.name, return_type=str)
]
