"""trainlab summary (summary.py, and trace.py under it): counts checked against the Keras deck, torchvision's VGG16,
torchinfo and the formula of each layer."""

import re
import subprocess
import sys

import pytest
import torch
import torchinfo
from torch import nn
from typer.testing import CliRunner

from trainlab.cli import app
from trainlab.config import load_config
from trainlab.errors import UsageError
from trainlab.models import MODELS
from trainlab.evaluation.model_summary import summarize
from trainlab.data.preprocess import ImagePreprocess
from trainlab.tools.summary import parse_shape, summarize_spec


class TwoTowers(nn.Module):
    """The Keras deck's functional example: inputs of 16 and 32 features, each through Dense 8, concatenated, Dense 4."""

    def __init__(self):
        super().__init__()
        self.dense = nn.Linear(16, 8)
        self.dense_1 = nn.Linear(32, 8)
        self.dense_2 = nn.Linear(16, 4)

    def forward(self, input_a, input_b):
        return self.dense_2(torch.cat([self.dense(input_a), self.dense_1(input_b)], dim=1))  # (B, 8) + (B, 8) -> (B, 16)


TWO_TOWERS_FILE = f'''
import torch
from torch import nn

{__import__("inspect").getsource(TwoTowers)}
'''


def layers(summary):
    """(name, output shapes, parameters) of each layer row."""
    return [(row.name, row.shapes, row.params) for row in summary.layers]


def test_keras_sequential_example_has_2641_parameters_on_a_10x5_input():
    model = nn.Sequential(nn.Linear(5, 100), nn.Linear(100, 20), nn.Linear(20, 1))  # Dense 100, 20, 1
    summary = summarize(model, (10, 5))
    # 5*100+100, 100*20+20, 20*1+1: a Dense layer acts on the last axis, the 10 steps share its weights
    assert layers(summary) == [("0", [(None, 10, 100)], 600), ("1", [(None, 10, 20)], 2_020), ("2", [(None, 10, 1)], 21)]
    assert summary.total_params == summary.trainable_params == 600 + 2_020 + 21 == 2_641
    assert summary.chain
    text = summary.text()
    assert "Total params: 2,641 (10.32 KB)" in text and "Non-trainable params: 0 (0.00 B)" in text
    assert "Connected to" not in text and "(Input)" not in text
    assert "0 (Linear)    (None, 10, 100)      600" in text


def test_keras_functional_example_has_468_parameters_and_shows_its_connections():
    summary = summarize(TwoTowers(), (16,), (32,))
    assert not summary.chain
    table = {row.name: (row.call.kind, row.shapes, row.params, [c.name for c in row.connected]) for row in summary.rows}
    assert table == {
        "input_a": ("Input", [(None, 16)], 0, []),
        "input_b": ("Input", [(None, 32)], 0, []),
        "dense": ("Linear", [(None, 8)], 16 * 8 + 8, ["input_a"]),
        "dense_1": ("Linear", [(None, 8)], 32 * 8 + 8, ["input_b"]),
        "dense_2": ("Linear", [(None, 4)], 16 * 4 + 4, ["dense", "dense_1"]),  # through torch.cat in forward
    }
    assert summary.total_params == 136 + 264 + 68 == 468
    text = summary.text()
    assert 'Model: "TwoTowers", inputs input_a (None, 16), input_b (None, 32)' in text
    lines = text.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("dense_2 (Linear)"))
    assert lines[at].endswith("68  dense") and lines[at + 1].strip() == "dense_1"


VGG16_KEYS = [  # torchvision.models.vgg16().state_dict().keys()
    "features.0.weight", "features.0.bias", "features.2.weight", "features.2.bias",
    "features.5.weight", "features.5.bias", "features.7.weight", "features.7.bias",
    "features.10.weight", "features.10.bias", "features.12.weight", "features.12.bias",
    "features.14.weight", "features.14.bias", "features.17.weight", "features.17.bias",
    "features.19.weight", "features.19.bias", "features.21.weight", "features.21.bias",
    "features.24.weight", "features.24.bias", "features.26.weight", "features.26.bias",
    "features.28.weight", "features.28.bias", "classifier.0.weight", "classifier.0.bias",
    "classifier.3.weight", "classifier.3.bias", "classifier.6.weight", "classifier.6.bias",
]  # fmt: skip


def test_vgg16_with_the_imagenet_head_has_138357544_parameters_and_15_47_g_multiply_adds():
    with torch.device("meta"):  # shapes without allocating 553 MB of weights
        model = MODELS.build("vgg16", in_channels=3, num_classes=1000, image_size=(224, 224))
    assert list(model.state_dict()) == VGG16_KEYS
    summary = summarize(model, (3, 224, 224))
    assert summary.total_params == 138_357_544 and summary.chain
    assert summary.layers[-1].name == "classifier.6" and summary.layers[-1].shapes == [(None, 1000)]
    # (output size, in, out) of the 13 3x3 convs; each output value is a 3*3*in dot product
    convs = [(224, 3, 64), (224, 64, 64), (112, 64, 128), (112, 128, 128), (56, 128, 256), (56, 256, 256),
             (56, 256, 256), (28, 256, 512), (28, 512, 512), (28, 512, 512), (14, 512, 512), (14, 512, 512),
             (14, 512, 512)]  # fmt: skip
    multiply_adds = sum(size * size * out * 9 * inp for size, inp, out in convs) + 25_088 * 4_096 + 4_096 * 4_096 + 4_096 * 1_000
    assert summary.multiply_adds == multiply_adds == 15_470_264_320
    assert "Total params: 138,357,544 (527.79 MB)" in summary.text()  # as Keras prints VGG16
    folded = summarize(model, (3, 224, 224), depth=1)
    assert layers(folded) == [("features", [(None, 512, 7, 7)], 14_714_688), ("avgpool", [(None, 512, 7, 7)], 0),
                              ("classifier", [(None, 1000)], 123_642_856)]  # fmt: skip


def workshop_params(channels=(32, 32, 64, 64), hidden=(256, 128), in_channels=3, size=32, classes=10, extra=False, bn=False):
    c1, c2, c3, c4 = channels
    convs = [(in_channels, c1), (c1, c2), (c2, c3), (c3, c4)] + [(c4, c4)] * extra
    fcs = [(c4 * (size // 4) ** 2, hidden[0]), (hidden[0], hidden[1]), (hidden[1], classes)]
    return (sum(i * o * 9 + o for i, o in convs) + sum(i * o + o for i, o in fcs)
            + bn * 2 * (hidden[0] + hidden[1]))  # fmt: skip


@pytest.mark.parametrize(("preset", "expected"), [
    ("workshop/task1", workshop_params()),
    ("workshop/arch4", workshop_params(extra=True, bn=True)),
    ("workshop/task4", workshop_params(extra=True, bn=True)),
    ("mnist/mlp", 784 * 512 + 512 + 512 * 512 + 512 + 512 * 10 + 10),
])  # fmt: skip
def test_presets_are_summarised_from_their_datasets_shape_without_reading_the_data(preset, expected):
    summary = summarize_spec(preset, [], [])  # TRAINLAB_DATA is an empty folder in the tests
    assert summary.total_params == expected


def test_workshop_task1_rows_follow_the_formulas():
    summary = summarize_spec("workshop/task1", [], [])
    assert workshop_params() == 1_148_586
    assert [(row.call.kind, row.shapes[0], row.params) for row in summary.layers if row.params] == [
        ("Conv2d", (None, 32, 32, 32), 3 * 32 * 9 + 32), ("Conv2d", (None, 32, 32, 32), 32 * 32 * 9 + 32),
        ("Conv2d", (None, 64, 16, 16), 32 * 64 * 9 + 64), ("Conv2d", (None, 64, 16, 16), 64 * 64 * 9 + 64),
        ("Linear", (None, 256), 64 * 8 * 8 * 256 + 256), ("Linear", (None, 128), 256 * 128 + 128),
        ("Linear", (None, 10), 128 * 10 + 10),
    ]  # fmt: skip
    convs = 32 * 32 * (32 * 3 * 9 + 32 * 32 * 9) + 16 * 16 * (64 * 32 * 9 + 64 * 64 * 9)  # output positions x dot products
    assert summary.multiply_adds == convs + 4_096 * 256 + 256 * 128 + 128 * 10 == 25_560_320


def test_arch4_batchnorm_statistics_are_buffers_not_parameters():
    text = summarize_spec("workshop/arch4", [], []).text()
    assert "Buffers, not parameters (batch-norm statistics): 770 (" in text  # means and variances of 256 + 128, 2 counters


def test_multiply_adds_count_convolutions_and_matrix_products_only():
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU(),  # 16x16 -> 8x8
        nn.Conv2d(8, 8, 3, groups=4),  # 8x8 -> 6x6, each output sees 8/4 channels
        nn.MaxPool2d(2), nn.Flatten(), nn.Linear(8 * 3 * 3, 10),
    )  # fmt: skip
    summary = summarize(model, (3, 16, 16))
    assert summary.multiply_adds == 8 * 8 * 8 * (3 * 9) + 8 * 6 * 6 * (2 * 9) + 72 * 10
    lstm = nn.LSTM(8, 16, batch_first=True)
    summary = summarize(lstm, (7, 8))  # one sequence of 7 steps
    assert summary.multiply_adds == 7 * (4 * 16 * 8 + 4 * 16 * 16)  # per step: four gates, from the input and the state
    # the output, then the last hidden and cell states, (layers, batch, hidden) whatever batch_first says
    assert layers(summary) == [("lstm", [(None, 7, 16), (1, None, 16), (1, None, 16)], 4 * 16 * (8 + 16) + 2 * 4 * 16)]


def test_batch_dimension_is_found_where_it_is_and_a_batch_size_adds_the_memory_of_the_outputs():
    class Recurrent(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(8, 16)
            self.head = nn.Linear(16, 3)

        def forward(self, x):  # (B, L, 8)
            out, (h, c) = self.lstm(x.transpose(0, 1))  # (L, B, 16), (1, B, 16), (1, B, 16)
            return self.head(h[-1])

    summary = summarize(Recurrent(), (7, 8))
    assert layers(summary) == [("lstm", [(7, None, 16), (1, None, 16), (1, None, 16)], 4 * 16 * (8 + 16) + 2 * 4 * 16),
                               ("head", [(None, 3)], 51)]  # fmt: skip
    sequential = summarize(nn.Sequential(nn.Linear(5, 100), nn.Linear(100, 20), nn.Linear(20, 1)), (10, 5), batch_size=32)
    assert sequential.layers[0].shapes == [(32, 10, 100)]
    assert sequential.output_bytes == 32 * (10 * 100 + 10 * 20 + 10 * 1) * 4
    assert "Layer outputs for a batch of 32: 151.25 KB" in sequential.text()


def test_a_frozen_part_is_non_trainable():
    model = MODELS.build("workshop_cnn", in_channels=1, num_classes=10, image_size=(8, 8), channels=[4, 4, 8, 8], hidden=[16, 16])
    for p in model[:10].parameters():  # the convolutions
        p.requires_grad_(False)
    summary = summarize(model, (1, 8, 8))
    frozen = (1 * 4 * 9 + 4) + (4 * 4 * 9 + 4) + (4 * 8 * 9 + 8) + (8 * 8 * 9 + 8)
    assert summary.total_params - summary.trainable_params == frozen == 1_068
    assert [row.trainable for row in summary.layers if row.params] == ["N"] * 4 + ["Y"] * 3
    text = summary.text()
    assert "Non-trainable params: 1,068 (4.17 KB)" in text and "Trainable" in text.splitlines()[2]


def test_depth_folds_nested_modules_into_their_parent_row():
    model = MODELS.build("preact_resnet", in_channels=3, num_classes=10, image_size=(32, 32))
    folded = summarize(model, (3, 32, 32), depth=1)
    assert folded.chain  # block after block
    assert [row.params for row in folded.layers] == [864, 64, 18_560, 57_536, 73_984, 229_760, 295_424, 256, 0, 0, 0, 1_290]
    assert folded.layers[3].shapes == [(None, 64, 16, 16)]
    full = summarize(model, (3, 32, 32))
    assert not full.chain  # the shortcuts branch
    rows = {row.name: row for row in full.rows}
    assert rows["2"].params is None and rows["2.conv1"].params == 32 * 32 * 9 and rows["2.conv1"].call.depth == 2
    assert [c.name for c in rows["2.relu#2"].connected] == ["2.bn2"]  # the block's ReLU, called a second time
    assert [c.name for c in rows["3.shortcut"].connected] == ["2.conv2", "2.shortcut"]  # the sum that ends block 2
    assert sum(row.params or 0 for row in full.rows) == full.total_params == 677_738
    assert "  2.conv1 (Conv2d)" in full.text()


@pytest.mark.parametrize(("name", "arguments"), [
    ("workshop_cnn", {"fc_activation": "sigmoid", "extra_conv": True, "fc_batchnorm": True, "dropout": 0.5}),
    ("preact_resnet", {}),
    ("vgg16", {"hidden": 64, "batchnorm": True}),
])  # fmt: skip
def test_every_layer_agrees_with_torchinfo(name, arguments):
    model = MODELS.build(name, in_channels=3, num_classes=10, image_size=(32, 32), **arguments)
    ours = summarize(model, (3, 32, 32))
    theirs = torchinfo.summary(model, input_size=(1, 3, 32, 32), depth=99, verbose=0)
    assert [(row.call.kind, [1, *row.shapes[0][1:]], row.params) for row in ours.layers if row.leaf] == [
        (layer.class_name, layer.output_size, layer.num_params) for layer in theirs.summary_list[1:] if layer.is_leaf_layer]
    assert (ours.total_params, ours.trainable_params) == (theirs.total_params, theirs.trainable_params)


def test_shared_parameters_are_counted_once():
    class Tied(nn.Module):
        def __init__(self):
            super().__init__()
            self.encode = nn.Linear(8, 8)
            self.decode = nn.Linear(8, 8)
            self.decode.weight = self.encode.weight  # tied weights
            self.unused = nn.Linear(8, 2)

        def forward(self, x):
            return self.decode(self.encode(self.encode(x)))  # `encode` runs twice

    summary = summarize(Tied(), (8,))
    assert summary.total_params == 64 + 8 + 8 + 18
    assert [(row.name, row.params, row.shared) for row in summary.layers] == [
        ("encode", 72, 0), ("encode#2", 0, 72), ("decode", 8, 64)]
    text = summary.text()
    assert "8 (+64 shared)" in text and "Parameters in no row (their module is not called in the forward pass): unused (18)" in text


def test_summarizing_leaves_the_model_mode_and_the_random_generator_alone():
    model = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5), nn.BatchNorm1d(4))
    model[2].eval()
    state = torch.random.get_rng_state()
    summarize(model, (4,))
    assert torch.equal(torch.random.get_rng_state(), state)
    assert [m.training for m in model.modules()] == [True, True, True, False]
    assert model[2].num_batches_tracked == 0


class Small(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)
        self.fc = nn.Linear(8 * 30 * 30, 10)

    def forward(self, x):
        return self.fc(self.conv(x).flatten(1))


@pytest.mark.parametrize(("shape", "message"), [
    ((1, 32, 32), "layer conv (Conv2d) expects (None, 3, 32, 32) but got (None, 1, 32, 32)"),
    ((3, 28, 28), "layer fc (Linear) expects (None, 7200) but got (None, 5408)"),
    ((3, 2, 2), "layer conv (Conv2d) expects at least (None, 3, 3, 3) but got (None, 3, 2, 2)"),
    ((3, 32), "layer conv (Conv2d) expects a 4-D input (None, 3, H, W) but got (None, 3, 32)"),
])  # fmt: skip
def test_a_shape_that_does_not_fit_names_the_layer_and_both_shapes(shape, message):
    with pytest.raises(UsageError, match=re.escape(message)):
        summarize(Small(), shape)


def test_bad_inputs_and_names_are_usage_errors():
    assert parse_shape("3x32x32") == (3, 32, 32) and parse_shape("16") == (16,)
    for bad in ("3x", "3x0", "three", "3.5x2"):
        with pytest.raises(UsageError, match=f"--input '{bad}'"):
            parse_shape(bad)
    with pytest.raises(UsageError, match="TwoTowers takes 2 inputs \\(input_a, input_b\\), got 1"):
        summarize(TwoTowers(), (16,))
    with pytest.raises(UsageError, match="'vgg61' is neither a registered model.*did you mean 'vgg16'"):
        summarize_spec("vgg61", [], ["3x32x32"])
    with pytest.raises(UsageError, match="'vgg16' is a model: give the shape of its input"):
        summarize_spec("vgg16", [], [])
    with pytest.raises(UsageError, match="vgg16 takes one image: --input CxHxW"):
        summarize_spec("vgg16", [], ["16"])
    with pytest.raises(UsageError, match="unknown field 'model.hiden' \\(did you mean 'hidden'"):
        summarize_spec("vgg16", ["hiden=8"], ["3x32x32"])


def test_a_registered_model_takes_its_arguments_and_num_classes():
    summary = summarize_spec("mnist_mlp", ["hidden=[8]", "num_classes=3"], ["1x4x4"])
    assert layers(summary)[-1] == ("3", [(None, 3)], 8 * 3 + 3) and summary.total_params == 16 * 8 + 8 + 27


def test_a_run_folder_is_summarised_from_its_preprocessing_record(isolated):
    config, _ = load_config(None, ["data.name=image_folder", "data.root=/no/such/folder", "model.channels=[2,2,2,2]"])
    folder = isolated / "runs" / "old-run"
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(config.to_yaml())
    ImagePreprocess(["a", "b", "c", "d"], (3, 12, 12), [0.0] * 3, [1.0] * 3).save(folder)
    summary = summarize_spec(str(folder), [], [])  # the image folder is gone: preprocess.json gives the shape
    assert summary.layers[0].shapes == [(None, 2, 12, 12)] and summary.layers[-1].shapes == [(None, 4)]


def test_cli_summarises_a_model_file_and_without_graphviz_still_writes_the_graph_source(isolated, monkeypatch):
    (isolated / "nets.py").write_text(TWO_TOWERS_FILE)
    monkeypatch.setenv("PATH", str(isolated / "no-graphviz-here"))
    result = CliRunner().invoke(app, ["summary", "nets.py:TwoTowers", "--input", "16", "--input", "32", "--graph", "model.png"])
    assert result.exit_code == 0, result.output
    assert "Total params: 468" in result.output and "apt-get install graphviz" in result.output
    assert (isolated / "model.dot").is_file() and not (isolated / "model.png").exists()


def test_cli_refuses_a_shape_that_does_not_fit_with_exit_code_2_and_no_traceback(isolated):
    (isolated / "nets.py").write_text(TWO_TOWERS_FILE)
    result = subprocess.run([sys.executable, "-m", "trainlab", "summary", "nets.py:TwoTowers", "--input", "16", "--input", "31"],
                            capture_output=True, text=True, timeout=300)  # fmt: skip
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert "error: inputs (None, 16), (None, 31) do not fit the model: " in result.stderr
    assert "layer dense_1 (Linear) expects (None, 32) but got (None, 31)" in result.stderr
