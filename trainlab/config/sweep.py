"""The `sweep:` section of an experiment config: what to search, how, and for how long.

    sweep:
      method: tpe                    # grid | random | tpe | gp | bestball
      metric: val/acc                # maximized (val/loss is minimized)
      trials: 30
      timeout: 3600                  # seconds; no trial starts after it
      space:                         # dotted config field -> choices or a range
        optimizer.lr: {low: 1.0e-4, high: 1.0e-1, log: true}
        data.batch_size: [64, 128, 256]
        model.dropout: {low: 0.0, high: 0.5}
        model.hidden: [[256, 128], [512, 256]]

`trainlab run` ignores the section. `trainlab sweep` also checks every choice against the
experiment config before any trial runs (space.py).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field

from trainlab.engine.monitor import MonitorField
from trainlab.registry import did_you_mean

METHODS = ("grid", "random", "tpe", "gp", "bestball")
Number = int | float  # kept apart: integer bounds make an integer range


class Range(BaseModel):
    """An interval to sample from: floats, or integers when low, high (and step) are integers."""

    model_config = ConfigDict(extra="forbid")
    low: Number
    high: Number
    log: bool = Field(False, description="sample uniformly in log space (needs low > 0)")
    step: Number | None = Field(None, gt=0, description="spacing of the values, from low")

    @pydantic.model_validator(mode="after")
    def _consistent(self) -> Range:
        if self.low >= self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")
        if self.log and self.low <= 0:
            raise ValueError(f"a log range needs low > 0, got {self.low}")
        if self.log and self.step is not None:
            raise ValueError("a range takes log or step, not both")
        return self

    @property
    def integer(self) -> bool:
        return all(type(v) is int for v in (self.low, self.high, 1 if self.step is None else self.step))


def _space_entry(value: Any) -> list[Any] | Range:
    """A field's choices (a non-empty list) or a Range, with a message that says which form is expected."""
    if isinstance(value, list):
        if not value:
            raise ValueError("no choices: give at least one value")
        return value
    if isinstance(value, dict):
        try:
            return Range.model_validate(value)
        except pydantic.ValidationError as e:
            raise ValueError("; ".join(_range_problem(item) for item in e.errors())) from None
    raise ValueError(f"expected a list of choices or a range {{low, high}}, got {value!r}")


def _range_problem(item: dict[str, Any]) -> str:
    key = ".".join(str(p) for p in item["loc"])
    if item["type"] == "extra_forbidden":
        return f"unknown key '{key}'{did_you_mean(key, Range.model_fields)}; a range takes low, high, log, step"
    if item["type"] == "missing":
        return f"a range needs '{key}'"
    if item["type"] == "value_error":
        return str(item["ctx"]["error"])
    return f"'{key}': {item['msg'].lower()}, got {item['input']!r}"


SpaceEntry = Annotated[Any, pydantic.BeforeValidator(_space_entry)]


class SweepConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    method: Literal[METHODS] = Field(
        "tpe", description="grid: every combination once; random; tpe and gp: Bayesian (Optuna's samplers); "
        "bestball: every epoch, the best settings so far times each factor"
    )  # fmt: skip
    metric: MonitorField | None = Field(None, description="objective, val/acc, val/loss or val/macro_f1; default: the config's monitor")
    direction: Literal["maximize", "minimize"] | None = Field(None, description="default: maximize accuracy, minimize loss")
    trials: int | None = Field(None, gt=0, description="trials to run; default: every combination for grid, 20 otherwise")
    timeout: float | None = Field(None, gt=0, description="seconds from the start after which no new trial starts")
    pruner: Literal["median", "halving", "none"] | None = Field(
        None, description="stops bad trials after an epoch; default: median, none for grid and bestball"
    )
    seed: int | None = Field(None, description="seed of the sampler; default: the config's seed")
    factors: list[Annotated[float, Field(gt=0)]] = Field(
        [0.5, 1.0, 2.0], min_length=1, description="bestball: multipliers of each setting tried every epoch"
    )
    output_dir: str = Field("sweeps", description="folder that receives sweep folders")
    space: dict[str, SpaceEntry] = Field(description="dotted config field -> a list of choices, or {low, high[, log | step]}")

    @pydantic.field_validator("space")
    @classmethod
    def _not_empty(cls, space: dict[str, Any]) -> dict[str, Any]:
        if not space:
            raise ValueError("no field to search: add one, for example `optimizer.lr: [0.001, 0.01]`")
        return space

    @pydantic.model_validator(mode="after")
    def _direction_fits_metric(self) -> SweepConfig:
        if self.metric and self.direction and self.direction != self.metric.direction:
            raise ValueError(f"{self.metric.name} is {self.metric.direction}d, not {self.direction}d")
        return self
