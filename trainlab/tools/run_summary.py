"""What `trainlab compare` reads of a run folder: its config, run.json and metrics.csv, as a RunSummary.
A file that cannot be read leaves its fields None and is named in `problems`; fields are named as in
trainlab.engine.metric_names."""

from __future__ import annotations

import glob
import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainlab.engine import metric_names as names
from trainlab.engine.monitor import Monitor
from trainlab.errors import DataError, UsageError
from trainlab.run_folder import RunFolder, run_status
from trainlab.run_records import CONFIG_YAML, read_config, read_metrics, read_run_record
from trainlab.utils.records import flatten


@dataclass
class RunSummary:
    """What one run folder records; None wherever a file is missing or unreadable."""

    name: str
    path: Path
    config: dict[str, Any]  # flattened: {"optimizer.lr": 0.001, "model.channels": [32, 32, 64, 64], ...}
    status: str | None
    epochs_completed: int | None
    best_val_acc: float | None  # fraction, max over metrics.csv val_acc
    test_acc: float | None  # fraction
    test_macro_f1: float | None  # fraction
    train_seconds: float | None
    samples_per_s: float | None  # median over epochs of metrics.csv samples_per_s
    history: list[dict[str, float | None]] = field(default_factory=list)  # metrics.csv rows; None for empty or NaN
    tested: str | None = None  # the checkpoint behind test_acc: "best@12" (best.pt, from epoch 12), "last@15"
    task_metrics: dict[str, float] = field(default_factory=dict)  # a binary or regression task's: test_auc, test_r2, ...
    problems: list[str] = field(default_factory=list)  # "runs/x/run.json, line 3: not valid JSON (...)", one per broken file


def _is_run(path: Path) -> bool:
    return (path / CONFIG_YAML).is_file()


def _runs_at(path: Path) -> list[Path]:
    if _is_run(path):
        return [path]
    if (path / "sweep.yaml").is_file() and (path / "runs").is_dir():
        path = path / "runs"  # a sweep folder: its trials' runs
    if path.is_dir():
        return sorted(child for child in path.iterdir() if child.is_dir() and _is_run(child))
    return []


def find_runs(paths: Sequence[str]) -> list[Path]:
    """Run folders named by `paths`, sorted: each a run folder (holds config.yaml), a folder of
    run folders (its children that are runs), a sweep folder (its trials), or a glob matching these.

    A path that does not exist, or finding no run at all, is a UsageError.
    """
    found: dict[Path, Path] = {}  # resolved -> as found, so a run named twice appears once
    for arg in paths:
        pattern = str(Path(arg).expanduser())
        if glob.has_magic(pattern):
            matches = [Path(m) for m in sorted(glob.glob(pattern))]
        elif Path(pattern).exists():
            matches = [Path(pattern)]
        else:
            raise UsageError(f"no such run folder: {arg}")
        for match in matches:
            for run in _runs_at(match):
                found.setdefault(run.resolve(), run)
    if not found:
        raise UsageError(
            f"no run folders found in {' '.join(map(str, paths)) or '(no paths given)'}: "
            "give run folders (each holds a config.yaml), folders of runs such as runs/, or globs such as 'runs/lr-*'"
        )
    return sorted(found.values())


def finite_number(value: Any) -> float | None:
    """`value` as a finite float, or None for None, "", NaN and anything unparseable."""
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def load_run(path: str | Path) -> RunSummary:
    """Read one run folder. A missing or corrupt run.json or config.yaml, or a corrupt metrics.csv, leaves
    None values and a line in `problems` naming the file and what is wrong (the run shows as broken); a
    missing metrics.csv is a run with no epoch finished yet. A folder without config.yaml is a UsageError."""
    folder = RunFolder.open(Path(path))
    problems = []

    def read(reader: Callable[..., Any], empty: Any, **kwargs: Any) -> Any:
        try:
            return reader(folder.path, **kwargs)
        except DataError as e:
            problems.append(str(e))
            return empty

    record = read(read_run_record, {})
    history = [{key: finite_number(value) for key, value in row.items()}
               for row in read(read_metrics, [], missing_ok=True) or []]  # fmt: skip
    config = read(read_config, {})
    val_accs = [row[names.VAL_ACC] for row in history if row.get(names.VAL_ACC) is not None]
    speeds = [row[names.SAMPLES_PER_S] for row in history if row.get(names.SAMPLES_PER_S) is not None]
    best_val = max(val_accs) if val_accs else None
    if best_val is None and _monitored_column(record) == names.VAL_ACC:  # run.json's best_val is then the best val_acc
        best_val = finite_number(record.get("best_val"))
    epochs = finite_number(record.get(names.EPOCHS_COMPLETED))
    return RunSummary(
        name=str(record.get("name") or folder.path.name),
        path=folder.path,
        config=flatten(config),
        status=run_status(record)[0] if record else None,  # `died`: run.json says running, its process is gone
        epochs_completed=int(epochs) if epochs is not None else (len(history) or None),
        best_val_acc=best_val,
        test_acc=finite_number(record.get(names.TEST_ACC)),
        test_macro_f1=finite_number(record.get(names.TEST_MACRO_F1)),
        train_seconds=finite_number(record.get(names.TRAIN_SECONDS)),
        samples_per_s=statistics.median(speeds) if speeds else None,
        history=history,
        tested=_tested(record),
        task_metrics=_task_metrics(record),
        problems=problems,
    )


# run.json's figures of the binary and regression tasks, with whether higher is better; compare shows them
TASK_METRICS = {
    "best_val_auc": True, "best_val_f1": True, "best_val_mae": False, "best_val_rmse": False, "best_val_r2": True,
    "test_auc": True, "test_average_precision": True, "test_f1": True, "test_mae": False, "test_rmse": False, "test_r2": True,
}  # fmt: skip


def _task_metrics(record: dict[str, Any]) -> dict[str, float]:
    found = {f"best_{_monitored_column(record)}": record.get("best_val"), **record}
    return {key: number for key in TASK_METRICS if (number := finite_number(found.get(key))) is not None}


def _tested(record: dict[str, Any]) -> str | None:
    """Which weights the recorded test result is of: "best@12" (best.pt, saved at epoch 12), "last@15"."""
    checkpoint = record.get("tested_checkpoint")
    if not isinstance(checkpoint, str) or finite_number(record.get(names.TEST_ACC, record.get("test_r2"))) is None:
        return None
    epoch = record.get("tested_epoch", record.get("best_epoch") if checkpoint == "best" else record.get("epochs_completed"))
    epoch = finite_number(epoch)
    return checkpoint if epoch is None else f"{checkpoint}@{epoch:.0f}"


def _monitored_column(record: dict[str, Any]) -> str | None:
    """The history column of run.json's `monitor` ("val/acc" -> "val_acc"); None when absent or unknown."""
    try:
        return Monitor.parse(record.get("monitor")).column
    except ValueError:
        return None
