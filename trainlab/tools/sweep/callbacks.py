"""What a sweep adds to a trial's run: metric reports to Optuna, per-epoch settings, a stop after an epoch."""

from __future__ import annotations

import optuna

from trainlab.engine.callbacks import LRSchedule
from trainlab.engine.loop import Callback, Trainer
from trainlab.engine.monitor import Monitor
from trainlab.errors import ConfigError


class ReportMetric(Callback):
    """Records the sweep's metric every epoch; with a trial, reports it and stops the run when the pruner says so."""

    def __init__(self, monitor: Monitor, trial: optuna.Trial | None = None):
        self.monitor, self.trial = monitor, trial
        self.values: list[float] = []
        self.pruned_at: int | None = None

    def on_epoch_end(self, trainer: Trainer) -> None:
        if self.monitor.column not in trainer.history[-1]:
            raise ConfigError(f"the sweep's metric {self.monitor.name} is not a metric of a {trainer.task.name} task; "
                              f"set sweep.metric or monitor to one of: {', '.join(trainer.task.monitors)}")  # fmt: skip
        value = trainer.history[-1][self.monitor.column]
        self.values.append(value)
        if self.trial is None:
            return
        self.trial.report(value, trainer.epoch)
        if self.trial.should_prune():
            # Stopped like early stopping, so the run folder is complete: tested, reported, status finished.
            self.pruned_at = trainer.epoch
            trainer.should_stop = True


class EpochSettings(Callback):
    """Sets optimizer settings at the start of each epoch: schedule[i] = {"optimizer.lr": 0.002, ...} for epoch i + 1.

    A learning rate is the base rate that the run's schedule multiplies (cosine, warmup, ...).
    Best-ball trains each ball with the schedule of its lineage; a replay trains the final one from scratch.
    """

    def __init__(self, schedule: list[dict[str, float]]):
        self.schedule = schedule

    def on_fit_start(self, trainer: Trainer) -> None:
        self.scheduler = next(cb.scheduler for cb in trainer.callbacks if isinstance(cb, LRSchedule))

    def on_train_epoch_start(self, trainer: Trainer) -> None:
        if trainer.epoch >= len(self.schedule):
            return
        for field, value in self.schedule[trainer.epoch].items():
            key = field.removeprefix("optimizer.")
            for i, group in enumerate(trainer.optimizer.param_groups):
                if key == "lr":
                    group["lr"] *= value / self.scheduler.base_lrs[i]  # keep the schedule's current factor
                    group["initial_lr"] = self.scheduler.base_lrs[i] = value
                else:
                    group[key] = value


class StopAfterEpoch(Callback):
    """Ends the run after `epoch` epochs, keeping the config's epoch count for the learning-rate schedule."""

    def __init__(self, epoch: int):
        self.epoch = epoch

    def on_epoch_end(self, trainer: Trainer) -> None:
        if trainer.epoch >= self.epoch:
            trainer.should_stop = True
