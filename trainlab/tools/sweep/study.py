"""The Optuna study behind a sweep: storage, sampler, pruner, the trial loop, worker processes, resume.

A worker creates each trial with `study.ask()` while it holds the sweep folder's lock, right after
checking the budget (for grid and best-ball: that a queued trial is left), so this machine's workers
never start one trial too many, nor the same queued combination twice. Workers on other machines
(`--storage`) share the study but not the lock: at the end of a random, TPE or GP budget each of them
can start one trial more; queued trials are still taken once each (the database hands each to one worker).

A trial's state in trials.csv: complete, pruned, failed (its error recorded), interrupted (Ctrl-C, or a
killed worker that --resume finds gone: queued again), running, queued.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import socket
import sys
import time
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState
from rich.console import Console

from trainlab.errors import ConfigNote, TrainlabError, UsageError
from trainlab.experiment import run_experiment
from trainlab.run_folder import RunFolder
from trainlab.tools.sweep.bestball import plan_ball, run_bestball
from trainlab.tools.sweep.callbacks import ReportMetric
from trainlab.tools.sweep.folder import Sweep, hide_password, open_storage
from trainlab.tools.sweep.outputs import trial_line, write_outputs, write_trials_csv
from trainlab.tools.sweep.trials import counted, interrupted, planned_params
from trainlab.utils.io import write_text
from trainlab.utils.processes import pid_alive
from trainlab.utils.signals import Stopped

optuna.logging.set_verbosity(optuna.logging.WARNING)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


# ---------------------------------------------------------------------------------------- storage and study


def _fingerprint(sweep: Sweep) -> dict:
    """What makes two sweeps the same search: machines joining one study must agree on it."""
    settings = sweep.settings.model_dump(mode="json", include={"method", "space"})
    return json.loads(json.dumps(settings | {"metric": sweep.metric, "direction": sweep.monitor.direction}))


def create_study(sweep: Sweep, storage: optuna.storages.BaseStorage) -> optuna.Study:
    """Create the sweep's study, or join it when a sweep on another machine made it (same name and search)."""
    try:
        study = optuna.create_study(storage=storage, study_name=sweep.study_name, direction=sweep.monitor.direction)
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(study_name=sweep.study_name, storage=storage)
        if study.user_attrs.get("sweep", _fingerprint(sweep)) != _fingerprint(sweep):
            raise UsageError(
                f"the study '{sweep.study_name}' in {hide_password(sweep.storage_url or '')} belongs to a different "
                "search (method, metric or space): give this one another name with --study"
            ) from None
        return study
    study.set_user_attr("sweep", _fingerprint(sweep))
    queue_pending(sweep, study)
    return study


def load_study(sweep: Sweep, storage: optuna.storages.BaseStorage, worker: int = 0) -> optuna.Study:
    """The study with the sweep's pruner and this worker's sampler, seeded by the sweep's seed, the trials
    so far and the worker: reproducible for one worker, never the same draws twice after a resume."""
    study = optuna.load_study(study_name=sweep.study_name, storage=storage, pruner=_pruner(sweep.pruner))
    seed = sweep.config.seed if sweep.settings.seed is None else sweep.settings.seed
    entropy = [seed % 2**32, len(study.get_trials(deepcopy=False)), worker]
    study.sampler = _sampler(sweep, int(np.random.SeedSequence(entropy).generate_state(1)[0]))
    return study


def _sampler(sweep: Sweep, seed: int) -> optuna.samplers.BaseSampler:
    # Optuna starts TPE and GP with 10 random trials; with a budget of 20 that would be half the search.
    startup = max(2, min(10, sweep.budget // 3))
    if sweep.method == "tpe":
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup)
    if sweep.method == "gp":
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=startup)
    return optuna.samplers.RandomSampler(seed=seed)  # grid and best-ball trials are queued with every value fixed


def _pruner(name: str) -> optuna.pruners.BasePruner:
    if name == "median":
        return optuna.pruners.MedianPruner()
    if name == "halving":
        return optuna.pruners.SuccessiveHalvingPruner()
    return optuna.pruners.NopPruner()


def queue_pending(sweep: Sweep, study: optuna.Study) -> int:
    """Queue what no trial covers yet: the grid's combinations, and interrupted trials within the budget.
    (Best-ball queues its balls epoch by epoch.) Returns how many were queued."""
    trials = study.get_trials(deepcopy=False)
    covered = [planned_params(t) for t in trials if not interrupted(t)]
    if sweep.grid is not None:
        wanted = sweep.grid[: sweep.budget]
    elif sweep.method != "bestball":
        room = max(0, sweep.budget - sum(map(counted, trials)))
        wanted = [planned_params(t) for t in trials if interrupted(t)][:room]
    else:
        wanted = []
    queued = 0
    for params in wanted:
        if params not in covered:
            study.enqueue_trial(params)
            covered.append(params)
            queued += 1
    return queued


def recover(sweep: Sweep, study: optuna.Study) -> tuple[int, int]:
    """For --resume: trials left running by this machine's workers that are gone become interrupted, then
    what is missing is queued again. Returns (interrupted now, queued)."""
    stale = 0
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        host, _, pid = str(trial.user_attrs.get("worker", "")).rpartition(":")
        if host in ("", socket.gethostname()) and not (pid.isdigit() and pid_alive(int(pid))):
            study.tell(trial.number, state=TrialState.FAIL)
            if (run := sweep.trial_run(trial.number)) is not None:
                RunFolder(run).update_run(status="interrupted")
            stale += 1
    return stale, queue_pending(sweep, study)


# ---------------------------------------------------------------------------------------- trials


def work(sweep: Sweep, storage: optuna.storages.BaseStorage, worker: int, console: Console, out: Console,
         deadline: float | None) -> None:  # fmt: skip
    """Run trials one after another until the budget, the queue or the time is spent.
    `console` receives each run's own output, `out` one line per trial."""
    study = load_study(sweep, storage, worker)
    queued_only = sweep.method in ("grid", "bestball")
    while deadline is None or time.time() < deadline:
        with sweep.lock():
            trials = study.get_trials(deepcopy=False)
            if queued_only and not any(t.state == TrialState.WAITING for t in trials):
                return
            if not queued_only and sum(map(counted, trials)) >= sweep.budget:
                return
            trial = study.ask()
            trial.set_user_attr("worker", worker_name())
        run_trial(sweep, study, trial, console, out)


def run_trial(sweep: Sweep, study: optuna.Study, trial: optuna.Trial, console: Console, out: Console) -> None:
    """One trial: a normal run with the trial's values; the sweep's metric goes to Optuna every epoch."""

    name = sweep.trial_name(trial.number)
    recorder = ReportMetric(sweep.monitor, trial)
    started = time.perf_counter()
    try:
        values = sweep.space.suggest(trial)
        init_from, extra = plan_ball(sweep, study, trial) if "epoch" in trial.user_attrs else (None, [])
        config = sweep.trial_config(values, name)
        folder = run_experiment(config, sweep.source, console=console, init_from=init_from, extra_callbacks=[recorder, *extra])
    except KeyboardInterrupt:
        _record_run(sweep, trial)
        study.tell(trial, state=TrialState.FAIL)  # without an error: interrupted, queued again by --resume
        raise
    except Exception as e:  # a failed trial is recorded with its error, and the sweep goes on
        error = str(e) if isinstance(e, TrainlabError) else f"{type(e).__name__}: {e}"
        trial.set_user_attr("error", error.strip() or type(e).__name__)
        run = _record_run(sweep, trial)
        if run is not None and not isinstance(e, TrainlabError):
            write_text(run / "traceback.txt", traceback.format_exc())
        frozen = study.tell(trial, state=TrialState.FAIL)
    else:
        trial.set_user_attr("run", sweep.relative(folder.path))
        frozen = _tell_result(study, trial, recorder, is_ball="epoch" in trial.user_attrs)
        if recorder.pruned_at is not None:
            folder.update_run(pruned_at_epoch=recorder.pruned_at)
    out.print(trial_line(sweep, frozen, time.perf_counter() - started), highlight=False, soft_wrap=True, markup=False)
    write_trials_csv(sweep, study.get_trials(deepcopy=False))


def _tell_result(study: optuna.Study, trial: optuna.Trial, recorder: ReportMetric, *, is_ball: bool) -> FrozenTrial:
    if recorder.pruned_at is not None:
        return study.tell(trial, state=TrialState.PRUNED)  # Optuna keeps the last reported value
    values = [v for v in recorder.values if np.isfinite(v)]
    if not values or (is_ball and not np.isfinite(recorder.values[-1])):
        trial.set_user_attr("error", "the metric was not a finite number")
        return study.tell(trial, state=TrialState.FAIL)
    # A ball is worth its one epoch; a trial its best epoch, the one checkpoints/best.pt keeps.
    value = recorder.values[-1] if is_ball else recorder.monitor.best(values)
    return study.tell(trial, value)


def _record_run(sweep: Sweep, trial: optuna.Trial) -> Path | None:
    """Records the run folder of a trial that stopped inside run_experiment, when it made one."""
    run = sweep.trial_run(trial.number)
    if run is not None:
        trial.set_user_attr("run", sweep.relative(run))
    return run


# ---------------------------------------------------------------------------------------- workers


def run_workers(sweep: Sweep, storage: optuna.storages.BaseStorage, workers: int, console: Console,
                deadline: float | None) -> list[str]:  # fmt: skip
    """The trial loop in this process (one worker) or in `workers` processes sharing the study, torch's
    threads split between them. Returns what went wrong with workers that stopped on an error."""
    if workers == 1:
        work(sweep, storage, 0, console, console, deadline)
        return []
    threads = max(1, (os.cpu_count() or 1) // workers)
    context = multiprocessing.get_context("spawn")  # a fresh interpreter: a fork would copy torch's thread pool
    processes = [
        context.Process(target=_worker_process, args=(sweep.path, sweep.storage_url, i, threads, deadline), name=f"worker-{i + 1}")
        for i in range(workers)
    ]
    for process in processes:
        process.start()
    try:
        for process in processes:
            process.join()
    except KeyboardInterrupt as e:
        for process in processes:  # Ctrl-C reached them too; a signal sent to this process alone is passed on
            if isinstance(e, Stopped) and process.is_alive():
                os.kill(process.pid, signal.SIGINT)
        for process in processes:  # each records its trial as interrupted and stops
            process.join()
        raise
    return [f"{p.name} stopped with exit code {p.exitcode}" for p in processes if p.exitcode]


def _worker_process(path: Path, storage_url: str | None, worker: int, threads: int, deadline: float | None) -> None:
    import torch

    torch.set_num_threads(threads)
    warnings.simplefilter("ignore", ConfigNote)  # a worker's runs print nothing; the note is the config's, not the trial's
    try:
        sweep = Sweep.open(path, storage_url)
        work(sweep, open_storage(sweep), worker, Console(quiet=True), Console(), deadline)
    except KeyboardInterrupt:
        sys.exit(130)
    except TrainlabError as e:
        Console(stderr=True).print(f"error: worker {worker + 1}: {e}", highlight=False, markup=False)
        sys.exit(e.exit_code)


# ---------------------------------------------------------------------------------------- the command


def start_sweep(spec: str | None, overrides: list[str], options: list[str], *, workers: int, storage_url: str | None,
                study_name: str | None, console: Console) -> Path:  # fmt: skip
    """`trainlab sweep CONFIG`: check everything, then make the sweep folder and run the trials."""
    sweep = Sweep.prepare(spec, overrides, options, storage_url, study_name)
    storage = open_storage(sweep) if storage_url is not None else None  # a bad URL stops here, before any folder
    sweep.create()
    storage = storage or open_storage(sweep)
    study = create_study(sweep, storage)
    joined = f" (joined: {len(study.trials)} trials so far)" if study.trials and sweep.grid is None else ""
    console.print(
        f"sweep {sweep.path}: {sweep.method} over {', '.join(sweep.space.fields)}, {_budget(sweep)}, "
        f"{sweep.metric} {sweep.monitor.direction}d{joined}", highlight=False, soft_wrap=True,
    )  # fmt: skip
    _run(sweep, storage, workers, console)
    return sweep.path


def resume_sweep(path: Path, *, workers: int, storage_url: str | None, console: Console) -> Path:
    """`trainlab sweep --resume DIR`: continue a stopped sweep; no finished trial runs again."""
    sweep = Sweep.open(path, storage_url)
    storage = open_storage(sweep)
    study = optuna.load_study(study_name=sweep.study_name, storage=storage)
    with sweep.lock():
        stale, queued = recover(sweep, study)
    done = sum(t.state.is_finished() and not interrupted(t) for t in study.get_trials(deepcopy=False))
    console.print(
        f"resuming {path}: {done} trials finished, {stale} found interrupted, {queued} queued again", highlight=False, soft_wrap=True
    )
    _run(sweep, storage, workers, console)
    return path


def _budget(sweep: Sweep) -> str:
    if sweep.method == "bestball":
        budget = f"{sweep.config.epochs} epochs x up to {len(sweep.settings.factors) ** len(sweep.space.fields)} balls"
    elif sweep.grid is not None:
        budget = f"{min(sweep.budget, len(sweep.grid))} of {len(sweep.grid)} combinations"
    else:
        budget = f"{sweep.budget} trials"
    return budget + (f", at most {sweep.settings.timeout:g} s" if sweep.settings.timeout else "")


def _run(sweep: Sweep, storage: optuna.storages.BaseStorage, workers: int, console: Console) -> None:

    deadline = time.time() + sweep.settings.timeout if sweep.settings.timeout else None
    run: Callable[[], list[str]] = lambda: run_workers(sweep, storage, workers, console, deadline)  # noqa: E731
    try:
        problems = run_bestball(sweep, storage, run) if sweep.method == "bestball" else run()
    except KeyboardInterrupt:
        write_outputs(sweep, optuna.load_study(study_name=sweep.study_name, storage=storage), console)
        console.print(f"interrupted; continue with: trainlab sweep --resume {sweep.path}", highlight=False, soft_wrap=True)
        raise
    study = optuna.load_study(study_name=sweep.study_name, storage=storage)
    write_outputs(sweep, study, console)
    if problems:
        raise TrainlabError("; ".join(problems) + f"; continue with: trainlab sweep --resume {sweep.path}")
    if all(t.state == TrialState.FAIL for t in study.get_trials(deepcopy=False)):
        raise TrainlabError(f"every trial failed: their errors are in {sweep.path / 'trials.csv'}")
