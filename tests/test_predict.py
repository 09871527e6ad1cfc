"""`trainlab predict` and Predictor.from_run: a run folder copied anywhere predicts on its own, as training tested."""

import csv
import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from tests.conftest import TINY
from tests.test_cli import assert_user_error, make_image_folder, trainlab
from tests.text.tiny import write_emotion
from trainlab.config import load_config
from trainlab.data import DATASETS
from trainlab.data.preprocess import ImagePreprocess, load_preprocess
from trainlab.errors import DataError, UsageError
from trainlab.experiment import run_experiment
from trainlab.inference import Predictor
from trainlab.text.vocab import Vocabulary

TINY_TEXT = ["data.name=emotion", "data.batch_size=16", "epochs=2", "progress=false", "model.name=lstm_classifier",
             "model.embedding_dim=8", "model.hidden_size=8"]  # fmt: skip


def train(*overrides):
    config, source = load_config(None, [*overrides, "precision=fp32"])
    return run_experiment(config, source).path


def recorded_predictions(run):
    """The predicted class and its probability of every test example, as the model at the end of training gave them."""
    with open(run / "predictions.csv", encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    return [int(row["predicted"]) for row in rows], [float(row["confidence"]) for row in rows]


def alone(run, tmp_path, monkeypatch):
    """A copy of the run folder in an empty folder, with no data folder and no TRAINLAB_DATA."""
    copy = tmp_path / "elsewhere" / run.name
    shutil.copytree(run, copy)
    shutil.rmtree(tmp_path / "data", ignore_errors=True)
    monkeypatch.delenv("TRAINLAB_DATA")
    return copy


def test_an_image_run_copied_alone_predicts_what_training_tested(tmp_path, monkeypatch):
    root = make_image_folder(tmp_path / "data" / "pets")
    test_files = [root / "test" / label / f"{i}.png" for label in ("cat", "dog") for i in range(6)]  # the split's order
    kept = tmp_path / "kept"
    for path in test_files:  # the inputs stay, the dataset goes
        (kept / path.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, kept / path.parent.name / path.name)
    run = train(*TINY, "data.name=image_folder", "data.root=pets", "data.val_size=2", "epochs=3", "optimizer.lr=0.01")
    copy = alone(run, tmp_path, monkeypatch)

    predictor = Predictor.from_run(copy)
    probabilities = predictor.predict([kept / p.parent.name / p.name for p in test_files])
    predicted, confidence = recorded_predictions(run)
    assert probabilities.shape == (12, 2) and predictor.classes == ["cat", "dog"]
    assert probabilities.sum(1) == pytest.approx(torch.ones(12), abs=1e-5)
    assert probabilities.argmax(1).tolist() == predicted
    assert probabilities.max(1).values.tolist() == pytest.approx(confidence, abs=2e-6)
    assert not predictor.model.training and predictor.epoch == json.loads((run / "run.json").read_text())["best_epoch"]


def test_an_image_of_another_size_and_mode_is_converted_as_the_dataset_converts_it(tmp_path):
    odd = Image.fromarray(np.random.default_rng(0).integers(0, 256, (13, 21, 4), dtype=np.uint8), "RGBA")
    grey = Image.fromarray(np.random.default_rng(1).integers(0, 256, (5, 9), dtype=np.uint8), "L")
    root = make_image_folder(tmp_path / "pets")
    odd.save(root / "test" / "cat" / "odd.png")
    grey.save(root / "test" / "dog" / "grey.png")
    dataset = DATASETS.build("image_folder", root=str(root), image_size=8)  # the dataset resizes every image to 8x8
    decoded = {"odd": dataset.test.images[6], "grey": dataset.test.images[13]}  # after cat's 0..5.png, and dog's
    preprocess = ImagePreprocess(dataset.classes, dataset.image_shape, [100.0] * 3, [50.0] * 3)
    assert np.array_equal(preprocess.read(root / "test" / "cat" / "odd.png"), decoded["odd"])
    assert np.array_equal(preprocess.read(root / "test" / "dog" / "grey.png"), decoded["grey"])
    batch = preprocess.encode([root / "test" / "dog" / "grey.png"])
    expected = (torch.from_numpy(decoded["grey"]).permute(2, 0, 1).float() / 255 - 100 / 255) * (255 / 50)
    assert batch.shape == (1, 3, 8, 8) and torch.allclose(batch[0], expected)

    greyscale = ImagePreprocess(["a", "b"], (1, 4, 6), [0.0], [255.0])  # a model of greyscale 6x4 images reads colour too
    assert preprocess.read(root / "test" / "cat" / "odd.png").shape == (8, 8, 3)
    assert greyscale.convert(odd).shape == (4, 6, 1)
    assert np.array_equal(greyscale.convert(odd)[..., 0], np.asarray(odd.convert("L").resize((6, 4), Image.Resampling.BILINEAR)))


def test_a_text_run_copied_alone_predicts_what_training_tested(tmp_path, monkeypatch):
    emotion = write_emotion(tmp_path / "data" / "emotion")
    texts = [line.rpartition(";")[0] for line in (emotion / "test.txt").read_text().splitlines()]
    run = train(*TINY_TEXT, "epochs=4", "optimizer.lr=0.02")
    copy = alone(run, tmp_path, monkeypatch)

    predictor = Predictor.from_run(copy)
    probabilities = predictor.predict(texts)
    predicted, confidence = recorded_predictions(run)
    assert probabilities.argmax(1).tolist() == predicted
    assert probabilities.max(1).values.tolist() == pytest.approx(confidence, abs=2e-6)
    assert load_preprocess(copy).vocabulary.itos == Vocabulary.load(copy / "vocab.txt").itos
    record = json.loads((copy / "preprocess.json").read_text())
    assert record["kind"] == "text" and record["tokenizer"] == "whitespace" and record["lowercase"] is True
    assert record["vocabulary"] == "vocab.txt" and record["classes"][:2] == ["sadness", "joy"]


def test_predict_on_the_command_line_reads_files_folders_texts_and_standard_input(tmp_path):
    root = make_image_folder(tmp_path / "data" / "pets")
    image_run = train(*TINY, "data.name=image_folder", "data.root=pets", "data.val_size=2")
    (root / "test" / "notes.txt").write_text("not an image")
    result = trainlab("predict", str(image_run), str(root / "test" / "cat" / "0.png"), str(root / "test"), "--top", "1",
                      "--output", "out.csv")  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[0].endswith("/test/cat/0.png") and len(lines) == 1 + 12 + 1
    assert "1 file of another type left out (notes.txt)" in result.stderr
    with open("out.csv", encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["input", "class_1", "probability_1"] and len(rows) == 13
    assert {row["class_1"] for row in rows} <= {"cat", "dog"} and all(0 <= float(r["probability_1"]) <= 1 for r in rows)

    write_emotion(tmp_path / "data" / "emotion")
    text_run = train(*TINY_TEXT)
    result = trainlab("predict", str(text_run), "i feel so happy today", "--top", "2", "--output", "out.json")
    assert result.returncode == 0, result.stderr
    top = json.loads((tmp_path / "work" / "out.json").read_text())[0]["top"]
    assert len(top) == 2 and top[0]["probability"] >= top[1]["probability"]
    import subprocess
    import sys

    piped = subprocess.run([sys.executable, "-m", "trainlab", "predict", str(text_run), "-"], input="i am so angry\n\nscared now\n",
                           capture_output=True, text=True, timeout=300)  # fmt: skip
    assert piped.returncode == 0, piped.stderr
    assert [line.split("  ")[0] for line in piped.stdout.splitlines()] == ["i am so angry", "scared now"]


def test_a_read_only_run_folder_predicts_and_a_read_only_output_folder_is_refused_first(tmp_path, read_only_dir):
    root = make_image_folder(tmp_path / "data" / "pets")
    run = train(*TINY, "data.name=image_folder", "data.root=pets", "data.val_size=2")
    shared = shutil.copytree(run, tmp_path / "shared" / run.name)
    read_only_dir(shared)
    image = str(root / "test" / "cat" / "0.png")
    result = trainlab("predict", str(shared), image)
    assert result.returncode == 0 and result.stdout.split()[0].endswith("/test/cat/0.png"), result.stderr
    read_only_dir(tmp_path / "locked")
    assert_user_error(trainlab("predict", str(shared), image, "-o", str(tmp_path / "locked" / "p.csv")), 2,
                      "locked cannot be written to")  # fmt: skip


def test_bad_inputs_and_runs_without_a_model_exit_2_with_a_clear_message(tmp_path):
    root = make_image_folder(tmp_path / "data" / "pets")
    run = train(*TINY, "data.name=image_folder", "data.root=pets", "data.val_size=2")
    (tmp_path / "notes.png").write_text("not an image")
    assert_user_error(trainlab("predict", str(run), str(tmp_path / "notes.png")), 2, "notes.png is not an image")
    assert_user_error(trainlab("predict", str(run), "missing.jpg"), 2, "missing.jpg: no such file")
    assert_user_error(trainlab("predict", str(run), "-"), 2, "not standard input")
    assert_user_error(trainlab("predict", str(root), "x.png"), 2, "is not a run folder")
    assert_user_error(trainlab("predict", str(run), "x.png", "--output", "x.txt"), 2, "expected a .csv or .json file")

    interrupted = tmp_path / "interrupted"
    shutil.copytree(run, interrupted)
    record = json.loads((interrupted / "run.json").read_text())
    (interrupted / "run.json").write_text(json.dumps({**record, "status": "interrupted", "epochs_completed": 1}))
    assert_user_error(trainlab("predict", str(interrupted), "x.png"), 2, "did not finish", "interrupted after 1 of 2 epochs",
                      "trainlab run --resume")  # fmt: skip
    no_model = tmp_path / "no_model"
    shutil.copytree(run, no_model)
    shutil.rmtree(no_model / "checkpoints")
    assert_user_error(trainlab("predict", str(no_model), "x.png"), 2, "best.pt not found", "saved no model")
    (no_model / "preprocess.json").unlink()
    with pytest.raises(UsageError, match="preprocess.json not found"):
        load_preprocess(no_model)
    (no_model / "preprocess.json").write_text("{not json")
    with pytest.raises(DataError, match="preprocess.json: not a readable"):
        load_preprocess(no_model)

    write_emotion(tmp_path / "data" / "emotion")
    text_run = train(*TINY_TEXT)
    assert_user_error(trainlab("predict", str(text_run), "i am fine", "  "), 2, "text 2", "finds no token")


def test_a_vocabulary_file_that_is_not_one_is_named_with_its_line(tmp_path):
    path = tmp_path / "vocab.txt"
    Vocabulary(["joy", "sad"]).save(path)
    assert Vocabulary.load(path).itos == ["<pad>", "<unk>", "joy", "sad"]
    path.write_text("<pad>\n<unk>\njoy\njoy\n")
    with pytest.raises(DataError, match=r"vocab.txt, line 4: 'joy' again \(first on line 3\)"):
        Vocabulary.load(path)
    path.write_text("joy\n")
    with pytest.raises(DataError, match="not a trainlab vocabulary"):
        Vocabulary.load(path)
