"""Test-set results: predictions, confusion matrices and per-class report, computed by scikit-learn."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import classification_report, confusion_matrix

from trainlab.errors import DataError
from trainlab.evaluation.plots import confusion_matrix_figure, save_figure
from trainlab.utils.io import atomic_open, write_json, write_text

PREDICTIONS_CSV = "predictions.csv"
CONFUSION_CSV = "confusion_matrix.csv"
CONFUSION_NORMALIZED_CSV = "confusion_matrix_normalized.csv"
CONFUSION_PNG = "confusion_matrix.png"
REPORT_TXT = "classification_report.txt"
REPORT_JSON = "classification_report.json"

_PREDICTION_COLUMNS = ["index", "true", "predicted", "confidence", "true_name", "predicted_name"]
_CORNER = "true\\predicted"


@dataclass
class TestResults:
    y_true: np.ndarray  # (N,) int, values in [0, C)
    y_pred: np.ndarray  # (N,) int, values in [0, C)
    confidence: np.ndarray  # (N,) float, probability the model gave its predicted class
    classes: list[str]  # (C,) names, index = label

    __test__ = False  # its name starts with "Test": keep pytest from collecting it

    @property
    def labels(self) -> list[int]:
        # Passed to every sklearn call so classes absent from both y_true and y_pred keep their row.
        return list(range(len(self.classes)))

    @property
    def accuracy(self) -> float:
        return float(np.mean(self.y_true == self.y_pred)) if len(self.y_true) else 0.0

    def confusion(self) -> np.ndarray:
        """(C, C) counts: row = true class, column = predicted class."""
        return confusion_matrix(self.y_true, self.y_pred, labels=self.labels)

    def confusion_normalized(self) -> np.ndarray:
        """(C, C) rows divided by their sums (recall on the diagonal); a class with no samples is a row of 0."""
        return confusion_matrix(self.y_true, self.y_pred, labels=self.labels, normalize="true")

    def report_text(self) -> str:
        return classification_report(self.y_true, self.y_pred, **self._report_kwargs())

    def report_dict(self) -> dict[str, Any]:
        return classification_report(self.y_true, self.y_pred, output_dict=True, **self._report_kwargs())

    def run_fields(self) -> dict[str, Any]:
        """What run.json records of the test."""
        return {"test_acc": self.accuracy, "test_macro_f1": self.report_dict()["macro avg"]["f1-score"]}

    def summary(self) -> str:
        return f"test accuracy {self.accuracy:.4f}, test macro F1 {self.report_dict()['macro avg']['f1-score']:.4f}"

    def _report_kwargs(self) -> dict[str, Any]:
        return dict(labels=self.labels, target_names=self.classes, digits=4, zero_division=0)


def write_test_results(run_dir: Path, results: TestResults) -> None:
    """Write predictions, confusion matrices (CSV and PNG) and the classification report into `run_dir`."""
    run_dir = Path(run_dir)
    _write_predictions(run_dir / PREDICTIONS_CSV, results)
    _write_matrix(run_dir / CONFUSION_CSV, results.confusion(), results.classes, "{:d}")
    _write_matrix(run_dir / CONFUSION_NORMALIZED_CSV, results.confusion_normalized(), results.classes, "{:.4f}")
    save_figure(confusion_matrix_figure(results.confusion(), results.classes), run_dir / CONFUSION_PNG)
    write_text(run_dir / REPORT_TXT, results.report_text())
    write_json(run_dir / REPORT_JSON, results.report_dict())


def read_predictions(run_dir: Path) -> TestResults:
    """Re-read what `write_test_results` wrote; class names come from the confusion matrix header,
    which lists every class, even one that is neither in the test set nor ever predicted."""
    run_dir = Path(run_dir)
    classes = _read_classes(run_dir / CONFUSION_CSV)
    path = run_dir / PREDICTIONS_CSV
    rows = _read_rows(path)
    try:
        y_true = np.array([int(r["true"]) for r in rows], dtype=np.int64)
        y_pred = np.array([int(r["predicted"]) for r in rows], dtype=np.int64)
        confidence = np.array([float(r["confidence"]) for r in rows], dtype=np.float64)
    except (KeyError, TypeError, ValueError) as e:
        raise DataError(f"{path}: expected columns {', '.join(_PREDICTION_COLUMNS)} with numbers ({e})") from e
    out_of_range = (y_true < 0) | (y_true >= len(classes)) | (y_pred < 0) | (y_pred >= len(classes))
    if out_of_range.any():
        row = int(np.argmax(out_of_range)) + 2  # +1 for the header, +1 for 1-based lines
        raise DataError(f"{path}, line {row}: label outside 0..{len(classes) - 1} ({len(classes)} classes)")
    return TestResults(y_true=y_true, y_pred=y_pred, confidence=confidence, classes=classes)


def _write_predictions(path: Path, results: TestResults) -> None:
    with atomic_open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(_PREDICTION_COLUMNS)
        for i, (t, p, c) in enumerate(zip(results.y_true, results.y_pred, results.confidence)):
            writer.writerow([i, int(t), int(p), f"{float(c):.6f}", results.classes[t], results.classes[p]])


def _write_matrix(path: Path, matrix: np.ndarray, classes: list[str], fmt: str) -> None:
    with atomic_open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([_CORNER, *classes])
        for name, row in zip(classes, matrix):
            writer.writerow([name, *(fmt.format(v.item()) for v in row)])


def _read_rows(path: Path) -> list[dict[str, str]]:
    try:
        with open(path, encoding="utf-8", newline="") as f:
            return list(csv.DictReader(f))
    except FileNotFoundError as e:
        raise DataError(f"{path}: not found; `write_test_results` writes it after the test pass") from e


def _read_classes(path: Path) -> list[str]:
    try:
        with open(path, encoding="utf-8", newline="") as f:
            header = next(csv.reader(f), [])
    except FileNotFoundError as e:
        raise DataError(f"{path}: not found; it holds the class names next to the predictions") from e
    if not header or header[0] != _CORNER:
        raise DataError(f"{path}, line 1: expected a header starting with {_CORNER!r}, got {header[:1]}")
    return header[1:]
