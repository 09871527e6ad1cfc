"""`trainlab eval`: testing a run again writes beside what training recorded, never over it."""

import json
import shutil

import pytest
import torch

from tests.conftest import TINY
from tests.test_cli import assert_user_error, make_image_folder, trainlab
from trainlab.config import load_config
from trainlab.errors import ConfigError, DataError, UsageError
from trainlab.evaluation.metrics import read_predictions
from trainlab.experiment import run_experiment
from trainlab.inference import Predictor
from trainlab.run_folder import RunFolder
from trainlab.tools.evaluate import evaluate_run, load_test_split

TEST_FILES = ("predictions.csv", "confusion_matrix.csv", "confusion_matrix_normalized.csv", "confusion_matrix.png",
              "classification_report.txt", "classification_report.json", "mistakes.json", "mistakes.png")  # fmt: skip


def run(*overrides):
    config, source = load_config(None, [*TINY, *overrides])
    return run_experiment(config, source).path


def pets_run(tmp_path):
    """A run on an image folder of two classes, and that folder."""
    root = make_image_folder(tmp_path / "pets")
    return run("data.name=image_folder", f"data.root={root}", "data.val_size=2"), root


def test_eval_of_the_last_checkpoint_leaves_the_runs_own_test_result_as_it_was():
    folder = run("epochs=3", "optimizer.lr=0.01")
    recorded = json.loads((folder / "run.json").read_text())
    files = {name: (folder / name).read_bytes() for name in TEST_FILES}
    first = evaluate_run(folder, "last")
    second = evaluate_run(folder, "best")

    after = json.loads((folder / "run.json").read_text())
    assert {key: after[key] for key in recorded} == recorded, "training's record stays as it was"
    assert after["tested_checkpoint"] == "best"
    assert {name: (folder / name).read_bytes() for name in TEST_FILES} == files
    assert [e["checkpoint"] for e in after["evaluations"]] == ["last", "best"]
    assert first.path != second.path and first.path.parent == folder / "evaluations"
    assert first.path.name.startswith("last-") and second.path.name.startswith("best-")
    for evaluation in (first, second):
        record = next(e for e in after["evaluations"] if e["path"] == f"evaluations/{evaluation.path.name}")
        saved = torch.load(folder / "checkpoints" / f"{record['checkpoint']}.pt", weights_only=True)
        assert record["epoch"] == saved["trainer"]["epoch"]
        assert record["test_acc"] == pytest.approx(read_predictions(evaluation.path).accuracy) == evaluation.accuracy
        assert 0 <= record["test_macro_f1"] <= 1 and record["test_size"] == 360 and record["time"]
        assert record["data_source"] == "scikit-learn digits (embedded)" and record["overrides"] == []
        assert sorted(p.name for p in evaluation.path.iterdir()) == sorted(TEST_FILES)
    assert second.accuracy == pytest.approx(recorded["test_acc"])  # the best checkpoint is what training tested
    html = (folder / "report.html").read_text()
    assert "Re-evaluations" in html and first.path.name in html and second.path.name in html
    assert not list(folder.rglob("*.tmp"))


def test_the_eval_command_says_where_the_results_went_and_of_which_epoch(isolated):
    folder = run("epochs=1")
    result = trainlab("eval", str(folder), "--checkpoint", "last")
    assert result.returncode == 0, result.stderr
    (record,) = json.loads((folder / "run.json").read_text())["evaluations"]
    assert "macro avg" in result.stdout  # the classification report
    assert f"test accuracy {record['test_acc']:.4f}" in result.stdout and "last checkpoint, epoch 1" in result.stdout
    assert str(folder / record["path"]) in result.stdout


def test_a_data_override_changes_how_the_test_runs_not_its_result():
    folder = run("epochs=1")
    evaluation = evaluate_run(folder, "best", ["data.eval_batch_size=7"])
    assert evaluation.accuracy == pytest.approx(json.loads((folder / "run.json").read_text())["test_acc"])
    assert evaluation.record["overrides"] == ["data.eval_batch_size=7"]


def test_eval_refuses_keys_outside_data_naming_the_key(isolated):
    folder = run("epochs=1")
    with pytest.raises(UsageError, match="cannot override 'optimizer.lr'"):
        evaluate_run(folder, "best", ["optimizer.lr=0.1"])
    assert_user_error(trainlab("eval", str(folder), "epochs=5"), 2, "cannot override 'epochs'", "data.root=")
    assert not (folder / "evaluations").exists()


def test_eval_with_test_time_augmentation_tests_the_same_weights_on_mirrored_copies(isolated):
    folder = run("epochs=2", "optimizer.lr=0.01", "precision=fp32")
    config_before = (folder / "config.yaml").read_text()
    plain, mirrored = Predictor.from_run(folder), Predictor.from_run(folder, tta="flip")
    images = torch.randn(6, *plain.preprocess.example().shape)
    with torch.inference_mode():
        expected = torch.softmax(0.5 * (plain.model(images) + plain.model(images.flip(-1))), dim=1)
    assert torch.allclose(mirrored.probabilities(images), expected, atol=1e-5)
    assert not torch.allclose(plain.probabilities(images), expected, atol=1e-3)

    result = trainlab("eval", str(folder), "tta=flip")
    assert result.returncode == 0, result.stderr
    assert "test-time augmentation flip" in result.stdout
    (record,) = json.loads((folder / "run.json").read_text())["evaluations"]
    assert record["tta"] == "flip" and record["overrides"] == ["tta=flip"]
    inputs, labels = prepared_test_split(folder)
    assert record["test_acc"] == pytest.approx((mirrored.probabilities(inputs).argmax(1) == labels).float().mean().item())
    assert (folder / "config.yaml").read_text() == config_before, "the run's config stays as it was trained"

    assert_user_error(trainlab("eval", str(folder), "tta=rotate"), 2, "tta", "flip_translate")
    assert len(json.loads((folder / "run.json").read_text())["evaluations"]) == 1


def prepared_test_split(folder):
    """The run's test inputs and labels, prepared as `eval` prepares them."""
    config, _ = load_config(str(folder / "config.yaml"))
    test, _ = load_test_split(RunFolder.open(folder), config, Predictor.from_run(folder))
    batches = list(test)
    return torch.cat([inputs for inputs, _ in batches]), torch.cat([labels for _, labels in batches])


def test_moved_data_is_named_and_found_again_with_a_data_root_override(tmp_path):
    folder, root = pets_run(tmp_path)
    moved = root.rename(tmp_path / "pets-moved")
    result = trainlab("eval", str(folder))
    assert_user_error(result, 2, str(root), f"trainlab eval {folder} data.root=")
    assert not (folder / "evaluations").exists()

    evaluate_run(folder, "best", [f"data.root={moved}"])
    (record,) = json.loads((folder / "run.json").read_text())["evaluations"]
    assert record["data_root"] == str(moved) and str(moved) in record["data_source"]
    assert record["overrides"] == [f"data.root={moved}"]
    assert record["test_acc"] == pytest.approx(json.loads((folder / "run.json").read_text())["test_acc"])


def test_data_with_other_classes_is_refused(tmp_path):
    folder, root = pets_run(tmp_path)
    other = shutil.copytree(root, tmp_path / "other")
    for split in ("train", "test"):
        (other / split / "dog").rename(other / split / "cow")
    with pytest.raises(UsageError, match="classes cat, cow, but the run was trained on cat, dog: is it the run's data"):
        evaluate_run(folder, "best", [f"data.root={other}"])


def test_data_that_changes_the_models_shape_is_refused_naming_the_override(tmp_path):
    folder, root = pets_run(tmp_path)
    with pytest.raises(UsageError, match=r"its images are 16x16 pixels, colour, but the run was trained on 8x8 pixels, colour \(with data.image_size=16\)"):
        evaluate_run(folder, "best", ["data.image_size=16"])


def test_a_corrupt_run_json_stops_eval_before_it_writes_anything():
    folder = run("epochs=1")
    (folder / "run.json").write_text('{"status": "finished", "test_a')
    with pytest.raises(DataError, match="run.json, line 1: not valid JSON"):
        evaluate_run(folder, "best")
    assert (folder / "run.json").read_text() == '{"status": "finished", "test_a'
    assert not (folder / "evaluations").exists()


def test_eval_needs_the_run_folder_and_the_test_split_alone(tmp_path, monkeypatch):
    from tests.text.tiny import write_emotion

    folder, root = pets_run(tmp_path)
    shutil.rmtree(root / "train")
    shutil.rmtree(tmp_path / "cache")  # no decoded training images either
    (root / "test" / "cat" / "0.png").unlink()  # a test split may lack examples, even a class: labels stay the run's
    evaluation = evaluate_run(folder, "best")
    assert evaluation.record["test_size"] == 11 and evaluation.results.classes == ["cat", "dog"]

    emotion = write_emotion(tmp_path / "data" / "emotion")
    config, source = load_config(None, [*TINY_TEXT_RUN])
    text_run = run_experiment(config, source).path
    (emotion / "train.txt").unlink()
    (emotion / "val.txt").unlink()
    recorded = json.loads((text_run / "run.json").read_text())["test_acc"]
    assert evaluate_run(text_run, "best").accuracy == pytest.approx(recorded)
    with pytest.raises(ConfigError, match="tta: flip averages over mirrored and shifted images, but dataset 'emotion' gives no images"):
        evaluate_run(text_run, "best", ["tta=flip"])  # texts have nothing to mirror: refused, not ignored


TINY_TEXT_RUN = ["data.name=emotion", "data.batch_size=16", "epochs=2", "progress=false", "model.name=lstm_classifier",
                 "model.embedding_dim=8", "model.hidden_size=8"]  # fmt: skip
