"""The Python API: the command line's runner, config checks and run folder, returned as objects."""

import numpy as np
import pytest
from PIL import Image

import trainlab
from trainlab.api import overrides_from
from trainlab.errors import ConfigError, UsageError

TINY_SETTINGS = dict(model={"channels": [4, 4, 8, 8], "hidden": [16, 16]}, epochs=2, progress=False)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    import os

    here = os.getcwd()
    os.chdir(tmp_path_factory.mktemp("api"))
    try:
        return trainlab.run(quiet=True, **TINY_SETTINGS, optimizer={"lr": 0.003})
    finally:
        os.chdir(here)


def test_settings_become_the_command_line_s_overrides():
    settings = {"epochs": 3, "optimizer": {"lr": 3e-4, "name": "adamw"}, "model": {"channels": [4, 8]}, "progress": False}
    assert overrides_from(settings) == [
        "epochs=3", "optimizer.lr=0.0003", "optimizer.name=adamw", "model.channels=[4, 8]", "progress=false",
    ]


def test_run_trains_in_a_run_folder_and_reads_it_back(tiny_run):
    assert tiny_run.status == "finished" and (tiny_run.path / "checkpoints" / "best.pt").is_file()
    assert tiny_run.config["optimizer"]["lr"] == 0.003 and tiny_run.config["epochs"] == 2
    metrics = tiny_run.metrics
    assert list(metrics.index) == [1, 2] and {"train_loss", "val_acc"} <= set(metrics.columns)
    test = tiny_run.test
    assert test["accuracy"] == tiny_run.record["test_acc"] and 0 <= test["macro_f1"] <= 1
    assert {"precision", "recall", "f1-score", "support"} <= set(test["report"].columns)
    assert "macro avg" in test["report"].index


def test_load_run_is_the_same_run_and_predicts_as_trainlab_predict(tiny_run, tmp_path):
    loaded = trainlab.load_run(tiny_run.path)
    assert loaded.record == tiny_run.record
    image = np.zeros((8, 8), dtype=np.uint8)
    image[2:6, 3:5] = 255
    Image.fromarray(image).save(tmp_path / "one.png")
    (answer,) = loaded.predict([str(tmp_path / "one.png")], top=3)
    assert len(answer) == 3 and answer[0][1] >= answer[1][1] >= answer[2][1]
    assert all(label in loaded.predictor().classes for label, _ in answer)


def test_the_notebook_view_shows_numbers_curves_and_the_confusion_matrix(tiny_run):
    page = tiny_run._repr_html_()
    assert f"{tiny_run.record['test_acc']:.2%}" in page
    assert page.count("data:image/png;base64,") == 2 and 'alt="confusion_matrix.png"' in page


def test_compare_is_a_dataframe_of_the_runs(tiny_run, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    other = trainlab.run(quiet=True, **TINY_SETTINGS, optimizer={"lr": 0.01})
    table = trainlab.compare([tiny_run, other.path], sort="test_acc")
    assert set(table.index) == {tiny_run.name, other.name}
    assert list(table["optimizer.lr"].sort_values()) == [0.003, 0.01]
    assert list(table["test_acc (%)"]) == sorted(table["test_acc (%)"], reverse=True)


def test_mistakes_are_raised_as_the_command_s_errors(tmp_path):
    with pytest.raises(ConfigError, match="epoch"):
        trainlab.run(quiet=True, epoch=3)
    with pytest.raises(UsageError, match="not a run folder"):
        trainlab.load_run(tmp_path)
    (tmp_path / "config.yaml").write_text("epochs: 1\n")
    with pytest.raises(UsageError, match="no test results"):
        trainlab.load_run(tmp_path).test
