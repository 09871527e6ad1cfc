"""`trainlab sweep`: grid, TPE, pruning, failures, worker processes, resume, and bad input, on the embedded digits."""

import csv
import itertools
import json
import os
import subprocess
import sys
import time

import optuna
import pytest
from rich.console import Console

from tests.test_cli import assert_user_error, trainlab
from trainlab.config import load_config
from trainlab.errors import UsageError
from trainlab.tools.compare import find_runs
from trainlab.tools.sweep import study as sweep_study
from trainlab.tools.sweep.study import resume_sweep, start_sweep

# An MLP that reaches 80-90 % on digits in one epoch: trials differ, and a run takes about a second.
BASE = """\
model: {name: mnist_mlp, hidden: [16]}
optimizer: {name: adam, lr: 0.01}
epochs: 1
progress: false
precision: fp32
channels_last: false
"""
GRID = "sweep:\n  method: grid\n  space: {optimizer.lr: [0.003, 0.01], data.batch_size: [32, 64]}\n"
COMBOS = {(lr, batch) for lr, batch in itertools.product(["0.003", "0.01"], ["32", "64"])}
QUIET = Console(quiet=True)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def config_file(folder, sweep: str, extra: str = "", name: str = "s.yaml") -> str:
    (folder / name).write_text(BASE + extra + sweep)
    return str(folder / name)


def sweep(config: str, *options: str, **kwargs):
    kwargs = {"workers": 1, "storage_url": None, "study_name": None, "console": QUIET} | kwargs
    return start_sweep(config, [], list(options), **kwargs)


def read_trials(folder) -> list[dict[str, str]]:
    with open(folder / "trials.csv", newline="") as f:
        return list(csv.DictReader(f))


def combos(rows) -> list[tuple[str, str]]:
    return sorted((r["optimizer.lr"], r["data.batch_size"]) for r in rows if r["state"] == "complete")


def test_seeded_tpe_sweeps_are_reproducible(isolated):
    config = config_file(isolated, "sweep:\n  method: tpe\n  trials: 3\n  space:\n"
                         "    optimizer.lr: {low: 1.0e-3, high: 3.0e-2, log: true}\n    data.batch_size: [32, 64, 128]\n")  # fmt: skip
    first, second = sweep(config), sweep(config)
    picked = [[(r["optimizer.lr"], r["data.batch_size"], r["val/acc"]) for r in read_trials(f)] for f in (first, second)]
    assert picked[0] == picked[1] and len(picked[0]) == 3
    assert len({p[:2] for p in picked[0]}) == 3


def test_pruned_and_failed_trials_are_recorded_and_the_sweep_goes_on(isolated, monkeypatch):
    class PruneAfterOneEpoch(optuna.pruners.BasePruner):
        def prune(self, study, trial):
            return True

    monkeypatch.setattr(sweep_study, "_pruner", lambda name: PruneAfterOneEpoch())
    # A validation part of 0.9999 passes the config's checks, but leaves no image to train on: that trial fails.
    config = config_file(isolated, "sweep:\n  method: grid\n  pruner: median\n  space: {data.val_size: [0.1, 0.9999]}\n")
    folder = sweep(config, "epochs=2")
    pruned, failed = read_trials(folder)
    assert pruned["state"] == "pruned" and pruned["epochs"] == "1" and pruned["val/acc"]
    record = json.loads((folder / pruned["run"] / "run.json").read_text())
    assert record["status"] == "finished" and record["pruned_at_epoch"] == 1 and record["epochs_completed"] == 1
    assert failed["state"] == "failed" and "data.val_size=0.9999" in failed["error"] and not failed["val/acc"]


def test_a_grid_over_two_worker_processes_runs_every_combination_once(isolated):
    result = trainlab("sweep", config_file(isolated, GRID), "--workers", "2")
    assert result.returncode == 0, result.stderr
    folder = next((isolated / "sweeps").iterdir())
    rows = read_trials(folder)
    assert combos(rows) == sorted(COMBOS) and len(rows) == 4, "the two workers shared one study: no trial lost, none twice"
    threads = {json.loads((folder / r["run"] / "env.json").read_text())["torch_threads"] for r in rows}
    assert threads == {max(1, (os.cpu_count() or 1) // 2)}, "the workers split the CPU's threads"

    runs = find_runs([str(folder)])  # what `trainlab compare SWEEP_DIR` reads
    assert len(runs) == 4 and all((run / "report.html").is_file() for run in runs)
    for row in rows:
        config, _ = load_config(str(folder / row["run"] / "config.yaml"))
        assert (str(config.optimizer.lr), str(config.data.batch_size)) == (row["optimizer.lr"], row["data.batch_size"])
        assert config.sweep is None and "\nsweep:" not in (folder / row["run"] / "config.yaml").read_text()
    best = max(rows, key=lambda r: float(r["val/acc"]))
    config, _ = load_config(str(folder / "best.yaml"))  # runnable as it is: `trainlab run best.yaml`
    assert (config.optimizer.lr, config.data.batch_size) == (float(best["optimizer.lr"]), int(best["data.batch_size"]))
    assert config.output_dir == "runs" and config.sweep is None
    assert (folder / "history.png").is_file() and (folder / "parallel_coordinates.png").is_file()
    assert f"best trial: {best['number']}" in result.stdout


def test_a_killed_sweep_resumes_without_running_a_finished_trial_again(isolated):
    config = config_file(isolated, GRID)
    process = subprocess.Popen([sys.executable, "-m", "trainlab", "sweep", config], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    started = time.monotonic()
    while not list(isolated.glob("sweeps/*/runs/trial-0002-*")):  # trials 0 and 1 done, trial 2 under way
        assert process.poll() is None, process.stderr.read().decode()
        assert time.monotonic() - started < 180
        time.sleep(0.05)
    process.kill()
    process.wait()
    folder = next((isolated / "sweeps").iterdir())
    before = {r["number"]: r["run"] for r in read_trials(folder) if r["state"] == "complete"}
    assert list(before) == ["0", "1"]

    resume_sweep(folder, workers=1, storage_url=None, console=QUIET)
    rows = read_trials(folder)
    assert combos(rows) == sorted(COMBOS), "every combination completed exactly once"
    assert {r["number"]: r["run"] for r in rows if r["number"] in before} == before, "finished trials were not run again"
    killed = next(r for r in rows if r["number"] == "2")
    assert killed["state"] == "interrupted"
    assert json.loads((folder / killed["run"] / "run.json").read_text())["status"] == "interrupted"
    assert len(list((folder / "runs").iterdir())) == 5


@pytest.mark.parametrize(("sweep_section", "options", "fragments"), [
    ("sweep:\n  space: {scheduler.name: [cosine, cosin]}\n", [], ["scheduler.name=cosin", "known schedulers: constant"]),
    ("sweep:\n  space: {}\n", [], ["no field to search"]),
    (GRID, ["sweep.method=tpr"], ["did you mean 'tpe'"]),
    ("", [], ["no sweep: section"]),
])  # fmt: skip
def test_bad_input_stops_before_any_trial(isolated, sweep_section, options, fragments):
    with pytest.raises(UsageError) as error:
        sweep(config_file(isolated, sweep_section), *options)
    assert all(fragment in str(error.value) for fragment in fragments), str(error.value)
    assert not (isolated / "sweeps").exists()


def test_an_unreachable_storage_exits_2_plainly_before_any_trial(isolated):
    config = config_file(isolated, GRID)
    result = trainlab("sweep", config, "--storage", "postgresql://nobody@127.0.0.1:1/trainlab")
    assert_user_error(result, 2, "cannot open the study storage postgresql://nobody@127.0.0.1:1/trainlab")
    assert not (isolated / "sweeps").exists()


def test_a_regression_sweep_minimises_its_task_s_own_monitor(isolated):
    (isolated / "r.yaml").write_text(
        "task: regression\ndata: {name: sklearn_table, table: diabetes, batch_size: 32}\n"
        "model: {name: table_mlp, hidden: [8]}\nepochs: 2\nprogress: false\nprecision: fp32\n"
        "sweep:\n  method: grid\n  space: {optimizer.lr: [0.001, 0.01]}\n"
    )
    folder = sweep(str(isolated / "r.yaml"))
    rows = read_trials(folder)
    assert len(rows) == 2 and all(float(r["val/mae"]) > 0 for r in rows)  # no monitor named: the task's, val/mae
    lowest = min(rows, key=lambda r: float(r["val/mae"]))
    best = (folder / "best.yaml").read_text()
    assert f"val/mae {float(lowest['val/mae']):.4f}" in best and f"lr: {lowest['optimizer.lr']}" in best
