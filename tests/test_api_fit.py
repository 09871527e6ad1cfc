"""`trainlab.fit`: your own nn.Module on a dataset or on arrays from memory, into an ordinary run folder; and the
Python API's metrics equal the command line's on the same config and seed."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.datasets import load_digits
from torch import nn

import trainlab
from tests.test_cli import assert_user_error, trainlab as trainlab_command
from trainlab.errors import UsageError

SETTINGS = dict(epochs=2, progress=False, precision="fp32", threads=1, quiet=True)


class DigitNet(nn.Module):
    def __init__(self, hidden: int = 32):
        super().__init__()
        self.layers = nn.Sequential(nn.Flatten(), nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, 10))

    def forward(self, x):
        return self.layers(x)


def digits():
    data = load_digits()
    return (data.images / 16).astype(np.float32), data.target


def test_fit_trains_the_module_on_arrays_and_leaves_it_with_the_tested_weights():
    images, labels = digits()
    net = DigitNet()
    before = net.layers[1].weight.detach().clone()

    run = trainlab.fit(net, data=(torch.from_numpy(images), torch.from_numpy(labels)), optimizer="adamw", lr=0.01, **SETTINGS)

    assert run.status == "finished" and run.name.startswith("DigitNet-")
    assert run.config["model"] == {"name": "python:DigitNet"}
    assert run.config["optimizer"]["name"] == "adamw" and run.config["optimizer"]["lr"] == 0.01
    assert run.record["data_sizes"]["test"] == 360  # a seeded fifth of the 1,797 arrays
    assert run.test["accuracy"] > 0.85
    tested = run.predictor().model
    assert not torch.equal(net.layers[1].weight, before)
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), tested.state_dict().values()))
    with torch.inference_mode():
        predicted = net(torch.from_numpy(images[:40]).unsqueeze(1)).argmax(1)
    assert (predicted == torch.from_numpy(labels[:40])).float().mean() > 0.8


def test_fit_takes_test_arrays_class_names_and_uint8_channels_last_images():
    images, labels = digits()
    pixels = np.rint(images * 255).astype(np.uint8)[..., None]  # (N, 8, 8, 1)
    names = [f"digit {i}" for i in range(10)]
    run = trainlab.fit(DigitNet(), data=(pixels[:1500], labels[:1500]), test=(pixels[1500:], labels[1500:]),
                       classes=names, **SETTINGS)  # fmt: skip
    assert run.record["data_sizes"]["test"] == 297
    assert run.predictor().classes == names
    assert set(run.test["report"].index) >= {"digit 0", "digit 9", "macro avg"}


def test_fit_on_a_registered_dataset_by_name():
    run = trainlab.fit(DigitNet(hidden=16), data="digits", **SETTINGS)
    assert run.config["data"]["name"] == "digits" and run.record["status"] == "finished"


def test_arrays_that_cannot_be_images_and_labels_are_refused():
    images, labels = digits()
    with pytest.raises(UsageError, match="1797 inputs .X. but 10 targets"):
        trainlab.fit(DigitNet(), data=(images, labels[:10]), **SETTINGS)
    with pytest.raises(UsageError, match=r"floats in \[0, 1\]"):
        trainlab.fit(DigitNet(), data=(images * 16, labels), **SETTINGS)
    with pytest.raises(UsageError, match="class indices"):
        trainlab.fit(DigitNet(), data=(images, labels + 0.5), **SETTINGS)
    with pytest.raises(TypeError, match="nn.Module"):
        trainlab.fit("DigitNet", data=(images, labels))


def test_another_process_cannot_rebuild_a_module_object_and_says_what_to_do(tmp_path):
    run = trainlab.fit(DigitNet(hidden=8), data="digits", **SETTINGS)
    assert_user_error(trainlab_command("eval", str(run.path)), 2, "python:DigitNet", "model.name: FILE.py:DigitNet")


def test_the_python_api_gives_the_command_line_s_metrics_on_the_same_config_and_seed(tmp_path):
    overrides = {"model": {"channels": [4, 4, 8, 8], "hidden": [16, 16]}, "seed": 3, "optimizer": {"lr": 0.003}}
    from trainlab.api import overrides_from

    shared = {key: value for key, value in SETTINGS.items() if key != "quiet"}
    command = trainlab_command("run", *overrides_from({**overrides, **shared}), "output_dir=cli")
    assert command.returncode == 0, command.stderr
    from_python = trainlab.run(**overrides, **SETTINGS, output_dir="py")

    (cli_run,) = (tmp_path / "work" / "cli").iterdir()
    cli_record = json.loads((cli_run / "run.json").read_text())
    assert from_python.record["test_acc"] == cli_record["test_acc"]
    assert from_python.record["test_macro_f1"] == cli_record["test_macro_f1"]
    assert (from_python.path / "metrics.csv").read_text().splitlines()[0] == (cli_run / "metrics.csv").read_text().splitlines()[0]
    python_losses = from_python.metrics["val_loss"].tolist()
    cli_losses = [float(line.split(",")[3]) for line in (cli_run / "metrics.csv").read_text().splitlines()[1:]]
    assert python_losses == pytest.approx(cli_losses, rel=1e-6)


def test_fit_on_a_table_of_features_regresses_float_targets_and_classifies_integer_ones():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(300, 4)).astype(np.float32)
    values = features @ np.array([1.0, -2.0, 0.5, 0.0], dtype=np.float32) + 3

    run = trainlab.fit(nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 1)), data=(features, values),
                       lr=0.01, **{**SETTINGS, "epochs": 30})  # fmt: skip
    assert run.config["task"] == "regression" and run.test["r2"] > 0.98
    assert run.predict(pd.DataFrame(features[:2], columns=["x0", "x1", "x2", "x3"]))["y"].tolist() == pytest.approx(values[:2], abs=0.3)

    labels = (features[:, 0] > 0).astype(np.int64)
    run = trainlab.fit(nn.Linear(4, 1), data=(features, labels), classes=["no", "yes"], task="binary", lr=0.05,
                       **{**SETTINGS, "epochs": 15})  # fmt: skip
    assert run.config["task"] == "binary" and run.test["auc"] > 0.95
    assert run.predictor().classes == ["no", "yes"]
