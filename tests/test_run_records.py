"""Every reader of a run folder's records: a missing or corrupt file is an error naming the file."""

import math

import numpy as np
import pytest

from trainlab.engine.callbacks import write_metrics_csv
from trainlab.engine.metric_names import METRIC_COLUMNS
from trainlab.errors import DataError
from trainlab.evaluation.metrics import TestResults, write_test_results
from trainlab.run_records import (
    CONFIG_YAML, CONFUSION_CSV, METRICS_CSV, REPORT_JSON, RUN_JSON, read_classification_report, read_config,
    read_evaluations, read_metrics, read_run_record, read_tested_classes, report_classes,
)  # fmt: skip

READERS = {  # reader -> the file of the run folder it reads
    read_run_record: RUN_JSON, read_evaluations: RUN_JSON, read_metrics: METRICS_CSV, read_config: CONFIG_YAML,
    read_classification_report: REPORT_JSON, read_tested_classes: CONFUSION_CSV,
}  # fmt: skip


@pytest.mark.parametrize("reader", READERS, ids=lambda reader: reader.__name__)
def test_a_missing_file_is_an_error_naming_it_unless_the_caller_can_do_without(tmp_path, reader):
    with pytest.raises(DataError) as error:
        reader(tmp_path)
    assert str(error.value) == f"{tmp_path / READERS[reader]}: missing"
    assert reader(tmp_path, missing_ok=True) == ([] if reader is read_evaluations else None)


@pytest.mark.parametrize(
    ("reader", "content", "problem"),
    [
        (read_run_record, b'{"status": "fini', ", line 1: not valid JSON, truncated or corrupt (Unterminated string"),
        (read_run_record, b"", ": empty"),
        (read_run_record, b'["finished"]', ": expected a JSON object, got list"),
        (read_run_record, b'{"name": "caf\xe9"}', ": not UTF-8 text (byte 13)"),
        (read_evaluations, b'{"evaluations": {"best": 1}}', ": `evaluations` is {'best': 1}, expected a list"),
        (read_evaluations, b'{"evaluations": [{"checkpoint": "best"}, 3]}', ": evaluations[1] is 3, expected an object"),
        (read_metrics, b"epoch,train_loss,val_acc\n1,1.0,0.5\n2,1.0", ", line 3: 2 values for 3 columns, truncated or corrupt"),
        (read_metrics, b"epoch,val_acc\n1,\xff\n", ": not UTF-8 text (byte 16)"),
        (read_metrics, b"epoch,val_acc\n1,0.5x\n", ", line 2: val_acc is '0.5x', not a number"),
        (read_metrics, b"", ": no header row naming the columns (epoch, train_loss, ...)"),
        (read_config, b"model: {name: workshop_cnn\nepochs: 2\n", ", line 2: not valid YAML (expected ',' or '}'"),
        (read_config, b"model: caf\xe9\n", ": not UTF-8 text (byte 10)"),
        (read_config, b"just some words\n", ": expected a mapping of config keys, got str"),
        (read_config, b"", ": expected a mapping of config keys, got nothing"),
        (read_classification_report, b'{"accuracy": 0.5, "cat": {"precision"', ", line 1: not valid JSON, truncated or corrupt"),
        (read_classification_report, b'{"accuracy": 0.5, "cat": {"precision": 1.0}}',
         ": 'cat' needs precision, recall, f1-score, support as numbers"),
        (read_classification_report, b'{"accuracy": "high"}', ": accuracy is 'high', not a number"),
        (read_tested_classes, b"cat,dog\n0,1\n", ", line 1: expected a header starting with 'true\\\\predicted', got ['cat']"),
        (read_tested_classes, b"", ", line 1: expected a header starting with 'true\\\\predicted', got []"),
        (read_tested_classes, b"true\\predicted,caf\xe9\n", ": not UTF-8 text (byte 18)"),
    ],
)
def test_a_corrupt_file_is_an_error_naming_the_file_and_what_is_wrong(tmp_path, reader, content, problem):
    path = tmp_path / READERS[reader]
    path.write_bytes(content)
    for missing_ok in (False, True):  # a file that is there but corrupt is an error either way
        with pytest.raises(DataError) as error:
            reader(tmp_path, missing_ok=missing_ok)
        assert str(error.value).startswith(f"{path}{problem}"), str(error.value)


def test_metrics_read_back_as_written_numbers_with_nan_kept_and_empty_cells_none(tmp_path):
    history = [
        {"epoch": 1, "train_loss": 2.25, "train_acc": 0.5, "val_loss": math.nan, "val_acc": math.nan, "lr": 0.001,
         "seconds": 1.5, "samples_per_s": 1200.0, "threads": 2},
        {"epoch": 2, "train_loss": 1.5, "train_acc": 0.75, "val_loss": math.inf, "val_acc": 0.25, "lr": 0.0005,
         "seconds": 1.25, "samples_per_s": 1300.0},  # no threads: an empty cell
    ]  # fmt: skip
    write_metrics_csv(tmp_path / METRICS_CSV, history)
    rows = read_metrics(tmp_path)
    assert [list(row) for row in rows] == [METRIC_COLUMNS] * 2
    assert rows[0]["epoch"] == 1 and isinstance(rows[0]["epoch"], int) and rows[0]["threads"] == 2
    assert math.isnan(rows[0]["val_loss"]) and rows[1]["val_loss"] == math.inf and rows[1]["threads"] is None
    assert rows[1]["lr"] == 0.0005 and rows[1]["val_acc"] == 0.25


def test_the_test_files_read_back_classes_in_label_order(tmp_path):
    classes = ["cat", "dog, big", 'say "hi"', "never seen"]
    y_true, y_pred = np.array([0, 1, 2, 1]), np.array([0, 1, 1, 1])
    write_test_results(tmp_path, TestResults(y_true, y_pred, np.full(4, 0.9), classes))
    assert read_tested_classes(tmp_path) == classes
    report = read_classification_report(tmp_path)
    assert report_classes(report) == classes and report["accuracy"] == 0.75


def test_config_reads_as_its_nested_mapping(tmp_path):
    (tmp_path / CONFIG_YAML).write_text("model: {name: workshop_cnn, channels: [4, 8]}\nepochs: 2\n")
    assert read_config(tmp_path) == {"model": {"name": "workshop_cnn", "channels": [4, 8]}, "epochs": 2}


def test_evaluations_are_empty_for_a_run_never_evaluated(tmp_path):
    (tmp_path / RUN_JSON).write_text('{"status": "finished"}')
    assert read_evaluations(tmp_path) == []
