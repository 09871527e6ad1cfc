import csv
import json

import pytest
import torch
import yaml
from sklearn.metrics import classification_report
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.conftest import TINY
from trainlab.config import load_config
from trainlab.errors import UsageError
from trainlab.engine.callbacks import Checkpointer
from trainlab.evaluation.metrics import read_predictions
from trainlab.experiment import run_experiment
from trainlab.tools.evaluate import evaluate_run


def run(*overrides, spec=None):
    config, source = load_config(spec, [*TINY, *overrides])
    return run_experiment(config, source).path


def test_run_folder_holds_every_file_and_each_parses():
    folder = run("epochs=2")
    assert folder.parent.name == "runs" and folder.name.startswith("default-")
    config = yaml.safe_load((folder / "config.yaml").read_text())
    assert config["epochs"] == 2 and config["model"]["channels"] == [4, 4, 8, 8]
    env = json.loads((folder / "env.json").read_text())
    assert {"python", "packages", "cpu", "torch_threads", "git_commit", "seed", "command"} <= set(env)
    record = json.loads((folder / "run.json").read_text())
    assert record["status"] == "finished" and record["epochs_completed"] == 2 and 0 <= record["test_acc"] <= 1
    rows = list(csv.DictReader((folder / "metrics.csv").open()))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert list(rows[0]) == ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "val_macro_f1", "lr", "seconds", "samples_per_s", "threads"]
    for name in ("curves.png", "confusion_matrix.png", "samples.png"):
        assert Image.open(folder / name).size[0] > 300
    confusion = list(csv.reader((folder / "confusion_matrix.csv").open()))
    assert confusion[0][1:] == [str(d) for d in range(10)]
    assert sum(int(v) for row in confusion[1:] for v in row[1:]) == 360  # the fixed digits test split
    assert json.loads((folder / "classification_report.json").read_text())["accuracy"] == pytest.approx(record["test_acc"])
    assert len(list(csv.DictReader((folder / "predictions.csv").open()))) == 360
    for name in ("last.pt", "best.pt"):
        assert torch.load(folder / "checkpoints" / name, weights_only=True)["trainer"]["epoch"] >= 1
    events = EventAccumulator(str(folder / "tb"), size_guidance={"images": 1}).Reload()
    assert {"step/train_loss", "epoch/val_acc"} <= set(events.Tags()["scalars"])
    (matrix,) = events.Images("test/confusion_matrix")
    assert (matrix.width, matrix.height) == Image.open(folder / "confusion_matrix.png").size
    assert record["num_classes"] == 10
    preprocess = json.loads((folder / "preprocess.json").read_text())
    assert preprocess["kind"] == "image" and preprocess["shape"] == [1, 8, 8] and preprocess["classes"] == [str(d) for d in range(10)]
    assert preprocess["mode"] == "L" and preprocess["resize"] == "bilinear" and 0 < preprocess["mean"][0] < 255
    summary = (folder / "summary.txt").read_text()
    assert summary.startswith('Model: "workshop_cnn", input (None, 1, 8, 8)')
    # convs 1*4*9+4, 4*4*9+4, 4*8*9+8, 8*8*9+8; FC (8*2*2)*16+16, 16*16+16, 16*10+10
    assert "Total params: 2,038 " in summary and "0 (Conv2d)     (None, 4, 8, 8)" in summary
    html = (folder / "report.html").read_text()
    assert "data:image/png;base64," in html and "workshop_cnn" in html
    assert "<details>" in html and "0 (Conv2d)     (None, 4, 8, 8)" in html
    assert not list(folder.rglob("*.tmp")), "no temporary file is left behind"


def test_classification_report_equals_scikit_learns_on_the_saved_predictions():
    folder = run("epochs=1")
    saved = read_predictions(folder)
    expected = classification_report(saved.y_true, saved.y_pred, target_names=[str(d) for d in range(10)],
                                      digits=4, zero_division=0)
    assert (folder / "classification_report.txt").read_text() == expected


def test_training_learns_the_digits():
    folder = run("epochs=4", "model.channels=[8,8,16,16]", "model.hidden=[64,32]", "optimizer.lr=0.003")
    assert json.loads((folder / "run.json").read_text())["test_acc"] > 0.8


def interrupt_after_epoch(monkeypatch, stop_at):
    original = Checkpointer.on_epoch_end

    def on_epoch_end(self, trainer):
        original(self, trainer)
        if trainer.epoch == stop_at:
            raise KeyboardInterrupt

    monkeypatch.setattr(Checkpointer, "on_epoch_end", on_epoch_end)


def test_resumed_run_ends_with_the_same_weights_as_an_uninterrupted_one(monkeypatch):
    overrides = ("epochs=3", "precision=fp32", "scheduler.name=cosine", "seed=3", "augment.flip_p=0.5",
                 "augment.crop_padding=1", "model.dropout=0.2")
    whole = run(*overrides)
    with monkeypatch.context() as m:
        interrupt_after_epoch(m, stop_at=2)
        with pytest.raises(KeyboardInterrupt):
            run(*overrides)
    interrupted = max(p for p in whole.parent.iterdir() if p != whole)
    assert json.loads((interrupted / "run.json").read_text())["status"] == "interrupted"
    config, source = load_config(str(interrupted / "config.yaml"))
    run_experiment(config, source, resume=interrupted)

    final_whole = torch.load(whole / "checkpoints" / "last.pt", weights_only=True)
    final_resumed = torch.load(interrupted / "checkpoints" / "last.pt", weights_only=True)
    for key, tensor in final_whole["model"].items():
        assert torch.equal(tensor, final_resumed["model"][key]), key
    losses = lambda f: [r["train_loss"] for r in csv.DictReader((f / "metrics.csv").open())]  # noqa: E731
    assert losses(whole) == losses(interrupted)
    assert json.loads((interrupted / "run.json").read_text())["status"] == "finished"


def test_eval_reproduces_the_test_accuracy_of_the_run():
    folder = run("epochs=1")
    recorded = json.loads((folder / "run.json").read_text())["test_acc"]
    assert evaluate_run(folder, "best").accuracy == pytest.approx(recorded)


def test_early_stopping_ends_the_run_and_is_recorded():
    folder = run("epochs=30", "optimizer.lr=0.05", "early_stopping.enabled=true", "early_stopping.patience=1",
                 "early_stopping.min_delta=10")  # nothing improves by 10: stop after the second epoch
    record = json.loads((folder / "run.json").read_text())
    assert record["status"] == "finished" and record["epochs_completed"] == 2 and record["early_stopped_at"] == 2


def test_finished_run_cannot_be_resumed():
    folder = run("epochs=1")
    config, source = load_config(str(folder / "config.yaml"))
    with pytest.raises(UsageError, match="has already finished"):
        run_experiment(config, source, resume=folder)


def test_a_run_stopped_before_its_first_checkpoint_says_how_to_start_again():
    folder = run("epochs=2")
    record = json.loads((folder / "run.json").read_text())
    (folder / "run.json").write_text(json.dumps({**record, "status": "interrupted"}))
    (folder / "checkpoints" / "last.pt").unlink()
    config, source = load_config(str(folder / "config.yaml"))
    with pytest.raises(UsageError, match=f"no checkpoint to continue from.*trainlab run {folder / 'config.yaml'}"):
        run_experiment(config, source, resume=folder)


def test_init_scheme_and_penalties_reach_the_training():
    folder = run("epochs=1", "init=xavier_normal", "regularization.l1=0.001", "regularization.clip_grad_norm=1.0",
                 "scheduler.name=linear", "loss.name=bce")
    assert json.loads((folder / "run.json").read_text())["status"] == "finished"
