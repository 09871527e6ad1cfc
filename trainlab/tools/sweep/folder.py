"""The sweep folder and the config a sweep was started with.

    sweeps/<name>-<YYYYmmdd-HHMMSS>/
      sweep.yaml      the config as written, overrides and command-line options applied, with its sweep:
                      section; every trial config is built from it, also when the sweep resumes
      sweep.json      name, study name and storage (a database URL without its password)
      study.journal   the Optuna study, unless --storage names a database
      runs/           one run folder per trial, the same files as `trainlab run`
      trials.csv, best.yaml, *.png, bestball.json: outputs.py
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import torch
import yaml

from trainlab.config import ConfigSource, ExperimentConfig, load_raw_config, validate_config
from trainlab.config.sweep import SweepConfig
from trainlab.engine.monitor import Monitor
from trainlab.engine.optim import OPTIMIZERS
from trainlab.engine.tasks import task_monitor
from trainlab.errors import ConfigError, UsageError
from trainlab.run_folder import RunFolder
from trainlab.tools.sweep.space import SearchSpace, with_values
from trainlab.utils.io import write_json, write_text

SWEEP_FILE, RECORD_FILE, JOURNAL_FILE = "sweep.yaml", "sweep.json", "study.journal"
DEFAULT_TRIALS = 20
EXAMPLE = "sweep: {method: tpe, trials: 20, space: {optimizer.lr: {low: 1.0e-4, high: 1.0e-1, log: true}}}"


def hide_password(url: str) -> str:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


@dataclass
class Sweep:
    raw: dict[str, Any]  # the config as written, with its sweep section
    source: ConfigSource
    config: ExperimentConfig
    space: SearchSpace
    grid: list[dict[str, Any]] | None  # grid: every combination, as Optuna parameters
    name: str
    study_name: str
    storage_url: str | None  # None: the journal file in the folder
    path: Path | None = None  # set once the folder exists

    # ------------------------------------------------------------------ what the config says

    @property
    def settings(self) -> SweepConfig:
        assert self.config.sweep is not None
        return self.config.sweep

    @property
    def method(self) -> str:
        return self.settings.method

    @property
    def monitor(self) -> Monitor:
        """The objective: the sweep's metric, else the config's monitor (a binary or regression task's own when
        the config names none: val/auc, val/mae)."""
        return self.settings.metric or task_monitor(self.config)

    @property
    def metric(self) -> str:
        return self.monitor.name

    @property
    def budget(self) -> int:
        if self.settings.trials is not None:
            return self.settings.trials
        return len(self.grid) if self.grid is not None else DEFAULT_TRIALS

    @property
    def pruner(self) -> str:
        return self.settings.pruner or ("none" if self.method in ("grid", "bestball") else "median")

    @property
    def journal(self) -> Path:
        return self._path / JOURNAL_FILE

    @property
    def runs(self) -> Path:
        return self._path / "runs"

    @property
    def _path(self) -> Path:
        assert self.path is not None, "the sweep folder is not created yet"
        return self.path

    # ------------------------------------------------------------------ starting and reopening

    @classmethod
    def prepare(cls, spec: str | None, overrides: list[str], options: list[str], storage_url: str | None,
                study_name: str | None) -> Sweep:  # fmt: skip
        """Read and check everything a sweep needs (no folder yet): `options` are the command line's
        sweep settings as overrides (`sweep.method=grid`), applied after the config's own."""
        raw, source, _ = load_raw_config(spec, overrides)
        if not isinstance(raw.get("sweep"), dict):
            raise UsageError(f"{source.path or source.label} has no sweep: section to search; add one, for example\n{EXAMPLE}")
        raw, source, origin = load_raw_config(spec, overrides + options)
        sweep = cls._checked(raw, source, origin, storage_url)
        sweep.study_name = study_name or sweep.name
        return sweep

    @classmethod
    def open(cls, path: Path, storage_url: str | None = None) -> Sweep:
        """A sweep folder made by `create`, to resume; `storage_url` replaces the recorded one (which lacks its password)."""
        if not (path / SWEEP_FILE).is_file() or not (path / RECORD_FILE).is_file():
            raise UsageError(f"{path} is not a sweep folder (expected {SWEEP_FILE} and {RECORD_FILE} in it)")
        record = json.loads((path / RECORD_FILE).read_text())
        recorded = record.get("storage")
        if storage_url is None and recorded is not None:
            if "***" in recorded:
                raise UsageError(f"{path} uses the database {recorded}: give its URL with the password again (--storage URL)")
            storage_url = recorded
        raw, source, origin = load_raw_config(str(path / SWEEP_FILE))
        sweep = cls._checked(raw, source, origin, storage_url)
        sweep.name, sweep.study_name, sweep.path = record["name"], record["study"], path
        return sweep

    @classmethod
    def _checked(cls, raw: dict[str, Any], source: ConfigSource, origin: dict, storage_url: str | None) -> Sweep:
        config = validate_config(raw, source, origin)
        base = {k: v for k, v in raw.items() if k != "sweep"}
        assert config.sweep is not None
        space = SearchSpace.check(config.sweep, base, config, source)
        where = str(source.path or source.label)
        grid = space.check_grid(base, where) if config.sweep.method == "grid" else None
        name = config.name or source.run_name
        sweep = cls(raw, source, config, space, grid, name, name, storage_url)
        if config.sweep.direction not in (None, sweep.monitor.direction):  # no sweep.metric: the config's monitor is it
            raise ConfigError(f"{where}: field 'sweep.direction': {sweep.metric} (the config's monitor) is "
                              f"{sweep.monitor.direction}d, not {config.sweep.direction}d")  # fmt: skip
        if sweep.method == "bestball":
            check_bestball(sweep, where)
        return sweep

    def create(self) -> Path:
        """Make the folder and write what resuming needs."""
        self.path = RunFolder.create(Path(self.settings.output_dir), self.name).path
        self.runs.mkdir()
        write_text(self.path / SWEEP_FILE, yaml.safe_dump(self.raw, sort_keys=False, default_flow_style=None))
        write_json(self.path / RECORD_FILE, {
            "name": self.name, "study": self.study_name,
            "storage": hide_password(self.storage_url) if self.storage_url else None,
            "config_source": self.source.label, "created": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        })  # fmt: skip
        return self.path

    # ------------------------------------------------------------------ trials

    def trial_config(self, values: dict[str, Any], name: str, output_dir: Path | None = None) -> ExperimentConfig:
        """The resolved config of one trial: the config as written with `values` set, without its sweep section."""
        base = {k: v for k, v in self.raw.items() if k != "sweep"}
        raw = with_values(base, values) | {"name": name, "output_dir": str(output_dir or self.runs)}
        try:
            return validate_config(raw, self.source)
        except ConfigError as e:
            shown = ", ".join(f"{k}={v}" for k, v in values.items())
            raise ConfigError(f"the trial's values ({shown}) do not make a valid config: {e}") from None

    @staticmethod
    def trial_name(number: int) -> str:
        return f"trial-{number:04d}"

    def trial_run(self, number: int) -> Path | None:
        """The run folder of trial `number`, if it made one."""
        return next(iter(sorted(self.runs.glob(f"{self.trial_name(number)}-*"))), None)

    def relative(self, path: Path) -> str:
        """A path inside the sweep folder, relative to it (as trials record their run folders)."""
        return Path(path).resolve().relative_to(self._path.resolve()).as_posix()

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Held by a worker while it picks its next trial, so that this machine's workers never pick the same one."""
        with open(self._path / ".lock", "a") as f:  # an empty file to lock, never written
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)


def check_bestball(sweep: Sweep, where: str) -> None:
    """Best-ball changes settings between epochs: only the optimizer's float settings, each given a range."""
    config = sweep.config
    probe = OPTIMIZERS.build(config.optimizer.name, [torch.nn.Parameter(torch.zeros(1))], **config.optimizer.args)
    settable = sorted(k for k, v in probe.param_groups[0].items() if type(v) is float)
    for field, dimension in sweep.space.dimensions.items():
        key = field.removeprefix("optimizer.")
        if key == field or key not in settable:
            raise ConfigError(
                f"{where}: sweep.space.{field}: best-ball changes settings between epochs, which it can do for the "
                f"optimizer's {', '.join('optimizer.' + k for k in settable)}; not for {field}"
            )
        if dimension.range is None or dimension.integer or dimension.range.step is not None:
            raise ConfigError(
                f"{where}: sweep.space.{field}: best-ball multiplies the setting by the factors "
                f"{sweep.settings.factors}: give it a float range {{low, high}} to stay within"
            )
    if config.early_stopping.enabled:
        raise ConfigError(f"{where}: best-ball trains each ball one epoch: set early_stopping.enabled: false")
    if sweep.settings.pruner not in (None, "none"):
        raise ConfigError(f"{where}: sweep.pruner: best-ball keeps each epoch's best ball and drops the others itself; set pruner: none")


def open_storage(sweep: Sweep) -> optuna.storages.BaseStorage:
    """The journal file in the sweep folder, or the database of `--storage`; an unreachable one is a UsageError."""
    if sweep.storage_url is None:
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        return JournalStorage(JournalFileBackend(str(sweep.journal)))
    url, shown = sweep.storage_url, hide_password(sweep.storage_url)
    engine_kwargs = {"connect_args": {"connect_timeout": 10}} if url.startswith("postgresql") else {}
    try:
        return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs)
    except ImportError as e:
        raise UsageError(
            f"--storage {shown}: its database driver is not installed ({e.name or e}); for PostgreSQL: pip install 'trainlab[postgres]'"
        ) from None
    except Exception as e:  # SQLAlchemy's errors for a bad URL, a refused connection, wrong credentials
        reason = next((line for line in str(e).splitlines() if line.strip()), type(e).__name__)
        raise UsageError(f"cannot open the study storage {shown}: {reason}") from None
