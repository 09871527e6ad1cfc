"""What `trainlab compare` reads of a run folder: its config, run.json and metrics.csv, as a RunSummary.
A file that is missing leaves its fields None; a file that is corrupt is named in `problems`."""

from __future__ import annotations

import csv
import glob
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from trainlab.errors import DataError, UsageError
from trainlab.run_folder import RunFolder, read_record, run_status
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
    images_per_s: float | None  # median over epochs of metrics.csv samples_per_s
    history: list[dict[str, float | None]] = field(default_factory=list)  # metrics.csv rows
    tested: str | None = None  # the checkpoint behind test_acc: "best@12" (best.pt, from epoch 12), "last@15"
    problems: list[str] = field(default_factory=list)  # "runs/x/run.json, line 3: not valid JSON (...)", one per broken file


def _is_run(path: Path) -> bool:
    return (path / "config.yaml").is_file()


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


def _parses_as_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


_NUMERIC_METRICS = ("epoch", "val_acc", "val_loss", "samples_per_s")  # the metrics.csv columns compare reads


def _read_history(path: Path) -> list[dict[str, float | None]]:
    """metrics.csv rows, values as numbers (None when empty or NaN); [] without the file (no epoch finished yet).

    The file is rewritten whole after every epoch, so anything but a header and complete rows of numbers is
    corruption: a DataError naming the file, the line and what is wrong.
    """
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if not header or "epoch" not in header:
                raise DataError(f"{path}: no header row naming the columns (epoch, train_loss, ...)")
            rows = []
            for row in reader:
                if not row:
                    continue  # a blank line
                if len(row) != len(header):
                    raise DataError(f"{path}, line {reader.line_num}: {len(row)} values for {len(header)} columns, "
                                    "truncated or corrupt")  # fmt: skip
                for key, value in zip(header, row):
                    if key in _NUMERIC_METRICS and value and not _parses_as_float(value):
                        raise DataError(f"{path}, line {reader.line_num}: {key} is {value[:20]!r}, not a number")
                rows.append({key: finite_number(value) for key, value in zip(header, row) if key})
            return rows
    except FileNotFoundError:
        return []
    except UnicodeDecodeError:
        raise DataError(f"{path}: not UTF-8 text") from None
    except csv.Error as e:
        raise DataError(f"{path}: not a CSV file ({e})") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read it ({e.strerror or e})") from None


def _read_config(path: Path) -> dict[str, Any]:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return {}
    return flatten(raw) if isinstance(raw, dict) else {}


def load_run(path: str | Path) -> RunSummary:
    """Read one run folder. A missing or corrupt run.json, or a corrupt metrics.csv, leaves None values
    and a line in `problems` naming the file and what is wrong; a folder without config.yaml is a UsageError."""
    folder = RunFolder.open(Path(path))
    problems = []
    try:
        record = read_record(folder.path / "run.json")
    except DataError as e:
        record = {}
        problems.append(str(e))
    try:
        history = _read_history(folder.path / "metrics.csv")
    except DataError as e:
        history = []
        problems.append(str(e))
    val_accs = [row["val_acc"] for row in history if row.get("val_acc") is not None]
    speeds = [row["samples_per_s"] for row in history if row.get("samples_per_s") is not None]
    best_val = max(val_accs) if val_accs else None
    if best_val is None and record.get("monitor") == "val/acc":
        best_val = finite_number(record.get("best_val"))
    epochs = finite_number(record.get("epochs_completed"))
    return RunSummary(
        name=str(record.get("name") or folder.path.name),
        path=folder.path,
        config=_read_config(folder.path / "config.yaml"),
        status=run_status(record)[0] if record else None,  # `died`: run.json says running, its process is gone
        epochs_completed=int(epochs) if epochs is not None else (len(history) or None),
        best_val_acc=best_val,
        test_acc=finite_number(record.get("test_acc")),
        test_macro_f1=finite_number(record.get("test_macro_f1")),
        train_seconds=finite_number(record.get("train_seconds")),
        images_per_s=statistics.median(speeds) if speeds else None,
        history=history,
        tested=_tested(record),
        problems=problems,
    )


def _tested(record: dict[str, Any]) -> str | None:
    """Which weights the recorded test result is of: "best@12" (best.pt, saved at epoch 12), "last@15"."""
    checkpoint = record.get("tested_checkpoint")
    if not isinstance(checkpoint, str) or finite_number(record.get("test_acc")) is None:
        return None
    epoch = record.get("tested_epoch", record.get("best_epoch") if checkpoint == "best" else record.get("epochs_completed"))
    epoch = finite_number(epoch)
    return checkpoint if epoch is None else f"{checkpoint}@{epoch:.0f}"
