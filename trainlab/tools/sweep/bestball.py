"""Best-ball: at every epoch, a small grid of settings around the best ball so far, each continuing from its checkpoint.

Epoch 1 trains one ball per combination of the config's settings times each factor (by default
lr x 0.5, x 1, x 2). Every later epoch starts each new ball from the last checkpoint of the previous
epoch's best ball (weights, optimizer state, schedule position, RNG) with the best ball's settings times
each factor, clipped into the space's range, and trains it one more epoch. Each ball is an Optuna trial
and a run folder whose metrics.csv holds its whole lineage; `epoch` and `parent` in the trial link them.

The final ball's lineage is a schedule of settings, one entry per epoch: `trainlab sweep --replay DIR`
trains it from scratch as one run, which on a CPU in fp32 reproduces the final ball's metric exactly.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState
from rich.console import Console

from trainlab.engine.monitor import Monitor
from trainlab.errors import TrainlabError, UsageError
from trainlab.experiment import run_experiment
from trainlab.run_folder import RunFolder
from trainlab.tools.sweep.callbacks import EpochSettings, ReportMetric, StopAfterEpoch
from trainlab.tools.sweep.folder import Sweep, open_storage
from trainlab.tools.sweep.trials import interrupted, planned_params, state_name
from trainlab.utils.records import flatten

# ---------------------------------------------------------------------------------------- the search


def run_bestball(sweep: Sweep, storage: optuna.storages.BaseStorage, run_workers: Callable[[], list[str]]) -> list[str]:
    """Epoch by epoch: queue the balls, let the workers train them, keep the best. Stops early (for --resume)
    when the time is up or a worker failed; returns the workers' problems."""
    study = optuna.load_study(study_name=sweep.study_name, storage=storage)
    for epoch in range(1, sweep.config.epochs + 1):
        with sweep.lock():
            queue_balls(sweep, study, epoch)
        trials = study.get_trials(deepcopy=False)
        if any(t.state == TrialState.WAITING for t in trials):
            problems = run_workers()
            trials = study.get_trials(deepcopy=False)
            if problems or any(t.state in (TrialState.WAITING, TrialState.RUNNING) for t in balls_of(trials, epoch)):
                return problems
        if winner(trials, epoch, sweep.monitor) is None:
            raise TrainlabError(f"no ball of epoch {epoch} completed: their errors are in {sweep.path / 'trials.csv'}")
    return []


def balls_of(trials: list[FrozenTrial], epoch: int) -> list[FrozenTrial]:
    return [t for t in trials if t.user_attrs.get("epoch") == epoch and not interrupted(t)]


def winner(trials: list[FrozenTrial], epoch: int, monitor: Monitor) -> FrozenTrial | None:
    """The epoch's best completed ball; the lowest number wins a tie."""
    done = [t for t in balls_of(trials, epoch) if t.state == TrialState.COMPLETE]
    return min(done, key=lambda t: (monitor.sort_key(t.value), t.number), default=None)


def lineage(trials: list[FrozenTrial], ball: FrozenTrial | None) -> list[FrozenTrial]:
    """The balls from epoch 1 to `ball`, following parents."""
    by_number = {t.number: t for t in trials}
    chain = []
    while ball is not None:
        chain.append(ball)
        parent = ball.user_attrs.get("parent")
        ball = by_number[parent] if parent is not None else None
    return chain[::-1]


def queue_balls(sweep: Sweep, study: optuna.Study, epoch: int) -> None:
    """Queue the epoch's balls that no trial covers yet: the parent's settings times each factor."""
    trials = study.get_trials(deepcopy=False)
    parent = winner(trials, epoch - 1, sweep.monitor) if epoch > 1 else None
    if parent is not None:
        start = parent.params
    else:
        config = flatten(sweep.config.to_dict())
        start = {field: _clip(float(config[field]), d.range.low, d.range.high) for field, d in sweep.space.dimensions.items()}
    covered = [planned_params(t) for t in balls_of(trials, epoch)]
    for params in ball_settings(sweep, start):
        if params not in covered:
            study.enqueue_trial(params, user_attrs={"epoch": epoch, "parent": parent.number if parent else None})
            covered.append(params)


def ball_settings(sweep: Sweep, start: dict[str, float]) -> list[dict[str, float]]:
    """Every combination of each setting times each factor, clipped into its range, without repeats."""
    per_field = [
        [_clip(float(f"{start[field] * factor:.10g}"), d.range.low, d.range.high) for factor in sweep.settings.factors]
        for field, d in sweep.space.dimensions.items()
    ]
    balls: list[dict[str, float]] = []
    for combo in itertools.product(*per_field):
        params = dict(zip(sweep.space.fields, combo))
        if params not in balls:
            balls.append(params)
    return balls


def _clip(value: float, low: float, high: float) -> float:
    return float(min(max(value, low), high))


def plan_ball(sweep: Sweep, study: optuna.Study, trial: optuna.Trial) -> tuple[Path | None, list]:
    """A queued ball's start (its parent's last checkpoint) and the callbacks that train it one epoch with its lineage's settings."""
    epoch, parent = trial.user_attrs["epoch"], trial.user_attrs["parent"]
    trials = study.get_trials(deepcopy=False)
    chain = lineage(trials, next(t for t in trials if t.number == parent)) if parent is not None else []
    schedule = [t.params for t in chain] + [trial.params]
    init_from = sweep.path / chain[-1].user_attrs["run"] / "checkpoints" / "last.pt" if chain else None
    return init_from, [EpochSettings(schedule), StopAfterEpoch(epoch)]


def final_ball(sweep: Sweep, trials: list[FrozenTrial]) -> FrozenTrial | None:
    """The best ball of the last epoch that completed."""
    for epoch in range(sweep.config.epochs, 0, -1):
        ball = winner(trials, epoch, sweep.monitor)
        if ball is not None:
            return ball
    return None


# ---------------------------------------------------------------------------------------- lineage and replay


def lineage_record(sweep: Sweep, trials: list[FrozenTrial]) -> dict[str, Any]:
    """bestball.json: the schedule the final ball followed, and every ball with its parent."""
    final = final_ball(sweep, trials)
    kept = {t.number for t in lineage(trials, final)}

    def ball(t: FrozenTrial) -> dict[str, Any]:
        return {
            "ball": t.number, "epoch": t.user_attrs.get("epoch"), "parent": t.user_attrs.get("parent"),
            "settings": planned_params(t), sweep.metric: t.value, "state": state_name(t), "kept": t.number in kept,
            "run": t.user_attrs.get("run"), **({"error": t.user_attrs["error"]} if "error" in t.user_attrs else {}),
        }  # fmt: skip

    balls = [ball(t) for t in trials if "epoch" in t.user_attrs]
    return {
        "metric": sweep.metric, "direction": sweep.monitor.direction, "factors": sweep.settings.factors,
        "epochs": sweep.config.epochs, "final": ball(final) if final else None,
        "schedule": [b for b in balls if b["kept"]], "balls": balls,
    }  # fmt: skip


def replay(path: Path, console: Console, storage_url: str | None = None) -> tuple[RunFolder, float, FrozenTrial]:
    """`trainlab sweep --replay DIR`: train the final ball's schedule from scratch as one run in DIR/runs.
    Returns the run, its metric after the last scheduled epoch, and the final ball."""
    sweep = Sweep.open(path, storage_url)
    if sweep.method != "bestball":
        raise UsageError(f"--replay: {path} is a {sweep.method} sweep; replay takes a best-ball sweep (best.yaml reruns the best trial)")
    study = optuna.load_study(study_name=sweep.study_name, storage=open_storage(sweep))
    trials = study.get_trials(deepcopy=False)
    final = final_ball(sweep, trials)
    if final is None:
        raise UsageError(f"--replay: no ball of {path} has completed yet")
    schedule = [t.params for t in lineage(trials, final)]
    recorder = ReportMetric(sweep.monitor)
    config = sweep.trial_config(schedule[0], "replay")
    callbacks = [recorder, EpochSettings(schedule), StopAfterEpoch(len(schedule))]
    folder = run_experiment(config, sweep.source, console=console, extra_callbacks=callbacks)
    return folder, recorder.values[-1], final
