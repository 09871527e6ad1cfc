"""What a sweep leaves beside its runs: trials.csv, best.yaml, pictures, and best-ball's lineage.

    trials.csv                  one row per trial: number, state, metric, the values, (best-ball: epoch,
                                parent, kept), epochs run, seconds, worker, run folder, error
    best.yaml                   the best trial's resolved config, without the sweep section: `trainlab run best.yaml`
    history.png                 Optuna's optimization history
    parallel_coordinates.png    Optuna's parallel coordinates (not for best-ball)
    importances.png             Optuna's parameter importances, with two fields or more and enough trials
    bestball.json, bestball.png best-ball: every ball with its parent, and the settings over epochs
"""

from __future__ import annotations

import csv
import warnings
from pathlib import Path
from typing import Any

import optuna
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from optuna.trial import FrozenTrial, TrialState
from rich.console import Console

from trainlab.evaluation.plots import save_figure
from trainlab.tools.sweep.bestball import final_ball, lineage_record
from trainlab.tools.sweep.folder import Sweep
from trainlab.tools.sweep.trials import planned_params, state_name
from trainlab.utils.io import atomic_open, write_json, write_text

MIN_TRIALS_FOR_IMPORTANCES = 5  # completed trials; fewer say nothing about what matters


def _seconds(trial: FrozenTrial) -> float | None:
    if trial.datetime_start is None or trial.datetime_complete is None:
        return None
    return (trial.datetime_complete - trial.datetime_start).total_seconds()


def trial_line(sweep: Sweep, trial: FrozenTrial, seconds: float) -> str:
    """One line per finished trial, as the sweep prints it."""
    values = "  ".join(f"{k}={v}" for k, v in planned_params(trial).items())
    result = f"{sweep.metric} {trial.value:.4f}" if trial.value is not None else trial.user_attrs.get("error", "")
    epoch = f" (epoch {trial.user_attrs['epoch']})" if "epoch" in trial.user_attrs else ""
    return f"trial {trial.number:>3}{epoch}  {state_name(trial):<11} {values}  {result}  {seconds:.0f} s"


def write_trials_csv(sweep: Sweep, trials: list[FrozenTrial]) -> None:
    bestball = sweep.method == "bestball"
    kept = {b["ball"] for b in lineage_record(sweep, trials)["schedule"]} if bestball else set()
    columns = ["number", "state", sweep.metric, *sweep.space.fields]
    columns += ["epoch", "parent", "kept"] if bestball else []
    columns += ["epochs", "seconds", "worker", "run", "error"]
    with atomic_open(sweep.path / "trials.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        for t in trials:
            seconds = _seconds(t)
            writer.writerow({
                "number": t.number, "state": state_name(t), sweep.metric: "" if t.value is None else repr(t.value),
                **{field: planned_params(t).get(field, "") for field in sweep.space.fields},
                **({"epoch": t.user_attrs.get("epoch"), "parent": t.user_attrs.get("parent", ""), "kept": t.number in kept}
                   if bestball else {}),
                "epochs": _epochs(t), "seconds": "" if seconds is None else f"{seconds:.1f}",
                "worker": t.user_attrs.get("worker", ""), "run": _run_of(sweep, t),
                "error": t.user_attrs.get("error", ""),
            })  # fmt: skip


def _run_of(sweep: Sweep, trial: FrozenTrial) -> str:
    if "run" in trial.user_attrs:
        return trial.user_attrs["run"]
    run = sweep.trial_run(trial.number) if trial.state != TrialState.WAITING else None  # killed before it said
    return sweep.relative(run) if run is not None else ""


def _epochs(trial: FrozenTrial) -> int | str:
    """Epochs the trial's run trained, its lineage's included for a ball."""
    return trial.last_step if trial.last_step is not None else ""


def best_trial(sweep: Sweep, trials: list[FrozenTrial]) -> FrozenTrial | None:
    """Best-ball: the final ball. Otherwise: the completed trial with the best metric (the lowest number wins a tie)."""
    if sweep.method == "bestball":
        return final_ball(sweep, trials)
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    return min(done, key=lambda t: (sweep.monitor.sort_key(t.value), t.number), default=None)


def write_best_yaml(sweep: Sweep, best: FrozenTrial) -> Path:
    config = sweep.trial_config(sweep.space.decode(best.params), f"{sweep.name}-best", Path(sweep.config.output_dir))
    header = [f"# Best trial ({best.number}) of {sweep.path}: {sweep.metric} {best.value:.4f}. Run it: trainlab run {sweep.path}/best.yaml"]
    if sweep.method == "bestball":
        header.append(f"# Best-ball: this runs the final ball's settings in every epoch; the schedule that reached the metric "
                      f"replays with: trainlab sweep --replay {sweep.path}")
    path = sweep.path / "best.yaml"
    write_text(path, "\n".join(header) + "\n" + config.to_yaml())
    return path


# ---------------------------------------------------------------------------------------- pictures


def draw_pictures(sweep: Sweep, study: optuna.Study, trials: list[FrozenTrial]) -> tuple[list[str], list[str]]:
    """Optuna's pictures, and best-ball's settings over epochs. Returns (files written, notes on those left out)."""
    import matplotlib

    matplotlib.use("Agg")  # Optuna's pictures go through pyplot; trainlab never opens a window
    import matplotlib.pyplot as plt

    complete = sum(t.state == TrialState.COMPLETE for t in trials)
    if not complete:
        return [], ["no pictures: no trial completed"]
    written, notes = [], []
    # rc_context undoes the style Optuna sets for the whole process when it is imported.
    with matplotlib.rc_context(), plt.style.context("ggplot"), warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        from optuna.visualization import matplotlib as plots

        pictures = {"history.png": lambda: plots.plot_optimization_history(study, target_name=sweep.metric)}
        if sweep.method != "bestball":
            pictures["parallel_coordinates.png"] = lambda: plots.plot_parallel_coordinate(study, target_name=sweep.metric)
            if len(sweep.space.fields) >= 2 and complete >= MIN_TRIALS_FOR_IMPORTANCES:
                pictures["importances.png"] = lambda: plots.plot_param_importances(study, target_name=sweep.metric)
            else:
                notes.append(f"no importances.png: it needs two searched fields or more and {MIN_TRIALS_FOR_IMPORTANCES} completed trials")
        for name, draw in pictures.items():
            try:
                figure = draw().figure
            except (ValueError, RuntimeError) as e:  # e.g. importances when every trial scored the same
                notes.append(f"no {name}: {e}")
                continue
            figure.set_size_inches(9, 5.5)
            figure.tight_layout()
            save_figure(figure, sweep.path / name)
            plt.close(figure)
            written.append(name)
    if sweep.method == "bestball":
        save_figure(bestball_figure(lineage_record(sweep, trials)), sweep.path / "bestball.png")
        written.append("bestball.png")
    return written, notes


def bestball_figure(record: dict[str, Any]) -> Figure:
    """One panel per setting (its value at each epoch) and one for the metric: every ball as a dot, the kept lineage as a line."""
    balls = [b for b in record["balls"] if b["state"] == "complete"]
    fields = list(balls[0]["settings"]) if balls else []
    metric = record["metric"]
    fig = Figure(figsize=(4.2 * (len(fields) + 1), 4), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(fields) + 1, squeeze=False)[0]
    schedule = record["schedule"]
    for ax, field in zip(axes, fields + [metric]):
        value = (lambda b, f=field: b["settings"][f]) if field != metric else (lambda b: b[metric])
        ax.scatter([b["epoch"] for b in balls], [value(b) for b in balls], s=18, color="0.6", label="balls")
        ax.plot([b["epoch"] for b in schedule], [value(b) for b in schedule], marker="o", color="C0", label="kept")
        if field != metric and all(value(b) > 0 for b in balls):
            ax.set_yscale("log")
        ax.set_title(field)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    axes[0].legend(fontsize="small")
    return fig


# ---------------------------------------------------------------------------------------- all of it


def write_outputs(sweep: Sweep, study: optuna.Study, console: Console) -> None:
    """Write every output from the study as it stands, and say what the sweep found."""
    trials = study.get_trials(deepcopy=False)
    write_trials_csv(sweep, trials)
    states = [state_name(t) for t in trials]
    counts = ", ".join(f"{states.count(s)} {s}" for s in dict.fromkeys(states))
    lines = [f"{len(trials)} trials: {counts or 'none'}"]
    files = ["trials.csv"]
    if sweep.method == "bestball":
        write_json(sweep.path / "bestball.json", lineage_record(sweep, trials))
        files.append("bestball.json")
    best = best_trial(sweep, trials)
    if best is not None:
        write_best_yaml(sweep, best)
        values = "  ".join(f"{k}={v}" for k, v in best.params.items())
        what = "final ball" if sweep.method == "bestball" else "best trial"
        lines.append(f"{what}: {best.number}, {sweep.metric} {best.value:.4f}: {values}")
        files.append("best.yaml")
    pictures, notes = draw_pictures(sweep, study, trials)
    lines.append(f"{sweep.path}: " + ", ".join(files + pictures))
    lines += notes
    replay = f"; replay the final schedule: trainlab sweep --replay {sweep.path}" if sweep.method == "bestball" and best else ""
    lines.append(f"compare the runs: trainlab compare {sweep.path}{replay}")
    for line in lines:
        console.print(line, highlight=False, soft_wrap=True, markup=False)
