"""`trainlab doctor` as a user meets it: a config and a run folder, the exit codes, the report folder."""

import io
import json
import subprocess
import sys

from rich.console import Console

from trainlab.cli import main
from trainlab.config import load_config
from trainlab.engine.callbacks import write_metrics_csv
from trainlab.tools.doctor import CHECK_NAMES, run_doctor
from trainlab.tools.doctor.runner import RUNNERS
from tests.conftest import TINY


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
