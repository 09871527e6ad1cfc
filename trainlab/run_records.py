"""Reading back the records of a run folder: run.json, metrics.csv, config.yaml and the test files.

One policy for every reader: a missing or corrupt file is a DataError that names the file and what is
wrong (exit 1), never an empty result. A caller that can do without a file says so with `missing_ok=True`
and gets None for a missing one (a run that stopped before its test pass has no classification report);
a corrupt file is an error all the same. The `read_<file>` readers take the run folder (or an evaluation
folder, which holds the same test files); `read_text` and `read_json` take the file.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import yaml

from trainlab.errors import DataError

RUN_JSON = "run.json"
METRICS_CSV = "metrics.csv"
CONFIG_YAML = "config.yaml"
REPORT_JSON = "classification_report.json"  # as trainlab.evaluation.metrics writes them
CONFUSION_CSV = "confusion_matrix.csv"
MISTAKES_JSON, MISTAKES_PNG = "mistakes.json", "mistakes.png"  # as trainlab.evaluation.mistakes writes them
CONFUSION_CORNER = "true\\predicted"  # the confusion matrix's first header cell; the classes follow it
NOT_CLASSES = ("accuracy", "micro avg", "macro avg", "weighted avg", "samples avg")  # a classification report's totals
_REPORT_SCORES = ("precision", "recall", "f1-score", "support")
_PAIR_KEYS = {"true_name": "text", "predicted_name": "text", "count": "an integer", "share": "a number"}  # mistakes.json
_EXAMPLE_KEYS = {"index": "an integer", "true_name": "text", "predicted_name": "text", "p_predicted": "a number",
                 "p_true": "a number", "loss": "a number"}  # fmt: skip

Number = int | float


def read_text(path: Path, *, missing_ok: bool = False) -> str | None:
    """A UTF-8 text file; None when it is missing and `missing_ok`."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        if missing_ok:
            return None
        raise DataError(f"{path}: missing") from None
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text (byte {e.start})") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read it ({e.strerror or e})") from None


def read_json(path: Path, *, missing_ok: bool = False) -> dict[str, Any] | None:
    """A JSON object (every JSON file of a run folder holds one); None when it is missing and `missing_ok`."""
    text = read_text(path, missing_ok=missing_ok)
    if text is None:
        return None
    if not text.strip():
        raise DataError(f"{path}: empty")
    try:
        record = json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError(f"{path}, line {e.lineno}: not valid JSON, truncated or corrupt ({e.msg})") from None
    if not isinstance(record, dict):
        raise DataError(f"{path}: expected a JSON object, got {type(record).__name__}")
    return record


def read_run_record(run_dir: Path, *, missing_ok: bool = False) -> dict[str, Any] | None:
    """run.json: status, timings, final metrics, the training process."""
    return read_json(Path(run_dir) / RUN_JSON, missing_ok=missing_ok)


def read_evaluations(run_dir: Path, *, missing_ok: bool = False) -> list[dict[str, Any]]:
    """run.json's `evaluations`, one per `trainlab eval`, oldest first; [] when it has none (or, with
    `missing_ok`, when there is no run.json)."""
    path = Path(run_dir) / RUN_JSON
    evaluations = (read_json(path, missing_ok=missing_ok) or {}).get("evaluations", [])
    if not isinstance(evaluations, list):
        raise DataError(f"{path}: `evaluations` is {evaluations!r:.60}, expected a list")
    for i, entry in enumerate(evaluations):
        if not isinstance(entry, dict):
            raise DataError(f"{path}: evaluations[{i}] is {entry!r:.60}, expected an object")
    return evaluations


def read_metrics(run_dir: Path, *, missing_ok: bool = False) -> list[dict[str, Number | None]] | None:
    """metrics.csv, one dict per epoch: column -> int or float (NaN and inf as written), None for an empty cell.

    The file is rewritten whole after every epoch, so anything but a header naming `epoch` and complete
    rows of numbers is corruption: the error names the line.
    """
    path = Path(run_dir) / METRICS_CSV
    text = read_text(path, missing_ok=missing_ok)
    if text is None:
        return None
    try:
        reader = csv.reader(io.StringIO(text, newline=""))
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
            rows.append({key: _number(value, path, reader.line_num, key) for key, value in zip(header, row) if key})
        return rows
    except csv.Error as e:
        raise DataError(f"{path}: not a CSV file ({e})") from None


def _number(text: str, path: Path, line: int, column: str) -> Number | None:
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        raise DataError(f"{path}, line {line}: {column} is {text[:20]!r}, not a number") from None


def read_config(run_dir: Path, *, missing_ok: bool = False) -> dict[str, Any] | None:
    """config.yaml as its nested mapping, as written (not checked against the schema: `load_config` does that)."""
    path = Path(run_dir) / CONFIG_YAML
    text = read_text(path, missing_ok=missing_ok)
    if text is None:
        return None
    try:
        config = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f", line {mark.line + 1}" if mark is not None else ""
        raise DataError(f"{path}{where}: not valid YAML ({getattr(e, 'problem', None) or e})") from None
    if not isinstance(config, dict):
        got = "nothing" if config is None else type(config).__name__
        raise DataError(f"{path}: expected a mapping of config keys, got {got}")
    return config


def read_classification_report(run_dir: Path, *, missing_ok: bool = False) -> dict[str, Any] | None:
    """classification_report.json, scikit-learn's: class or average -> precision, recall, f1-score, support;
    `accuracy` -> a number."""
    path = Path(run_dir) / REPORT_JSON
    report = read_json(path, missing_ok=missing_ok)
    if report is None:
        return None
    for name, scores in report.items():
        if name == "accuracy":
            if not _is_number(scores):
                raise DataError(f"{path}: accuracy is {scores!r}, not a number")
        elif not isinstance(scores, dict) or not all(_is_number(scores.get(key)) for key in _REPORT_SCORES):
            raise DataError(f"{path}: {name!r} needs {', '.join(_REPORT_SCORES)} as numbers, got {scores!r:.80}")
    return report


def report_classes(report: dict[str, Any]) -> list[str]:
    """The class names of a classification report, without accuracy and the averages."""
    return [name for name in report if name not in NOT_CLASSES]


def read_tested_classes(run_dir: Path, *, missing_ok: bool = False) -> list[str] | None:
    """The classes a run was tested on, in label order: the confusion matrix's header, which lists every
    class, even one neither in the test set nor ever predicted."""
    path = Path(run_dir) / CONFUSION_CSV
    text = read_text(path, missing_ok=missing_ok)
    if text is None:
        return None
    try:
        header = next(csv.reader(io.StringIO(text, newline="")), [])
    except csv.Error as e:
        raise DataError(f"{path}: not a CSV file ({e})") from None
    if not header or header[0] != CONFUSION_CORNER:
        raise DataError(f"{path}, line 1: expected a header starting with {CONFUSION_CORNER!r}, got {header[:1]}")
    return header[1:]


def read_mistakes(run_dir: Path, *, missing_ok: bool = False) -> dict[str, Any] | None:
    """mistakes.json: `pairs`, the most confused (true, predicted) classes with their count and share of the true
    class; `examples`, the test examples with the highest loss, with `text` for a text run."""
    path = Path(run_dir) / MISTAKES_JSON
    record = read_json(path, missing_ok=missing_ok)
    if record is None:
        return None
    for table, keys in (("pairs", _PAIR_KEYS), ("examples", _EXAMPLE_KEYS)):
        rows = record.get(table)
        if not isinstance(rows, list):
            raise DataError(f"{path}: `{table}` is {rows!r:.60}, expected a list")
        for i, row in enumerate(rows):
            if not isinstance(row, dict):
                raise DataError(f"{path}: {table}[{i}] is {row!r:.60}, expected an object")
            for key, kind in [*keys.items(), *([("text", "text")] if "text" in row else [])]:
                if not _is_kind(row.get(key), kind):
                    raise DataError(f"{path}: {table}[{i}].{key} is {row.get(key)!r:.60}, expected {kind}")
    return record


def _is_kind(value: Any, kind: str) -> bool:
    if kind == "text":
        return isinstance(value, str)
    return _is_number(value) and (kind == "a number" or isinstance(value, int))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
