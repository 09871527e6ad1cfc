import math

import pytest
import torch
from torch import nn

from trainlab.tools.doctor.checks import FAIL, PASS, WARN
from trainlab.tools.doctor.health import check_health
from tests.tools.doctor_helpers import FP32_CPU, adam, batched, blobs, drawn, inf_mlp, mlp, sgd


def run(model, make_optimizer=adam(1e-3)):
    return check_health(model, make_optimizer, nn.CrossEntropyLoss(), iter(batched(*blobs(n=320))), FP32_CPU, seed=0)


def test_a_healthy_relu_net_passes():
    check = run(mlp(depth=2))
    assert check.status == PASS, check.summary
    assert set(check.evidence["grad_norm"]) == {"0 Linear", "2 Linear", "4 Linear"}
    assert max(check.evidence["dead_relu_share"].values()) < 0.25
    assert "health" in check.figures


def test_a_deep_sigmoid_net_loses_its_gradients_on_the_way_down():
    check = run(mlp(depth=8, width=64, activation=nn.Sigmoid))  # each sigmoid passes on at most a quarter
    assert check.status == FAIL
    norms = list(check.evidence["grad_norm"].values())
    assert norms[0] < 1e-3 * max(norms)  # the first layer hears under a thousandth of what the last does
    assert "vanishing" in check.summary


def test_a_deep_sigmoid_net_with_large_weights_saturates():
    model = mlp(depth=8, width=64, activation=nn.Sigmoid)
    with torch.no_grad():
        for layer in model[:-1:2]:
            layer.weight.normal_(0, 2)  # pre-activations of std ~10: the sigmoids sit on their flat tails
    check = run(model)
    assert check.status == FAIL
    assert max(check.evidence["saturated_share"].values()) > 0.5
    assert "saturated" in check.summary


def test_relus_pushed_below_zero_are_dead():
    model = mlp(depth=2)
    with torch.no_grad():
        model[2].bias.fill_(-100.0)  # the second hidden layer can never be positive
    check = run(model)
    assert check.status == FAIL
    assert check.evidence["dead_relu_share"]["3 ReLU"] == 1.0
    assert "no gradient" in check.summary and "100% dead ReLUs in 3 ReLU" in check.summary


def test_a_learning_rate_far_too_small_moves_nothing():
    check = run(mlp(), sgd(lr=1e-9))
    assert check.status == WARN
    assert "too small" in check.advice


def test_the_model_itself_is_not_trained():
    model = mlp()
    before = [p.clone() for p in model.parameters()]
    run(model)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


@pytest.mark.parametrize("name, args", [
    ("workshop_cnn", {"channels": [4, 4, 8, 8], "hidden": [8, 8], "fc_activation": "sigmoid", "fc_batchnorm": True}),
    ("mnist_mlp", {"hidden": [8], "activation": "tanh"}),
    ("preact_resnet", {"widths": [4, 8]}),  # one nn.ReLU per block serves two widths
    ("sequential", {}),
])
def test_every_image_model_of_the_lab_can_be_examined(name, args):
    from trainlab.models import MODELS

    torch.manual_seed(0)
    model = MODELS.build(name, in_channels=1, num_classes=4, image_size=(8, 8), **args)
    g = torch.Generator().manual_seed(0)
    batches = [(torch.randn(8, 1, 8, 8, generator=g), torch.randint(0, 4, (8,), generator=g)) for _ in range(10)]
    check = check_health(model, adam(1e-3), nn.CrossEntropyLoss(), iter(batches), FP32_CPU, seed=0)
    assert check.evidence["grad_norm"] and (check.evidence["dead_relu_share"] or check.evidence["saturated_share"])
    assert "health" in check.figures


def test_a_model_that_outputs_inf_fails_naming_the_first_layer_that_overflows():
    check = run(inf_mlp(depth=2))
    assert check.status == FAIL
    broken = check.evidence["non_finite"]
    assert broken["step"] == 1 and math.isnan(broken["loss"]) and broken["first_non_finite_output"] == "4 Linear"
    assert check.evidence["steps"] == 0 and check.evidence["grad_norm"] == {}
    assert "not finite at step 1 (lr 0.001); the first non-finite output: 4 Linear" in check.summary
    assert "not the cause" in check.advice
    assert drawn(check.figures["health"])


def test_a_rate_that_diverges_stops_the_steps_before_it_spoils_the_weights():
    check = run(mlp(depth=2), sgd(lr=1e30))
    assert check.status == FAIL
    assert check.evidence["non_finite"]["step"] == 2 and check.evidence["steps"] == 1
    assert all(math.isfinite(v) for v in check.evidence["grad_norm"].values())  # from the finite step before
    assert "at step 2 (lr 1e+30)" in check.summary and "optimizer.lr=1e+29" in check.advice
    assert drawn(check.figures["health"])
