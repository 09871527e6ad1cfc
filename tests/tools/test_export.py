"""`trainlab export`: a run's model as ONNX and int8, checked against PyTorch on the run's test set; the folder
written whole or not at all."""

import json
import shutil

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime", reason="trainlab export needs the export extra (onnx, onnxruntime)")

from tests.conftest import TINY  # noqa: E402
from tests.test_cli import assert_user_error, trainlab  # noqa: E402
from tests.text.tiny import write_emotion  # noqa: E402
from trainlab.config import load_config  # noqa: E402
from trainlab.data.preprocess import load_preprocess  # noqa: E402
from trainlab.errors import TrainlabError  # noqa: E402
from trainlab.experiment import run_experiment  # noqa: E402
from trainlab.export.runtime import OnnxModel  # noqa: E402
from trainlab.inference import Predictor  # noqa: E402
from trainlab.tools.export import export_run  # noqa: E402

TINY_TEXT = ["data.name=emotion", "data.batch_size=16", "epochs=2", "progress=false", "model.name=lstm_classifier",
             "model.embedding_dim=8", "model.hidden_size=8"]  # fmt: skip


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A tiny workshop CNN on the embedded digits and a tiny LSTM on a tiny emotion set, trained once."""
    root = tmp_path_factory.mktemp("export")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        patch.setenv("TRAINLAB_CACHE", str(root / "cache"))
        patch.setenv("TRAINLAB_DATA", str(root / "data"))
        write_emotion(root / "data" / "emotion")
        cnn = run_experiment(*load_config(None, [*TINY, "epochs=6", "optimizer.lr=0.01", "precision=fp32"])).path.resolve()
        lstm = run_experiment(*load_config(None, [*TINY_TEXT, "precision=fp32"])).path.resolve()
        yield {"cnn": cnn, "lstm": lstm, "root": root}


@pytest.fixture
def data_of(runs, monkeypatch):
    monkeypatch.setenv("TRAINLAB_DATA", str(runs["root"] / "data"))
    monkeypatch.setenv("TRAINLAB_CACHE", str(runs["root"] / "cache"))


def test_a_conv_net_exports_to_onnx_and_static_int8_with_its_test_accuracy(runs, data_of):
    result = export_run(runs["cnn"])
    folder, record = runs["cnn"] / "export", result.record
    assert result.path == folder
    assert json.loads((folder / "export.json").read_text()) == record
    assert record["opset"] == 17 and record["input"]["shape"][0] == "batch"
    assert record["parity"]["max_abs_logit_difference"] <= 1e-3
    assert record["quantization"].startswith("static, QDQ")
    models = record["models"]
    assert models["onnx fp32"]["test_acc"] == pytest.approx(models["torch fp32"]["test_acc"], abs=0.002)
    assert abs(models["onnx int8"]["test_acc"] - models["torch fp32"]["test_acc"]) <= 0.05
    assert models["onnx int8"]["bytes"] > 0  # (a tiny net's QDQ nodes outweigh its int8 savings: no size claim here)
    # any batch size runs, and the model in the folder gives the run's own predictions from its preprocessing
    preprocess = load_preprocess(folder)
    predictor = Predictor.from_run(runs["cnn"], device="cpu")
    images = torch.rand(5, *predictor.preprocess.example().shape)
    for batch in (images[:1], images):
        expected = predictor.model.float()(batch).detach().numpy()
        assert np.allclose(OnnxModel(folder / "model.onnx")(batch), expected, atol=1e-4)
    assert preprocess.classes == predictor.classes
    assert not [p for p in runs["cnn"].iterdir() if p.name.startswith(".export")]


def test_a_text_model_exports_with_dynamic_batch_and_length_and_dynamic_int8(runs, data_of):
    record = export_run(runs["lstm"]).record
    assert record["quantization"].startswith("dynamic")
    assert record["input"] == {**record["input"], "shape": ["batch", "length"], "dtype": "int64"}
    assert record["parity"]["max_abs_logit_difference"] <= 1e-3
    predictor = Predictor.from_run(runs["lstm"], device="cpu")
    ids = predictor.preprocess.encode(["i feel great today and happy", "so angry", "what a day"])  # padded to the longest
    exported = OnnxModel(runs["lstm"] / "export" / "model.onnx")
    expected = predictor.model.float()(ids).detach().numpy()
    assert np.allclose(exported(ids), expected, atol=1e-4)
    assert np.allclose(exported(ids[1:2, :2]), predictor.model.float()(ids[1:2, :2]).detach().numpy(), atol=1e-4)
    int8 = record["models"]["onnx int8"]
    assert abs(int8["test_acc"] - record["models"]["torch fp32"]["test_acc"]) <= 0.1


def test_logits_beyond_the_tolerance_leave_nothing_behind(runs, data_of, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(runs["cnn"], copy)
    shutil.rmtree(copy / "export", ignore_errors=True)
    with pytest.raises(TrainlabError, match="more than the tolerance 1e-12"):
        export_run(copy, tolerance=1e-12)
    assert not (copy / "export").exists()
    assert not [p for p in copy.iterdir() if p.name.startswith(".export")]


def test_export_cli_prints_the_table_and_refuses_bad_requests(runs, data_of, tmp_path, read_only_dir):
    result = trainlab("export", str(runs["cnn"]))
    assert result.returncode == 0, result.stderr
    assert "onnx int8" in result.stdout and "largest logit difference" in result.stdout
    assert_user_error(trainlab("export", str(runs["cnn"]), "model.hidden=[8]"), 2, "trainlab export: cannot override 'model.hidden'")
    assert_user_error(trainlab("export", str(runs["cnn"]), "--checkpoint", "first"), 2, "--checkpoint: expected best or last")
    frozen = tmp_path / "frozen"
    shutil.copytree(runs["cnn"], frozen)
    read_only_dir(frozen)
    assert_user_error(trainlab("export", str(frozen)), 2, f"cannot write into {frozen}")


def test_bench_times_every_backend_interleaved_and_records_the_machine(runs, data_of, tmp_path):
    from trainlab.tools.bench import bench_run

    copy = tmp_path / "unexported"
    shutil.copytree(runs["cnn"], copy)
    shutil.rmtree(copy / "export", ignore_errors=True)
    assert_user_error(trainlab("bench", str(copy)), 2, "export the run first with `trainlab export")
    if not (runs["cnn"] / "export" / "model.int8.onnx").is_file():
        export_run(runs["cnn"])
    result = bench_run(runs["cnn"], batches=(1, 4), seconds=0.2, threads=1)
    record = json.loads(result.path.read_text())
    assert record == result.record and record["threads"] == 1 and record["cpu"]
    backends = {row["backend"] for row in record["results"]}
    assert {"torch fp32", "onnx fp32", "onnx int8"} <= backends
    for row in record["results"]:
        assert row["calls"] >= 10 and 0 < row["p50_ms"] <= row["p90_ms"] <= row["p99_ms"]
    fp32_rows = [row for row in record["results"] if row["backend"] == "torch fp32"]
    assert [row["speedup_vs_torch_fp32"] for row in fp32_rows] == [1.0, 1.0]
    assert [row["p50_speedup_vs_torch_fp32"] for row in fp32_rows] == [1.0, 1.0]
