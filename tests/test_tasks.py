"""The three tasks end to end: regression (MSE on standardised targets, MAE/RMSE/R²), binary (one logit, BCE, AUC
and a tuned threshold) and classification; their metrics equal scikit-learn's on the saved predictions."""

import csv
import json

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import r2_score, roc_auc_score

import trainlab
from tests.test_cli import trainlab as trainlab_command
from trainlab.engine.tasks import Binary, Classification, Regression
from trainlab.errors import ConfigError
from trainlab.evaluation.task_results import read_regression_predictions

QUIET = dict(progress=False, quiet=True, precision="fp32", threads=1)


@pytest.fixture
def linear_csv(tmp_path):
    """y = 3·a - 2·b + 1 (+ a little noise), and a categorical column that adds 5 for 'high'."""
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=400), rng.normal(size=400)
    level = rng.choice(["low", "high"], size=400)
    y = 3 * a - 2 * b + 1 + 5 * (level == "high") + rng.normal(scale=0.01, size=400)
    path = tmp_path / "linear.csv"
    pd.DataFrame({"a": a, "b": b, "level": level, "y": y}).to_csv(path, index=False)
    return path


@pytest.fixture
def binary_csv(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 3))
    label = np.where(x[:, 0] + 0.5 * x[:, 1] + rng.normal(scale=0.5, size=300) > 0, "yes", "no")
    path = tmp_path / "binary.csv"
    pd.DataFrame({"x0": x[:, 0], "x1": x[:, 1], "x2": x[:, 2], "answer": label}).to_csv(path, index=False)
    return path


def table_run(path, target, **settings):
    data = {"name": "csv", "path": str(path), "target": target, "batch_size": 32}
    return trainlab.run(data=data, model={"name": "table_mlp", "hidden": [32]}, **{**QUIET, **settings})


def test_regression_fits_a_linear_table_and_its_r2_is_scikit_learns_on_the_saved_predictions(linear_csv):
    run = table_run(linear_csv, "y", epochs=40, optimizer={"lr": 0.01})

    assert run.config["task"] == "regression"  # auto: a float target
    assert run.config["loss"]["name"] == "mse" and run.config["monitor"] == "val/mae"
    assert run.metrics["train_loss"].iloc[-1] < 0.01  # in standard deviations of y, squared
    saved = read_regression_predictions(run.path)
    assert run.record["test_r2"] == pytest.approx(r2_score(saved.y_true, saved.y_pred), abs=1e-5)
    assert run.record["test_r2"] > 0.99 and run.test["r2"] == run.record["test_r2"]
    assert {"train_mae", "val_mae", "val_rmse", "val_r2"} <= set(run.metrics.columns) and "val_acc" not in run.metrics
    assert (run.path / "predicted_vs_true.png").is_file() and (run.path / "residuals.png").is_file()
    assert "predicted against true" in (run.path / "report.html").read_text()

    rows = pd.DataFrame({"a": [1.0, 0.0], "b": [0.0, 1.0], "level": ["low", "high"]})
    predicted = run.predict(rows)
    assert list(predicted.columns) == ["y"]
    assert predicted["y"].tolist() == pytest.approx([4.0, 4.0], abs=0.3)  # 3 + 1; -2 + 1 + 5


def test_a_regression_run_predicts_from_the_command_line_and_compares_by_r2(linear_csv, tmp_path):
    run = table_run(linear_csv, "y", epochs=3, optimizer={"lr": 0.01})
    rows = tmp_path / "rows.csv"
    rows.write_text("a,b,level\n1.0,0.0,low\n0.5,0.5,high\n")
    predicted = trainlab_command("predict", str(run.path), str(rows))
    assert predicted.returncode == 0, predicted.stderr
    assert "rows.csv" in predicted.stdout and " y " in predicted.stdout

    table = trainlab.compare([run], sort="test_r2")
    assert {"test_mae", "test_rmse", "test_r2", "best_val_mae"} <= set(table.columns)
    assert "test_acc (%)" not in table.columns


def test_binary_trains_one_logit_and_its_auc_is_scikit_learns(binary_csv):
    run = table_run(binary_csv, "answer", task="binary", epochs=15, optimizer={"lr": 0.01})

    assert run.config["loss"]["name"] == "bce" and run.config["monitor"] == "val/auc"
    assert run.predictor().model.layers[-1].out_features == 1 if hasattr(run.predictor().model, "layers") else True
    with open(run.path / "predictions.csv", encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    truth = np.array([int(r["true"]) for r in rows])
    positive = np.array([float(r["confidence"]) if r["predicted"] == "1" else 1 - float(r["confidence"]) for r in rows])
    assert run.record["test_auc"] == pytest.approx(roc_auc_score(truth, positive), abs=1e-4)
    assert run.record["test_auc"] > 0.85
    assert 0 < run.test["best_threshold"] < 1 and run.test["auc"] == run.record["test_auc"]
    assert (run.path / "roc_curve.png").is_file() and (run.path / "precision_recall.png").is_file()
    assert json.loads((run.path / "binary_report.json").read_text())["positive_class"] == "yes"
    (answer,) = run.predict(pd.DataFrame({"x0": [3.0], "x1": [1.0], "x2": [0.0]}), top=2)
    assert answer[0][0] == "yes" and answer[0][1] + answer[1][1] == pytest.approx(1.0)


def test_a_task_that_does_not_fit_the_data_or_its_monitor_and_loss_is_refused(binary_csv, linear_csv):
    with pytest.raises(ConfigError, match="task binary needs data of 2 classes, this data has 3"):
        trainlab.run(data={"name": "sklearn_table", "table": "wine"}, model={"name": "table_mlp"}, task="binary", **QUIET)
    with pytest.raises(ConfigError, match="task regression needs numeric targets"):
        table_run(binary_csv, "answer", task="regression")
    with pytest.raises(ConfigError, match="val/acc is not a metric of a regression task; expected one of: val/loss, val/mae"):
        table_run(linear_csv, "y", monitor="val/acc")
    with pytest.raises(ConfigError, match="cross_entropy is a loss of classification tasks; losses of a regression task: mse"):
        table_run(linear_csv, "y", loss={"name": "cross_entropy"})


def test_the_task_objects_score_as_scikit_learn_does():
    from sklearn.metrics import f1_score, mean_absolute_error

    logits = torch.tensor([[2.0], [-1.0], [0.5], [-3.0], [0.2]])
    labels = torch.tensor([1, 0, 0, 0, 1])
    scores = Binary().evaluate(logits, labels)
    assert scores["auc"] == pytest.approx(roc_auc_score(labels, logits[:, 0]))
    assert scores["f1"] == pytest.approx(f1_score(labels, (logits[:, 0] > 0).long()))
    assert Binary().predictions(logits)[:, 1] == pytest.approx(logits[:, 0].sigmoid())

    task = Regression(mean=[10.0, 0.0], std=[2.0, 1.0])
    outputs, targets = torch.tensor([[0.5, 1.0], [-1.0, 0.0], [0.0, 2.0]]), torch.tensor([[11.0, 1.0], [8.0, 0.5], [9.0, 2.0]])
    values = task.predictions(outputs)
    assert values[:, 0].tolist() == [11.0, 8.0, 10.0]  # back in the targets' units
    assert task.evaluate(outputs, targets)["mae"] == pytest.approx(mean_absolute_error(targets, values))
    assert task.evaluate(outputs, targets)["r2"] == pytest.approx(r2_score(targets, values))
    loss = task.loss(torch.nn.MSELoss())(outputs, targets)  # on standardised targets
    assert loss.item() == pytest.approx(torch.nn.functional.mse_loss(outputs, (targets - task.mean) / task.std).item())
    assert Classification().columns == ["train_loss", "train_acc", "val_loss", "val_acc", "val_macro_f1"]


def test_doctor_measures_a_binary_and_a_regression_model_against_their_own_guesses(binary_csv, linear_csv, tmp_path):
    for path, target, task in ((binary_csv, "answer", "binary"), (linear_csv, "y", "regression")):
        result = trainlab_command("doctor", "data.name=csv", f"data.path={path}", f"data.target={target}", f"task={task}",
                                  "model.name=table_mlp", "--only", "initial_loss,data", "--output", str(tmp_path / task))  # fmt: skip
        assert result.returncode == 0, result.stderr + result.stdout
        checks = {c["name"]: c for c in json.loads((tmp_path / task / "doctor.json").read_text())["checks"]}
        assert checks["initial_loss"]["status"] == "pass" and checks["data"]["status"] == "pass"
        if task == "binary":
            assert checks["initial_loss"]["evidence"]["uniform_guess"] == pytest.approx(np.log(2), abs=1e-4)
        else:
            assert checks["initial_loss"]["evidence"]["uniform_guess"] == pytest.approx(1.0, abs=0.2)  # the variance


def test_regression_on_several_target_columns_scores_each(tmp_path):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(300, 2))
    path = tmp_path / "two.csv"
    pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "sum": x[:, 0] + x[:, 1], "diff": 2 * x[:, 0] - x[:, 1]}).to_csv(path, index=False)
    run = table_run(path, ["sum", "diff"], epochs=40, optimizer={"lr": 0.01})
    report = json.loads((run.path / "regression_report.json").read_text())
    assert report["targets"] == ["sum", "diff"] and set(report["per_target"]) == {"sum", "diff"}
    assert all(scores["r2"] > 0.95 for scores in report["per_target"].values())
    saved = read_regression_predictions(run.path)
    assert saved.y_pred.shape == (len(saved.y_true), 2)
    assert run.record["test_r2"] == pytest.approx(r2_score(saved.y_true, saved.y_pred), abs=1e-5)
    assert list(run.predict([{"a": 1.0, "b": 1.0}]).columns) == ["sum", "diff"]


def test_export_and_serve_refuse_a_regression_or_table_run_before_any_work(linear_csv, binary_csv):
    from trainlab.errors import UsageError
    from trainlab.serve.model import ServedModel
    from trainlab.tools.export import export_run

    regression = table_run(linear_csv, "y", epochs=1)
    with pytest.raises(UsageError, match="trainlab serve takes image and text classifiers; a regression is not built"):
        ServedModel.from_run(regression.path)
    with pytest.raises(UsageError, match="trainlab export takes image and text classifiers"):
        export_run(regression.path)
    assert not (regression.path / "export").exists()
    binary_table = table_run(binary_csv, "answer", task="binary", epochs=1)
    with pytest.raises(UsageError, match="a model of table inputs is not built"):
        ServedModel.from_run(binary_table.path)
