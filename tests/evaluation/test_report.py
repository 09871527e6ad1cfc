import base64
import csv
import json

import numpy as np
import pytest

from trainlab.errors import DataError
from trainlab.evaluation.metrics import TestResults, write_test_results
from trainlab.evaluation.mistakes import write_mistakes
from trainlab.evaluation.plots import curves_figure, save_figure
from trainlab.evaluation.report import write_html_report

CLASSES = ["ant", "bee", "<b>"]
EPOCHS = [
    {"epoch": 1, "train_loss": 1.1, "train_acc": 0.41, "val_loss": 1.0, "val_acc": 0.45, "lr": 0.01, "seconds": 2.5},
    {"epoch": 2, "train_loss": 0.8, "train_acc": 0.62, "val_loss": 0.9, "val_acc": 0.58, "lr": 0.005, "seconds": 2.4},
]


def write_metrics_and_config(run_dir) -> None:
    with open(run_dir / "metrics.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(EPOCHS[0]))
        writer.writeheader()
        writer.writerows(EPOCHS)
    (run_dir / "config.yaml").write_text("model: workshop_cnn\nepochs: 2\n")


@pytest.fixture
def run_dir(tmp_path):
    run_dir = tmp_path / "workshop-20250101-120000"
    run_dir.mkdir()
    write_metrics_and_config(run_dir)
    y_true = np.array([0] * 18 + [1] * 12)
    y_pred = np.array([0] * 15 + [2] * 3 + [0] * 8 + [2] * 4)
    write_test_results(run_dir, TestResults(y_true, y_pred, np.full(30, 0.9), CLASSES))
    save_figure(curves_figure(EPOCHS), run_dir / "curves.png")
    (run_dir / "run.json").write_text(json.dumps({"status": "finished", "started": "2025-01-01T12:00:00+00:00"}))
    (run_dir / "env.json").write_text(json.dumps({"python": "3.11.9", "torch": "2.13.0", "cuda": None}))
    return run_dir


def test_report_is_one_self_contained_file(run_dir):
    html = write_html_report(run_dir).read_text()
    assert "data:image/png;base64," in html
    assert html.count("<img") == 2  # curves and confusion matrix
    assert 'src="http' not in html and "<link" not in html and "<script" not in html
    assert "url(" not in html and "@import" not in html
    assert "--accent:" in html and "<style>" in html, "the style sheet is inlined"


def test_report_shows_title_status_headline_and_class_names(run_dir):
    html = write_html_report(run_dir).read_text()
    assert "workshop-20250101-120000" in html and "finished" in html and "2025-01-01 12:00:00" in html
    assert "50.00%" in html  # test accuracy: 15 of 30
    assert "58.00%" in html  # best validation accuracy
    for name in ("ant", "bee", "macro avg", "weighted avg", "3.11.9", "model: workshop_cnn"):
        assert name in html


def test_report_escapes_class_names(run_dir):
    html = write_html_report(run_dir).read_text()
    assert "&lt;b&gt;" in html
    assert "<b>" not in html


def test_report_is_written_from_config_and_metrics_alone(tmp_path):
    write_metrics_and_config(tmp_path)
    html = write_html_report(tmp_path).read_text()
    assert "Epochs" in html and "Config" in html and "58.00%" in html
    assert "<img" not in html and "Per-class" not in html and "Environment" not in html and "Mistakes" not in html


class Examples:
    """A test loader's `examples`: images (N, H, W, C) or texts."""

    def __init__(self, items):
        self.items = items

    def examples(self, indices):
        return [self.items[i] for i in indices]


def write_some_mistakes(run_dir, examples) -> None:
    labels = np.array([0] * 6 + [1] * 6)
    probabilities = np.tile([0.2, 0.1, 0.7], (12, 1))  # everything taken for "<b>"
    probabilities[:6] = [0.6, 0.1, 0.3]  # but the ants right
    write_mistakes(run_dir, probabilities, labels, CLASSES, Examples(examples))


def test_report_shows_the_mistakes_of_an_image_run_with_their_picture(run_dir):
    write_some_mistakes(run_dir, np.random.default_rng(0).integers(0, 256, (12, 8, 8, 3), dtype=np.uint8))
    html = write_html_report(run_dir).read_text()
    assert 'href="#mistakes"' in html and 'id="mistakes"' in html
    assert "<tr><td>bee</td><td>&lt;b&gt;</td><td>6</td><td>100.00%</td></tr>" in html
    assert html.count("<img") == 3 and base64.b64encode((run_dir / "mistakes.png").read_bytes()).decode() in html
    assert "12 test examples with the highest loss" in html and 'class="sentences"' not in html


def test_report_shows_the_sentences_of_a_text_run_escaped(run_dir):
    texts = [f"text number {i}" for i in range(11)] + ["a <script>alert(1)</script> text"]
    write_some_mistakes(run_dir, texts)
    html = write_html_report(run_dir).read_text()
    assert 'class="sentences"' in html and html.count("<img") == 2  # no picture of texts
    assert "<td>bee</td><td>&lt;b&gt;</td><td>0.700</td><td>0.100</td><td>2.303</td><td>text number 6</td>" in html
    assert "a &lt;script&gt;alert(1)&lt;/script&gt; text" in html and "<script" not in html


def test_report_of_a_run_without_mistakes_says_so(run_dir):
    labels = np.array([0, 1, 2])
    write_mistakes(run_dir, np.eye(3)[labels], labels, CLASSES, Examples(["a", "b", "c"]))
    html = write_html_report(run_dir).read_text()
    assert "No test example was misclassified." in html and "<td>c</td>" in html


def test_report_of_a_failed_run_shows_status_and_error(tmp_path):
    write_metrics_and_config(tmp_path)
    (tmp_path / "run.json").write_text(json.dumps({"status": "failed", "error": "loss is nan at step 40"}))
    html = write_html_report(tmp_path).read_text()
    assert "failed" in html and "loss is nan at step 40" in html


def test_report_includes_the_model_summary_when_present(run_dir):
    (run_dir / "summary.txt").write_text("conv1  (B, 32, 32, 32)  896 params\n")
    assert "(B, 32, 32, 32)  896 params" in write_html_report(run_dir).read_text()


def test_report_leaves_no_temp_file(run_dir):
    before = {p.name for p in run_dir.iterdir()}
    write_html_report(run_dir)
    assert {p.name for p in run_dir.iterdir()} - before == {"report.html"}


def test_report_of_a_run_interrupted_in_its_first_epoch_has_what_there_is(tmp_path):
    (tmp_path / "config.yaml").write_text("model: workshop_cnn\nepochs: 2\n")
    (tmp_path / "run.json").write_text(json.dumps({"status": "interrupted", "epochs_completed": 0}))
    html = write_html_report(tmp_path).read_text()  # no metrics.csv, no test files, no env.json: no such sections
    assert "interrupted" in html and "model: workshop_cnn" in html
    assert "Epochs" not in html and "Per-class" not in html and "Environment" not in html


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        ("run.json", b"{not json", ", line 1: not valid JSON, truncated or corrupt"),
        ("run.json", b'{"evaluations": "none"}', ": `evaluations` is 'none', expected a list"),
        ("metrics.csv", b"epoch,train_loss,val_acc\n1,1.1,0.45\n2,0.8", ", line 3: 2 values for 3 columns, truncated or corrupt"),
        ("classification_report.json", b'{"accuracy": 0.5, "ant": {"precision": 1.0', ", line 1: not valid JSON"),
        ("env.json", b"[]", ": expected a JSON object, got list"),
        ("summary.txt", b"conv1 \xff", ": not UTF-8 text (byte 6)"),
        ("mistakes.json", b'{"pairs": [], "examples": [{"index": 3, "true_name": "ant"}]}',
         ": examples[0].predicted_name is None, expected text"),
        ("mistakes.json", b'{"pairs": {}, "examples": []}', ": `pairs` is {}, expected a list"),
    ],
)
def test_report_names_a_corrupt_file_and_what_is_wrong(run_dir, name, content, problem):
    (run_dir / name).write_bytes(content)
    with pytest.raises(DataError) as error:
        write_html_report(run_dir)
    assert str(error.value).startswith(f"{run_dir / name}{problem}")
    assert not (run_dir / "report.html").exists()
