import math

import pytest
import torch
from torch import nn

from trainlab.models.init import INIT_SCHEMES, initialize

FAN_IN, FAN_OUT = 1000, 500
EXPECTED_STD = {
    "xavier_uniform": math.sqrt(2 / (FAN_IN + FAN_OUT)),
    "xavier_normal": math.sqrt(2 / (FAN_IN + FAN_OUT)),
    "kaiming_uniform": math.sqrt(2 / FAN_IN),  # gain sqrt(2) for ReLU
    "kaiming_normal": math.sqrt(2 / FAN_IN),
}


def small_cnn():
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 6 * 6, 10))


@pytest.mark.parametrize("scheme", EXPECTED_STD)
def test_each_scheme_draws_linear_weights_with_its_formula_std_and_zero_biases(scheme):
    torch.manual_seed(0)
    layer = initialize(nn.Linear(FAN_IN, FAN_OUT), scheme)
    assert layer.weight.std().item() == pytest.approx(EXPECTED_STD[scheme], rel=0.05)
    assert abs(layer.weight.mean().item()) < 0.01 * EXPECTED_STD[scheme]
    assert torch.count_nonzero(layer.bias) == 0


@pytest.mark.parametrize("scheme", ["xavier_normal", "kaiming_normal"])
def test_conv_weights_use_channels_times_kernel_area_as_fans(scheme):
    torch.manual_seed(0)
    conv = initialize(nn.Conv2d(64, 128, 3), scheme)
    fan_in, fan_out = 64 * 9, 128 * 9
    expected = math.sqrt(2 / (fan_in + fan_out)) if scheme == "xavier_normal" else math.sqrt(2 / fan_in)
    assert conv.weight.std().item() == pytest.approx(expected, rel=0.05)
    assert torch.count_nonzero(conv.bias) == 0


@pytest.mark.parametrize("scheme", INIT_SCHEMES)
def test_schemes_are_deterministic_under_manual_seed(scheme):
    def draw():
        torch.manual_seed(7)
        return initialize(small_cnn(), scheme).state_dict()

    first, second = draw(), draw()
    assert all(torch.equal(first[k], second[k]) for k in first)


def test_default_keeps_pytorchs_init():
    torch.manual_seed(0)
    model = small_cnn()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert initialize(model, "default") is model
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert torch.count_nonzero(model[3].bias) > 0


def test_layers_without_weights_to_draw_are_left_alone():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4), nn.Linear(4, 2, bias=False))
    initialize(model, "kaiming_normal")
    assert torch.equal(model[1].weight, torch.ones(4)) and torch.equal(model[1].bias, torch.zeros(4))


def test_an_unknown_scheme_suggests_the_closest():
    with pytest.raises(ValueError, match=r"unknown init scheme 'xavier' \(did you mean 'xavier_normal'\?\); known schemes: default"):
        initialize(small_cnn(), "xavier")
