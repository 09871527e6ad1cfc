"""Test results of the binary and regression tasks, beside the classification's (metrics.py): what each writes
into the run folder, the fields it adds to run.json and its line on the console.

Binary: the classification files (predictions, confusion matrix, report: the two classes), ROC and precision-recall
curves with their areas, and the decision threshold that maximises F1 on the validation split. Regression:
predictions.csv (true and predicted value of each target column), regression_report.json (MAE, RMSE, R² overall
and per column, by scikit-learn), a predicted-against-true scatter and a histogram of the residuals.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from trainlab.engine.tasks import regression_metrics
from trainlab.evaluation.metrics import TestResults, write_test_results
from trainlab.evaluation.plots import save_figure
from trainlab.utils.io import atomic_open, write_json

ROC_PNG, PRECISION_RECALL_PNG = "roc_curve.png", "precision_recall.png"
BINARY_JSON = "binary_report.json"
SCATTER_PNG, RESIDUALS_PNG = "predicted_vs_true.png", "residuals.png"
REGRESSION_JSON = "regression_report.json"


@dataclass
class BinaryResults(TestResults):
    """A binary task's test results: the classification's at the 0.5 threshold, plus the positive class's scores."""

    scores: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (N,) probability of the positive class (classes[1])
    threshold: float | None = None  # maximises F1 on the validation split

    __test__ = False

    def metrics(self) -> dict[str, float | None]:
        from sklearn.metrics import average_precision_score, f1_score, roc_auc_score

        both = len(np.unique(self.y_true)) == 2
        tuned = None if self.threshold is None else f1_score(self.y_true, self.scores >= self.threshold, zero_division=0)
        return {
            "auc": float(roc_auc_score(self.y_true, self.scores)) if both else None,
            "average_precision": float(average_precision_score(self.y_true, self.scores)) if both else None,
            "f1": float(f1_score(self.y_true, self.y_pred, zero_division=0)),
            "threshold": self.threshold, "f1_at_threshold": None if tuned is None else float(tuned),
        }  # fmt: skip

    def run_fields(self) -> dict[str, Any]:
        found = self.metrics()
        return {**super().run_fields(), "test_auc": found["auc"], "test_average_precision": found["average_precision"],
                "test_f1": found["f1"], "best_threshold": found["threshold"],
                "test_f1_at_best_threshold": found["f1_at_threshold"]}  # fmt: skip

    def summary(self) -> str:
        found = self.metrics()
        auc = "n/a (one class in the test split)" if found["auc"] is None else f"{found['auc']:.4f}"
        tuned = "" if self.threshold is None else f"; at the validation's best threshold {self.threshold:.3f}: F1 {found['f1_at_threshold']:.4f}"
        return f"test accuracy {self.accuracy:.4f}, F1 {found['f1']:.4f}, ROC AUC {auc}{tuned}"


def best_threshold(scores: np.ndarray, labels: np.ndarray) -> float | None:
    """The decision threshold on the positive class's probability that maximises F1 (None without positives)."""
    from sklearn.metrics import precision_recall_curve

    if not labels.any():
        return None
    precision, recall, thresholds = precision_recall_curve(labels, scores)
    f1 = 2 * precision[:-1] * recall[:-1] / np.clip(precision[:-1] + recall[:-1], 1e-12, None)
    return float(thresholds[int(np.argmax(f1))])


def write_binary_results(folder: Path, results: BinaryResults) -> None:
    write_test_results(folder, results)
    write_json(folder / BINARY_JSON, {"positive_class": results.classes[1], **results.metrics()})
    if len(np.unique(results.y_true)) == 2:
        roc, pr = binary_figures(results.y_true, results.scores, results.classes[1])
        save_figure(roc, folder / ROC_PNG)
        save_figure(pr, folder / PRECISION_RECALL_PNG)


def binary_figures(labels: np.ndarray, scores: np.ndarray, positive: str):
    from matplotlib.figure import Figure
    from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

    false_positive, true_positive, _ = roc_curve(labels, scores)
    roc = Figure(figsize=(4.5, 4.2), dpi=100)
    axes = roc.subplots()
    axes.plot(false_positive, true_positive, label=f"AUC {roc_auc_score(labels, scores):.3f}")
    axes.plot([0, 1], [0, 1], "--", color="grey", linewidth=0.8, label="chance")
    axes.set(xlabel="false positive rate", ylabel="true positive rate", title=f"ROC curve (positive: {positive})")
    axes.legend(loc="lower right")
    precision, recall, _ = precision_recall_curve(labels, scores)
    pr = Figure(figsize=(4.5, 4.2), dpi=100)
    axes = pr.subplots()
    axes.plot(recall, precision, label=f"average precision {average_precision_score(labels, scores):.3f}")
    axes.axhline(labels.mean(), linestyle="--", color="grey", linewidth=0.8, label="prevalence")
    axes.set(xlabel="recall", ylabel="precision", title=f"precision-recall (positive: {positive})", ylim=(0, 1.02))
    axes.legend(loc="lower left")
    return roc, pr


@dataclass
class RegressionResults:
    y_true: np.ndarray  # (N, T) in the targets' units
    y_pred: np.ndarray  # (N, T)
    targets: list[str]  # (T,) column names

    __test__ = False

    def metrics(self) -> dict[str, Any]:
        """MAE, RMSE and R² over all target columns (equal weights), and per column when there are several."""
        overall = regression_metrics(self.y_true, self.y_pred)
        if len(self.targets) > 1:
            overall["per_target"] = {name: regression_metrics(self.y_true[:, i], self.y_pred[:, i])
                                     for i, name in enumerate(self.targets)}  # fmt: skip
        return overall

    def run_fields(self) -> dict[str, Any]:
        found = self.metrics()
        return {"test_mae": found["mae"], "test_rmse": found["rmse"], "test_r2": found["r2"]}

    def summary(self) -> str:
        found = self.metrics()
        return f"test MAE {found['mae']:.4g}, RMSE {found['rmse']:.4g}, R² {found['r2']:.4f}"


def write_regression_results(folder: Path, results: RegressionResults) -> None:
    with atomic_open(folder / "predictions.csv", "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["index", *(f"{kind}_{name}" for name in results.targets for kind in ("true", "predicted"))])
        for i, (true, predicted) in enumerate(zip(results.y_true, results.y_pred)):
            writer.writerow([i, *(f"{v:.6g}" for pair in zip(true, predicted) for v in pair)])
    write_json(folder / REGRESSION_JSON, {"targets": results.targets, **results.metrics()})
    scatter, residuals = regression_figures(results.y_true, results.y_pred, results.targets)
    save_figure(scatter, folder / SCATTER_PNG)
    save_figure(residuals, folder / RESIDUALS_PNG)


def read_regression_predictions(folder: Path) -> RegressionResults:
    """predictions.csv of a regression run back as results (the tests score it again with scikit-learn)."""
    with open(folder / "predictions.csv", encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    header, values = rows[0], np.array([[float(v) for v in row[1:]] for row in rows[1:]])
    targets = [name.removeprefix("true_") for name in header[1::2]]
    return RegressionResults(values[:, 0::2], values[:, 1::2], targets)


def regression_figures(y_true: np.ndarray, y_pred: np.ndarray, targets: list[str]):
    from matplotlib.figure import Figure

    count = len(targets)
    scatter = Figure(figsize=(4.2 * count, 4.0), dpi=100)
    residuals = Figure(figsize=(4.2 * count, 3.4), dpi=100)
    for i, (left, right, name) in enumerate(zip(np.atleast_1d(scatter.subplots(1, count)),
                                                np.atleast_1d(residuals.subplots(1, count)), targets)):  # fmt: skip
        true, predicted = y_true[:, i], y_pred[:, i]
        low, high = float(min(true.min(), predicted.min())), float(max(true.max(), predicted.max()))
        left.scatter(true, predicted, s=10, alpha=0.6)
        left.plot([low, high], [low, high], "--", color="grey", linewidth=0.8)
        left.set(xlabel=f"true {name}", ylabel=f"predicted {name}", title="test split: predicted against true")
        right.hist(predicted - true, bins=30)
        right.axvline(0, color="grey", linewidth=0.8)
        right.set(xlabel=f"residual (predicted - true) {name}", ylabel="examples", title="test split: residuals")
    scatter.tight_layout()
    residuals.tight_layout()
    return scatter, residuals
