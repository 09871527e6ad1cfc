"""The search space against the experiment config.

Every choice (and both ends of every range) is checked by validating the experiment config
with that value in place, so a bad choice fails before any trial runs with the config's own
message: `scheduler.name=cosin` names the known schedules, `optimizer.lr=-1` says it must be
greater than 0. Trial configs are built the same way, from the config as written: swapping
`scheduler.name` keeps only the scheduler arguments the user wrote, not the defaults of the old one.
"""

from __future__ import annotations

import copy
import itertools
import math
from dataclasses import dataclass
from typing import Any

import optuna
import yaml
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from trainlab.config import ConfigSource, ExperimentConfig, validate_config
from trainlab.config.sweep import Range, SweepConfig
from trainlab.errors import ConfigError
from trainlab.utils.records import flatten


def with_values(raw: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """A copy of a config as written, each dotted field set: {"optimizer.lr": 0.01} sets raw["optimizer"]["lr"]."""
    raw = copy.deepcopy(raw)
    for field, value in values.items():
        *sections, key = field.split(".")
        node = raw
        for section in sections:
            if not isinstance(node.get(section), dict):
                node[section] = {}
            node = node[section]
        node[key] = copy.deepcopy(value)
    return raw


def validate_values(raw: dict[str, Any], values: dict[str, Any], label: str) -> ExperimentConfig:
    """The experiment config with `values` in place; a ConfigError starts with `label`."""
    return validate_config(with_values(raw, values), ConfigSource(label=label, run_name=""))


def _shown(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True, width=1_000).strip().removesuffix("...").strip()


@dataclass(frozen=True)
class Dimension:
    """One searched field: its choices (as the config takes them) or a range."""

    field: str
    choices: list[Any] | None = None
    range: Range | None = None
    integer: bool = False

    @property
    def options(self) -> list[Any]:
        """The choices as Optuna stores them: None, bool, int, float or str; lists and mappings as YAML text."""
        assert self.choices is not None
        return [c if c is None or isinstance(c, (bool, int, float, str)) else _shown(c) for c in self.choices]

    def distribution(self) -> BaseDistribution:
        if self.choices is not None:
            return CategoricalDistribution(self.options)
        r = self.range
        if self.integer:
            return IntDistribution(int(r.low), int(r.high), log=r.log, step=int(r.step or 1))
        return FloatDistribution(r.low, r.high, log=r.log, step=r.step)

    def suggest(self, trial: optuna.Trial) -> Any:
        """The trial's value for this field, as the config takes it."""
        if self.choices is not None:
            return self.decode(trial.suggest_categorical(self.field, self.options))
        r = self.range
        if self.integer:
            return trial.suggest_int(self.field, int(r.low), int(r.high), step=int(r.step or 1), log=r.log)
        return trial.suggest_float(self.field, r.low, r.high, step=r.step, log=r.log)

    def decode(self, param: Any) -> Any:
        """An Optuna parameter back to the config's value (a choice stored as YAML text becomes its list again)."""
        return self.choices[self.options.index(param)] if self.choices is not None else param

    def grid_values(self) -> list[Any]:
        """Every value a grid takes, as Optuna stores it."""
        if self.choices is not None:
            return self.options
        r = self.range
        if r.step is None or r.log:
            raise ConfigError(f"sweep.space.{self.field}: a grid needs a list of choices or a range with a step")
        count = math.floor((r.high - r.low) / r.step + 1e-9) + 1
        return [r.low + i * r.step if self.integer else round(r.low + i * r.step, 12) for i in range(count)]


class SearchSpace:
    def __init__(self, dimensions: list[Dimension]):
        self.dimensions = {d.field: d for d in dimensions}

    @property
    def fields(self) -> list[str]:
        return list(self.dimensions)

    @classmethod
    def check(cls, sweep: SweepConfig, raw: dict[str, Any], config: ExperimentConfig, source: ConfigSource) -> SearchSpace:
        """The space of `sweep`, every choice and range end validated against the config as written (`raw`)."""
        base = flatten(config.to_dict())
        dimensions = []
        for field, entry in sweep.space.items():
            where = _where(source, field)
            if field.split(".")[0] == "sweep" or "" in field.split("."):
                raise ConfigError(f"{where}: sweep.space: '{field}' is not a config field that a trial can set")
            if isinstance(entry, Range):
                ends = [entry.low, entry.high]
                dimension = Dimension(field, range=entry, integer=entry.integer and not isinstance(base.get(field), float))
            else:
                ends = entry
                dimension = Dimension(field, choices=list(entry))
            for value in ends:
                validate_values(raw, {field: value}, f"{where}: sweep choice {field}={_shown(value)}")
            dimensions.append(dimension)
        return cls(dimensions)

    def suggest(self, trial: optuna.Trial) -> dict[str, Any]:
        return {field: d.suggest(trial) for field, d in self.dimensions.items()}

    def decode(self, params: dict[str, Any]) -> dict[str, Any]:
        return {field: self.dimensions[field].decode(value) for field, value in params.items() if field in self.dimensions}

    def grid(self) -> list[dict[str, Any]]:
        """Every combination, as Optuna parameters, in the order the space lists fields and values."""
        fields = self.fields
        return [dict(zip(fields, combo)) for combo in itertools.product(*(self.dimensions[f].grid_values() for f in fields))]

    def check_grid(self, raw: dict[str, Any], label: str) -> list[dict[str, Any]]:
        """The grid, each combination validated as a whole (each choice alone may be fine, two together not)."""
        combos = self.grid()
        for params in combos:
            shown = " ".join(f"{k}={_shown(v)}" for k, v in params.items())
            validate_values(raw, self.decode(params), f"{label}: sweep combination {shown}")
        return combos


def _where(source: ConfigSource, field: str) -> str:
    line = source.lines.get(("sweep", "space", field))
    if line is not None and source.path is not None:
        return f"{source.path}, line {line}"
    return str(source.path) if source.path else source.label
