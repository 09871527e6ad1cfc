import csv
import json

import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import classification_report

from trainlab.errors import DataError
from trainlab.evaluation.metrics import TestResults, read_predictions, write_test_results

CLASSES = ["ant", "bee", "cow"]


@pytest.fixture
def results() -> TestResults:
    # 30 samples: "cow" never occurs in y_true (no support), "bee" is never predicted.
    y_true = np.array([0] * 18 + [1] * 12)
    y_pred = np.array([0] * 15 + [2] * 3 + [0] * 8 + [2] * 4)
    confidence = np.linspace(0.34, 0.99, 30)
    return TestResults(y_true=y_true, y_pred=y_pred, confidence=confidence, classes=CLASSES)


@pytest.fixture
def run_dir(tmp_path):
    return tmp_path / "run"  # a folder of its own: tests/conftest.py puts a "work" folder in tmp_path


def read_matrix(path) -> tuple[list[str], list[str], np.ndarray]:
    with open(path, newline="") as f:
        header, *rows = list(csv.reader(f))
    return header, [r[0] for r in rows], np.array([[float(v) for v in r[1:]] for r in rows])


def test_report_files_equal_sklearn_on_predictions_read_back(run_dir, results):
    write_test_results(run_dir, results)
    back = read_predictions(run_dir)
    kwargs = dict(labels=[0, 1, 2], target_names=CLASSES, digits=4, zero_division=0)
    expected_text = classification_report(back.y_true, back.y_pred, **kwargs)
    expected_dict = classification_report(back.y_true, back.y_pred, output_dict=True, **kwargs)
    assert (run_dir / "classification_report.txt").read_text() == expected_text
    assert json.loads((run_dir / "classification_report.json").read_text()) == expected_dict
    assert set(expected_dict) >= {*CLASSES, "accuracy", "macro avg", "weighted avg"}


def test_read_predictions_round_trips_labels_confidence_and_awkward_class_names(run_dir, results):
    results.classes = ["ant", 'bee, "wild"', "<b>"]
    write_test_results(run_dir, results)
    back = read_predictions(run_dir)
    np.testing.assert_array_equal(back.y_true, results.y_true)
    np.testing.assert_array_equal(back.y_pred, results.y_pred)
    np.testing.assert_allclose(back.confidence, results.confidence, atol=1e-6)
    assert back.classes == results.classes


def test_predictions_csv_names_each_label(run_dir, results):
    write_test_results(run_dir, results)
    with open(run_dir / "predictions.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["index", "true", "predicted", "confidence", "true_name", "predicted_name"]
    assert len(rows) == 30
    assert all(CLASSES[int(r["true"])] == r["true_name"] for r in rows)
    assert all(CLASSES[int(r["predicted"])] == r["predicted_name"] for r in rows)


def test_confusion_csv_has_one_row_per_true_class_and_sums_to_n(run_dir, results):
    write_test_results(run_dir, results)
    header, row_names, counts = read_matrix(run_dir / "confusion_matrix.csv")
    assert header == ["true\\predicted", *CLASSES]
    assert row_names == CLASSES
    assert counts.sum() == 30
    np.testing.assert_array_equal(counts, results.confusion())


def test_normalized_rows_sum_to_one_and_empty_class_row_is_zero(run_dir, results):
    write_test_results(run_dir, results)
    _, _, rates = read_matrix(run_dir / "confusion_matrix_normalized.csv")
    np.testing.assert_allclose(rates.sum(axis=1), [1.0, 1.0, 0.0], atol=1e-3)
    assert not np.isnan(results.confusion_normalized()).any()


def test_accuracy_is_fraction_of_correct_predictions(results):
    assert results.accuracy == pytest.approx(15 / 30)


def test_write_leaves_only_the_result_files(run_dir, results):
    write_test_results(run_dir, results)
    assert sorted(p.name for p in run_dir.iterdir()) == [
        "classification_report.json",
        "classification_report.txt",
        "confusion_matrix.csv",
        "confusion_matrix.png",
        "confusion_matrix_normalized.csv",
        "predictions.csv",
    ]


def test_confusion_png_opens_at_a_plausible_size(run_dir, results):
    write_test_results(run_dir, results)
    with Image.open(run_dir / "confusion_matrix.png") as image:
        assert image.format == "PNG"
        assert 400 < image.width < 3000 and 200 < image.height < 2000


def test_read_predictions_names_the_missing_file(run_dir):
    with pytest.raises(DataError, match="confusion_matrix.csv"):
        read_predictions(run_dir)


def test_read_predictions_rejects_labels_outside_the_classes(run_dir, results):
    write_test_results(run_dir, results)
    path = run_dir / "predictions.csv"
    path.write_text(path.read_text().replace("\n0,0,0,", "\n0,7,0,", 1))
    with pytest.raises(DataError, match="line 2"):
        read_predictions(run_dir)
