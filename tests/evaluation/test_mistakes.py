import base64
import csv
import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from tests.test_experiment import run
from tests.text.tiny import write_emotion
from trainlab.config import load_config
from trainlab.data.loader import ArrayLoader
from trainlab.data.preprocess import ImagePreprocess
from trainlab.data.text import TextLoader
from trainlab.evaluation.mistakes import TOP_EXAMPLES, confused_pairs, highest_loss, mistakes_figure, write_mistakes
from trainlab.experiment import run_experiment
from trainlab.run_records import read_mistakes
from trainlab.tools.evaluate import evaluate_run

CLASSES = ["ant", "bee", "cat", "dog"]


class ImageExamples:
    """The `examples` of a test loader of uint8 (N, H, W, C) images."""

    def __init__(self, images: np.ndarray):
        self.images = images

    def examples(self, indices):
        return [self.images[i] for i in indices]


def probabilities_with(p_true: list[float], labels: list[int], predicted: list[int]) -> np.ndarray:
    """(N, 4) rows giving each label `p_true` and the rest to `predicted` (or spread, when it is the label)."""
    rows = np.zeros((len(labels), len(CLASSES)))
    for row, p, label, guess in zip(rows, p_true, labels, predicted):
        if guess == label:
            row[:] = (1 - p) / (len(CLASSES) - 1)
        else:
            row[guess] = 1 - p
        row[label] = p
    return rows


def test_confused_pairs_are_the_largest_off_diagonal_cells_in_order():
    # true -> predicted: 1->2 four times, 0->3 twice, 3->0 twice, 2->1 once; the diagonal is larger than any of them
    pairs = [(0, 0)] * 9 + [(1, 2)] * 4 + [(3, 0)] * 2 + [(0, 3)] * 2 + [(2, 1)] + [(1, 1)] * 6 + [(2, 2)] * 5
    y_true, y_pred = np.array(pairs).T
    found = confused_pairs(y_true, y_pred, CLASSES)
    assert [(p["true_name"], p["predicted_name"], p["count"]) for p in found] == [
        ("bee", "cat", 4), ("ant", "dog", 2), ("dog", "ant", 2), ("cat", "bee", 1),  # ties in label order
    ]
    assert found[0]["share"] == pytest.approx(4 / 10) and found[1]["share"] == pytest.approx(2 / 11)
    assert found[2]["share"] == 1.0  # every dog was taken for an ant
    assert [p["count"] for p in confused_pairs(y_true, y_pred, CLASSES, top=2)] == [4, 2]


def test_confused_pairs_of_a_perfect_model_are_none():
    labels = np.array([0, 1, 2, 3, 3])
    assert confused_pairs(labels, labels, CLASSES) == []


def test_highest_loss_examples_are_those_with_the_smallest_p_true_in_order():
    p_true = [0.9, 0.05, 0.6, 0.2, 0.05, 0.99, 0.3]
    labels = [0, 1, 2, 3, 0, 1, 2]
    predicted = [0, 2, 2, 0, 3, 1, 1]
    rows = highest_loss(probabilities_with(p_true, labels, predicted), np.array(labels), CLASSES, top=4)
    assert [r["index"] for r in rows] == [1, 4, 3, 6]  # ties in split order
    assert [r["p_true"] for r in rows] == pytest.approx([0.05, 0.05, 0.2, 0.3])
    assert [r["loss"] for r in rows] == pytest.approx([-math.log(p) for p in (0.05, 0.05, 0.2, 0.3)], abs=1e-5)
    assert [(r["true_name"], r["predicted_name"]) for r in rows] == [("bee", "cat"), ("ant", "dog"), ("dog", "ant"), ("cat", "bee")]
    assert [r["p_predicted"] for r in rows] == pytest.approx([0.95, 0.95, 0.8, 0.7])


def test_highest_loss_keeps_an_underflowed_probability_finite():
    probabilities = np.array([[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]], dtype=np.float32)
    (row,) = highest_loss(probabilities, np.array([1, 1]), CLASSES, top=1)
    assert row["index"] == 0 and row["p_true"] == 0 and math.isfinite(row["loss"]) and row["loss"] > 80


def test_write_mistakes_writes_both_tables_and_a_grid_of_the_images(tmp_path):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 40)
    probabilities = rng.dirichlet(np.ones(4), 40)
    images = rng.integers(0, 256, (40, 8, 8, 1), dtype=np.uint8)
    written = write_mistakes(tmp_path, probabilities, labels, CLASSES, ImageExamples(images))
    record = read_mistakes(tmp_path)
    assert record == json.loads(json.dumps(written)) and record["test_size"] == 40
    assert len(record["examples"]) == TOP_EXAMPLES and "text" not in record["examples"][0]
    p_true = probabilities[np.arange(40), labels]
    assert [r["index"] for r in record["examples"]] == np.argsort(p_true)[:TOP_EXAMPLES].tolist()
    with Image.open(tmp_path / "mistakes.png") as picture:
        assert picture.format == "PNG" and picture.size[0] > 300
    assert not list(tmp_path.glob(".*.tmp"))


def test_mistakes_figure_draws_grey_images_grey_and_colour_in_colour():
    grey = mistakes_figure([np.full((8, 8, 1), 200, np.uint8)], ["ant → bee (p=0.93)"])
    assert grey.axes[0].images[0].get_cmap().name == "gray"
    colour = mistakes_figure([np.zeros((8, 8, 3), np.uint8)] * 5, ["ant → bee (p=0.93)"] * 5)
    assert colour.axes[0].images[0].get_array().shape[2] == 3
    assert "ant → bee (p=0.93)" in [text.get_text() for text in colour.axes[0].texts]


def test_array_loader_gives_the_uint8_images_at_split_positions():
    images = torch.arange(5 * 2 * 2 * 3, dtype=torch.uint8).reshape(5, 2, 2, 3)
    preprocess = ImagePreprocess(["a", "b"], (3, 2, 2), [0.0] * 3, [1.0] * 3)
    loader = ArrayLoader(images, torch.zeros(5, dtype=torch.int64), 2, preprocess=preprocess, shuffle=True)
    found = loader.examples([3, 0])
    assert [image.dtype for image in found] == [np.uint8] * 2 and found[0].shape == (2, 2, 3)
    assert np.array_equal(found[0], images[3].numpy()) and np.array_equal(found[1], images[0].numpy())


def test_text_loader_gives_the_texts_at_split_positions_whatever_order_it_batches_in():
    lengths = torch.tensor([3, 1, 2])
    texts = ["a b c", "a", "a b"]
    loader = TextLoader(torch.ones(3, 3, dtype=torch.int64), lengths, torch.tensor([0, 1, 0]), 2, texts=texts)
    assert loader.order.tolist() == [1, 2, 0]
    assert loader.examples([0, 2]) == ["a b c", "a b"]
    with pytest.raises(ValueError, match="without its texts"):
        TextLoader(torch.ones(3, 3, dtype=torch.int64), lengths, torch.tensor([0, 1, 0]), 2).examples([0])


def test_an_image_run_and_its_evaluation_write_the_mistakes_and_the_report_shows_them():
    folder = run("epochs=1")
    record = read_mistakes(folder)
    predictions = list(csv.DictReader((folder / "predictions.csv").open()))
    for row in record["examples"]:  # the split positions are predictions.csv's
        assert (int(predictions[row["index"]]["true"]), int(predictions[row["index"]]["predicted"])) == (row["true"], row["predicted"])
    confusion = np.array([[int(v) for v in row[1:]] for row in list(csv.reader((folder / "confusion_matrix.csv").open()))[1:]])
    np.fill_diagonal(confusion, 0)
    assert [p["count"] for p in record["pairs"]] == sorted(confusion.ravel(), reverse=True)[: len(record["pairs"])]
    assert record["pairs"][0]["count"] == confusion.max() > 0
    html = (folder / "report.html").read_text()
    assert 'id="mistakes"' in html and base64.b64encode((folder / "mistakes.png").read_bytes()).decode() in html

    evaluation = evaluate_run(folder, "last")
    assert read_mistakes(evaluation.path)["examples"] == record["examples"]
    assert (evaluation.path / "mistakes.png").is_file()


def test_a_text_run_shows_its_highest_loss_sentences_escaped(tmp_path):
    root = write_emotion(tmp_path / "data" / "emotion", per_class=(10, 3, 2))
    with (root / "test.txt").open("a") as f:
        f.write("i feel <script>alert(1)</script> happy;joy\n")
    config, source = load_config(None, ["data.name=emotion", "data.batch_size=16", "epochs=1", "progress=false",
                                        "model.name=lstm_classifier", "model.embedding_dim=8", "model.hidden_size=8"])  # fmt: skip
    folder = run_experiment(config, source).path
    lines = [line.rsplit(";", 1) for line in (root / "test.txt").read_text().splitlines()]
    examples = read_mistakes(folder)["examples"]
    assert len(examples) == len(lines) == 13  # fewer test texts than TOP_EXAMPLES: every one
    assert all([row["text"], row["true_name"]] == lines[row["index"]] for row in examples)
    assert not (folder / "mistakes.png").exists()
    html = (folder / "report.html").read_text()
    assert 'id="mistakes"' in html and "i feel &lt;script&gt;alert(1)&lt;/script&gt; happy" in html
    assert "<script>" not in html
