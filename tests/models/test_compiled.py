"""A frozen backbone compiled for the feature and test passes: the same outputs as eager, any batch size,
and the eager backbone when compilation fails."""

import torch
from torch import nn

from trainlab.models.compiled import CompiledBackbone


def backbone() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU6(), nn.AdaptiveAvgPool2d(1), nn.Flatten()).eval()


def test_compiled_backbone_gives_eager_outputs_for_batches_of_any_size():
    model = backbone()
    model[1].running_mean.uniform_(-1, 1)  # batch norm that folding must get right
    model[1].running_var.uniform_(0.5, 2)
    lines = []
    compiled = CompiledBackbone(model, lines.append, chunk=4)
    images = torch.randn(10, 3, 8, 8)  # two full chunks and a padded one
    with torch.no_grad():
        expected, features = model(images), compiled(images)
    assert compiled.active and not lines
    assert features.shape == (10, 8)
    assert torch.allclose(features, expected, atol=1e-5)
    assert not features.is_inference()  # a training step may save it for backward
    with torch.inference_mode():
        assert torch.allclose(compiled(images[:3]), expected[:3], atol=1e-5)


def test_a_backbone_that_does_not_compile_runs_eager_and_says_so():
    model, lines = backbone(), []
    compiled = CompiledBackbone(model, lines.append, chunk=4)

    def fails(x):
        raise RuntimeError("no C++ compiler found\nmore detail")

    compiled.compiled = fails
    images = torch.randn(6, 3, 8, 8)
    with torch.no_grad():
        assert torch.equal(compiled(images), model(images))
    assert not compiled.active
    assert lines == ["the frozen backbone could not be compiled (no C++ compiler found); it runs uncompiled"]
