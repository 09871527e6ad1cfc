"""`trainlab doctor` as a user meets it: a config and a run folder, the exit codes, the report folder."""

import io
import json
import math
import subprocess
import sys

import pytest
import torch
from rich.console import Console
from torch import nn

from trainlab.cli import main
from trainlab.config import load_config
from trainlab.engine.callbacks import NonFiniteLossGuard, write_metrics_csv
from trainlab.models.registry import IMAGE_MODEL_INPUTS, MODELS
from trainlab.tools.doctor import CHECK_NAMES, run_doctor, runner
from trainlab.tools.doctor.runner import RUNNERS
from tests.conftest import TINY
from tests.tools.doctor_helpers import NaNAfter, strict_json


def trainlab(*args):
    return subprocess.run([sys.executable, "-m", "trainlab", *args], capture_output=True, text=True, timeout=300)


def quiet():
    return Console(file=io.StringIO(), width=120)


def make_run_folder(root, train, val, **run):
    """A run folder as `trainlab run` leaves it, with the files the doctor reads: config, metrics, run.json."""
    config, _ = load_config(None, TINY)
    folder = root / "runs" / "default-20260101-120000"
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(config.to_yaml())
    rows = [{"epoch": i, "train_loss": t, "val_loss": v} for i, (t, v) in enumerate(zip(train, val, strict=True), 1)]
    write_metrics_csv(folder / "metrics.csv", rows)
    (folder / "run.json").write_text(json.dumps({"status": "finished", "num_classes": 10} | run))
    return folder


def test_every_check_has_a_runner_in_ritual_order():
    assert tuple(RUNNERS) == CHECK_NAMES


def test_a_healthy_config_exits_0_with_a_report_folder_under_output_dir(isolated):
    result = trainlab("doctor", *TINY)
    assert result.returncode == 0, result.stdout + result.stderr
    [folder] = (isolated / "runs" / "doctor").glob("default-*")
    assert f"report: {folder.relative_to(isolated)}/report.html" in result.stdout
    record = json.loads((folder / "doctor.json").read_text())
    assert [check["name"] for check in record["checks"]] == list(CHECK_NAMES)
    assert not record["failed"] and all(check["status"] != "fail" for check in record["checks"])
    pictures = [name for check in record["checks"] for name in check["pictures"]]
    assert {"data_batch.png", "lr_finder.png", "health.png", "curves.png"} <= set(pictures)
    assert all((folder / name).is_file() for name in pictures)
    html = (folder / "report.html").read_text()
    assert html.count("data:image/png;base64,") == len(pictures) and "http" not in html  # self-contained
    assert "short run" in html and "--accent:" in html, "the run report's style sheet, inlined"
    for check in CHECK_NAMES:
        assert check in result.stdout  # the table


def cli(monkeypatch, *args):
    """`trainlab ARGS` in this process (quicker than a new one): its exit code."""
    monkeypatch.setattr(sys, "argv", ["trainlab", *args])
    try:
        main()
    except SystemExit as e:
        return e.code or 0
    return 0


def test_a_failing_check_exits_1(tmp_path, monkeypatch, capsys):
    assert cli(monkeypatch, "doctor", *TINY, "optimizer.lr=10", "--only", "lr", "--output", str(tmp_path / "out")) == 1
    record = json.loads((tmp_path / "out" / "doctor.json").read_text())
    assert [(c["name"], c["status"]) for c in record["checks"]] == [("lr", "fail")]
    assert record["checks"][0]["evidence"]["diverged_at"] < 10
    assert "fail" in capsys.readouterr().out


def test_an_unknown_check_exits_2_with_a_suggestion_before_reading_data(isolated, monkeypatch, capsys):
    assert cli(monkeypatch, "doctor", *TINY, "--only", "lr,overfitt") == 2
    err = capsys.readouterr().err
    assert "did you mean 'overfit'" in err and "initial_loss, data, seeds" in err
    assert "Traceback" not in err
    assert not (isolated / "runs").exists()


def test_a_run_folder_gets_its_curves_diagnosed_into_its_doctor_folder(tmp_path):
    folder = make_run_folder(tmp_path, train=[1.5, 1.0, 0.7, 0.45, 0.3, 0.18, 0.1], val=[1.3, 1.0, 0.85, 0.8, 0.9, 1.05, 1.2])
    config, source = load_config(str(folder))
    result = run_doctor(config, source, None, None, quiet())
    assert result.folder == folder / "doctor" and not result.failed
    [check] = result.checks
    assert check.name == "curves" and check.status == "warn"
    assert check.evidence["findings"][0]["diagnosis"] == "overfitting"
    assert check.evidence["chance_loss"] > 2.3  # ln 10, from the run's class count
    assert "overfitting" in (folder / "doctor" / "report.html").read_text()


def test_a_failed_run_folder_fails(tmp_path):
    folder = make_run_folder(tmp_path, train=[2.0, 1.5], val=[1.9, 1.6], status="failed",
                             error="the loss became nan at step 70 (epoch 3)")
    config, source = load_config(str(folder))
    assert run_doctor(config, source, None, tmp_path / "out", quiet()).failed


def test_a_run_folder_with_only_runs_those_checks_on_its_config(tmp_path):
    folder = make_run_folder(tmp_path, train=[2.0, 1.5, 1.2], val=[1.9, 1.5, 1.3])
    config, source = load_config(str(folder))
    result = run_doctor(config, source, "initial_loss,curves", None, quiet())
    assert [c.name for c in result.checks] == ["initial_loss", "curves"]
    assert result.checks[1].evidence["source"] == f"run {folder.name}"  # its own curves, not a short run


def test_a_run_folder_without_num_classes_takes_them_from_its_classification_report(tmp_path):
    folder = make_run_folder(tmp_path, train=[2.0, 1.5, 1.2], val=[1.9, 1.5, 1.3])
    (folder / "run.json").write_text(json.dumps({"status": "finished"}))  # an older run.json
    config, _ = load_config(str(folder))
    assert runner.run_folder_curves(folder, config).evidence["chance_loss"] is None  # stopped before its test pass
    report = {name: {"precision": 1.0, "recall": 1.0, "f1-score": 1.0, "support": 5} for name in ("a", "b", "macro avg")}
    (folder / "classification_report.json").write_text(json.dumps({**report, "accuracy": 1.0}))
    assert runner.run_folder_curves(folder, config).evidence["chance_loss"] == pytest.approx(math.log(2))


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        ("metrics.csv", "epoch,train_loss,val_loss\n1,2.0,1.9\n2,1.5", ", line 3: 2 values for 3 columns, truncated or corrupt"),
        ("run.json", '{"status": "fini', ", line 1: not valid JSON, truncated or corrupt"),
        ("classification_report.json", '{"accuracy": 0.5, "a": 3}', ": 'a' needs precision, recall, f1-score, support"),
    ],
)
def test_a_corrupt_file_in_a_run_folder_stops_the_doctor_naming_it(tmp_path, monkeypatch, capsys, name, content, problem):
    folder = make_run_folder(tmp_path, train=[2.0, 1.5, 1.2], val=[1.9, 1.5, 1.3])
    if name == "classification_report.json":
        (folder / "run.json").write_text(json.dumps({"status": "finished"}))  # no num_classes: the report is read
    (folder / name).write_text(content)
    assert cli(monkeypatch, "doctor", str(folder)) == 1
    err = capsys.readouterr().err
    assert f"{folder / name}{problem}" in err.replace("\n", "") and "Traceback" not in err


# ---------------------------------------------------------------------------------------- diverging configs


def image_mlp(in_channels, num_classes, image_size):
    return nn.Sequential(nn.Flatten(), nn.Linear(in_channels * image_size[0] * image_size[1], 16), nn.ReLU(),
                         nn.Linear(16, num_classes))  # fmt: skip


def inf_output(*, in_channels: int, num_classes: int, image_size: tuple[int, int]) -> nn.Module:
    """An MLP whose last bias is +inf: its outputs are infinite from the first forward."""
    model = image_mlp(in_channels, num_classes, image_size)
    with torch.no_grad():
        model[-1].bias.fill_(float("inf"))
    return model


def nan_after_50(*, in_channels: int, num_classes: int, image_size: tuple[int, int]) -> nn.Module:
    """An MLP whose outputs turn NaN after 50 training steps."""
    return NaNAfter(image_mlp(in_channels, num_classes, image_size), steps=50)


@pytest.fixture
def user_models(monkeypatch):
    """The models above, registered as a user's own would be, for this test only."""
    for builder in (inf_output, nan_after_50):
        monkeypatch.setitem(MODELS._builders, builder.__name__, builder)
        monkeypatch.setitem(MODELS._injected, builder.__name__, IMAGE_MODEL_INPUTS)


def doctor(*overrides, only=None, output):
    """run_doctor on the embedded digits, two epochs, with `overrides` (a model of their own, or TINY's)."""
    config, source = load_config(None, ["epochs=2", "progress=false", *overrides])
    return run_doctor(config, source, only, output, quiet())


def assert_report_complete(folder, checks):
    """report.html, a strict doctor.json and every picture: NaN and infinities reach none of them as such."""
    record = strict_json((folder / "doctor.json").read_text())
    assert [c["name"] for c in record["checks"]] == [c.name for c in checks]
    pictures = [name for check in record["checks"] for name in check["pictures"]]
    assert pictures and all((folder / name).is_file() for name in pictures)
    assert all(not check["evidence"].get("pictures_not_drawn") for check in record["checks"])
    html = (folder / "report.html").read_text()
    assert html.count("data:image/png;base64,") == len(pictures)
    return record


def test_a_rate_that_diverges_within_a_few_steps_fails_every_training_check_without_a_traceback(tmp_path):
    result = trainlab("doctor", *TINY, "optimizer.lr=1e6", "--output", str(tmp_path / "out"))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    record = strict_json((tmp_path / "out" / "doctor.json").read_text())
    status = {check["name"]: check for check in record["checks"]}
    assert [name for name, check in status.items() if check["status"] == "fail"] == [
        "overfit_example", "overfit_batch", "lr", "health", "curves"]  # fmt: skip
    assert status["overfit_batch"]["evidence"]["non_finite_step"] == 2
    health = status["health"]["evidence"]["non_finite"]
    assert health["step"] == 2 and health["loss"] == "nan"  # NaN written as a string: strict JSON
    curves = status["curves"]["evidence"]
    assert curves["non_finite"]["step"] == 2 and curves["non_finite"]["lr"] == 1e6
    assert curves["findings"][0]["diagnosis"] == "divergence"
    assert "at step 2 (epoch 1), lr 1e+06" in status["curves"]["summary"]
    assert "curves" in result.stdout and "fail" in result.stdout  # the table
    assert all((tmp_path / "out" / name).is_file() for check in record["checks"] for name in check["pictures"])


def test_a_rate_that_diverges_late_in_the_short_run_fails_the_curves(tmp_path):
    # SGD warming up to a rate of 100 over the short run's first 100 steps: the loss falls at first, then climbs
    result = doctor("model.name=mnist_mlp", "model.hidden=[32,32]", "optimizer.name=sgd", "optimizer.lr=100", "epochs=5",
                    "scheduler.name=constant", "scheduler.warmup_steps=100", only="curves", output=tmp_path)  # fmt: skip
    [check] = result.checks
    assert result.failed and check.status == "fail"
    [finding] = check.evidence["findings"]
    assert finding["diagnosis"] == "divergence" and min(finding["epochs"]) >= 3, finding
    assert_report_complete(tmp_path, result.checks)


def test_a_model_that_outputs_inf_fails_each_check_that_runs_it_and_blames_the_model(tmp_path, user_models):
    result = doctor("model.name=inf_output", output=tmp_path)
    status = {check.name: check for check in result.checks}
    assert {name: check.status for name, check in status.items()} == {
        "initial_loss": "fail", "data": "pass", "seeds": "warn", "overfit_example": "fail", "overfit_batch": "fail",
        "lr": "fail", "health": "fail", "curves": "fail",
    }  # fmt: skip
    assert status["initial_loss"].evidence["non_finite_outputs"] == status["initial_loss"].evidence["outputs"]
    assert status["health"].evidence["non_finite"]["first_non_finite_output"] == "3 Linear"
    assert status["curves"].evidence["non_finite"]["step"] == 1
    for name in ("overfit_example", "overfit_batch", "lr", "health", "curves"):
        assert "not the cause" in status[name].advice, name  # no update has happened: the rate is not to blame
    record = assert_report_complete(tmp_path, result.checks)
    assert record["checks"][0]["evidence"]["logit_std"] == "nan"  # written as a string: strict JSON


def test_a_loss_that_turns_nan_late_is_named_at_its_step_after_the_finite_epochs(tmp_path, user_models):
    result = doctor("model.name=nan_after_50", only="overfit_batch,health,curves", output=tmp_path)
    overfit, health, curves = result.checks
    assert overfit.status == "fail" and overfit.evidence["non_finite_step"] == 51
    assert health.status == "pass"  # its 10 steps end before the loss turns
    assert curves.status == "fail" and curves.evidence["non_finite"]["step"] == 51
    epoch = curves.evidence["non_finite"]["epoch"]
    assert epoch > 1 and [row["epoch"] for row in curves.evidence["history"]] == list(range(1, epoch + 1))
    assert curves.evidence["findings"][0]["epochs"] == [epoch]
    assert_report_complete(tmp_path, result.checks)


def test_the_nan_guard_of_a_run_becomes_the_curves_finding(tmp_path, monkeypatch):
    class Guarded(runner.StopWhenNotFinite):
        """The short run with the run's own guard, which raises at the first NaN loss."""

        def on_after_backward(self, trainer):
            super().on_after_backward(trainer)
            NonFiniteLossGuard().on_after_backward(trainer)

    monkeypatch.setattr(runner, "StopWhenNotFinite", Guarded)
    result = doctor(*TINY, "optimizer.lr=1e6", only="curves", output=tmp_path)
    [check] = result.checks
    assert check.status == "fail" and check.evidence["findings"][0]["diagnosis"] == "failure"
    assert "the loss became nan at step 2 (epoch 1)" in check.summary
    assert_report_complete(tmp_path, result.checks)


def test_a_picture_that_cannot_be_drawn_is_noted_and_the_report_still_written(tmp_path, monkeypatch):
    def save_figure(figure, path):
        if path.name == "curves.png":
            raise ValueError("Axis limits cannot be NaN or Inf")
        original(figure, path)

    original = runner.save_figure
    monkeypatch.setattr(runner, "save_figure", save_figure)
    result = doctor(*TINY, only="curves,health", output=tmp_path)
    health, curves = result.checks
    assert curves.pictures == [] and curves.evidence["pictures_not_drawn"] == {"curves.png": "Axis limits cannot be NaN or Inf"}
    assert health.pictures == ["health.png"]
    record = strict_json((tmp_path / "doctor.json").read_text())
    assert record["checks"][1]["evidence"]["pictures_not_drawn"]
    assert "Axis limits cannot be NaN or Inf" in (tmp_path / "report.html").read_text()
