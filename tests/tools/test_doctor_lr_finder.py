import copy

import pytest
import torch
from sklearn.datasets import load_digits
from torch import nn

from trainlab.engine.step import training_step
from trainlab.tools.doctor.checks import FAIL, PASS
from trainlab.tools.doctor.lr_finder import check_lr, find_lr
from tests.tools.doctor_helpers import FP32_CPU, drawn

GRID = [10.0**k for k in (-4, -3.5, -3, -2.5, -2, -1.5, -1, -0.5, 0)]
STEPS = 100  # per grid rate, as many as the sweep takes


@pytest.fixture(scope="module")
def digits_batches():
    """The 8x8 digits as standardised 64-feature vectors, 300 shuffled batches of 64."""
    digits = load_digits()
    inputs = torch.tensor(digits.data, dtype=torch.float32)
    inputs = (inputs - inputs.mean(0)) / (inputs.std(0) + 1e-6)
    targets = torch.tensor(digits.target)
    g = torch.Generator().manual_seed(0)
    batches = []
    while len(batches) < 300:
        order = torch.randperm(len(targets), generator=g)
        batches += [(inputs[order[i : i + 64]], targets[order[i : i + 64]]) for i in range(0, len(targets) - 63, 64)]
    return batches[:300], (inputs, targets)


def small_mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))


OPTIMIZERS = {
    "sgd": lambda params, lr: torch.optim.SGD(params, lr=lr),
    "adam": lambda params, lr: torch.optim.Adam(params, lr=lr),
}


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_the_suggestion_is_within_10x_of_the_best_rate_of_a_grid(digits_batches, name):
    batches, (inputs, targets) = digits_batches
    make = OPTIMIZERS[name]
    model = small_mlp()
    sweep = find_lr(model, make(model.parameters(), 1e-3), nn.CrossEntropyLoss(), iter(batches), FP32_CPU, seed=0)
    final_loss = {}
    for lr in GRID:  # train from the same initial weights at each rate, then score the whole set
        model = small_mlp()
        optimizer = make(model.parameters(), lr)
        for x, y in batches[:STEPS]:
            training_step(model, optimizer, nn.CrossEntropyLoss(), x, y, FP32_CPU)
        with torch.no_grad():
            final_loss[lr] = nn.functional.cross_entropy(model(inputs), targets).nan_to_num(float("inf")).item()
    best = min(final_loss, key=final_loss.get)
    assert best / 10 <= sweep.suggested <= best * 10, (sweep.suggested, final_loss)


def test_weights_buffers_and_optimizer_state_come_back_bit_identical(digits_batches):
    batches, _ = digits_batches
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 10))  # BN: buffers too
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for x, y in batches[:3]:  # some optimizer state (Adam's moments and step) to restore
        training_step(model, optimizer, nn.CrossEntropyLoss(), x, y, FP32_CPU)
    model.eval()
    weights, state = copy.deepcopy(model.state_dict()), copy.deepcopy(optimizer.state_dict())
    find_lr(model, optimizer, nn.CrossEntropyLoss(), iter(batches[3:]), FP32_CPU, seed=0)
    assert not model.training
    assert weights.keys() == model.state_dict().keys()
    assert all(torch.equal(weights[k], v) for k, v in model.state_dict().items())
    after = optimizer.state_dict()
    assert after["param_groups"] == state["param_groups"]  # the rate is back at 3e-3
    for i, moments in state["state"].items():
        assert moments.keys() == after["state"][i].keys()
        assert all(torch.equal(v, after["state"][i][k]) for k, v in moments.items())


def test_the_sweep_repeats_under_the_seed_and_leaves_the_callers_random_stream(digits_batches):
    batches, _ = digits_batches
    model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Dropout(0.3), nn.Linear(32, 10))  # dropout draws numbers
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    torch.manual_seed(123)
    first = find_lr(model, optimizer, nn.CrossEntropyLoss(), iter(batches), FP32_CPU, seed=7)
    after_first = torch.rand(3)
    torch.manual_seed(123)
    second = find_lr(model, optimizer, nn.CrossEntropyLoss(), iter(batches), FP32_CPU, seed=7)
    assert first.losses == second.losses and first.suggested == second.suggested
    torch.manual_seed(123)
    assert torch.equal(torch.rand(3), after_first)  # the sweep drew nothing from the caller's stream


def test_a_learning_rate_of_10_fails_past_the_divergence(digits_batches):
    batches, _ = digits_batches
    model = small_mlp()
    check = check_lr(model, torch.optim.SGD(model.parameters(), lr=10.0), nn.CrossEntropyLoss(), iter(batches), FP32_CPU, 0)
    assert check.status == FAIL
    assert check.evidence["diverged_at"] <= 10
    assert "lr_finder" in check.figures


def test_a_rate_near_the_suggestion_passes(digits_batches):
    batches, _ = digits_batches
    model = small_mlp()
    check = check_lr(model, torch.optim.Adam(model.parameters(), lr=1e-2), nn.CrossEntropyLoss(), iter(batches), FP32_CPU, 0)
    assert check.status == PASS, check.summary
    assert check.evidence["rule"].startswith("min/10")


def test_a_model_that_outputs_inf_has_no_rate_to_suggest(digits_batches):
    batches, _ = digits_batches
    model = small_mlp()
    with torch.no_grad():
        model[-1].bias.fill_(float("inf"))
    check = check_lr(model, torch.optim.Adam(model.parameters(), lr=1e-3), nn.CrossEntropyLoss(), iter(batches), FP32_CPU, 0)
    assert check.status == FAIL
    assert check.evidence["suggested_lr"] is None and check.evidence["non_finite_step"] == 1
    assert check.summary == "the loss is nan at step 1 of the sweep, at lr 1e-07: no rate to suggest"
    assert "not the cause" in check.advice
    assert drawn(check.figures["lr_finder"])


def test_a_configured_rate_above_the_sweep_extends_it_past_that_rate(digits_batches):
    batches, _ = digits_batches
    model = small_mlp()
    check = check_lr(model, torch.optim.Adam(model.parameters(), lr=1e3), nn.CrossEntropyLoss(), iter(batches), FP32_CPU, 0)
    assert check.evidence["sweep_end"] == 1e4
    assert check.status == FAIL and check.evidence["diverged_at"] <= 1e3
    assert drawn(check.figures["lr_finder"])


# The first 28 raw losses of the old sweep on tables/diabetes (batches of 32 rows, rates 1e-7 to 1.5e-5): noise
# alone, whose smoothed curve dipped 15 % below the starting level and came back, which read as a fall and a divergence.
DIABETES_NOISE = [1.242, 1.013, 0.927, 1.112, 1.150, 0.745, 1.037, 1.251, 0.560, 0.779, 0.601, 1.070, 1.084, 1.543,
                  1.191, 0.788, 1.248, 1.216, 1.059, 1.106, 0.981, 1.142, 0.954, 0.843, 0.847, 1.438, 1.340, 1.157]  # fmt: skip


def test_a_dip_of_the_noise_is_no_fall_and_its_return_no_divergence():
    from trainlab.tools.doctor.lr_finder import MIN_DROP, SMOOTHING, _diverged, _loss_noise, _start_level

    average, best = 0.0, float("inf")
    for step in range(len(DIABETES_NOISE)):
        losses = DIABETES_NOISE[: step + 1]
        average = SMOOTHING * average + (1 - SMOOTHING) * losses[-1]
        smoothed = average / (1 - SMOOTHING ** (step + 1))
        best = min(best, smoothed)
        assert not _diverged(smoothed, best, losses), step
    assert best < (1 - MIN_DROP) * _start_level(DIABETES_NOISE) and smoothed >= _start_level(DIABETES_NOISE)  # the old rule's stop
    assert 0.15 < _loss_noise(DIABETES_NOISE) < 0.25


def test_on_a_noisy_regression_the_suggestion_is_where_the_loss_really_falls():
    g = torch.Generator().manual_seed(0)
    inputs = torch.randn(4096, 10, generator=g)
    targets = inputs @ (2 * torch.randn(10, 1, generator=g) / 10**0.5) + torch.randn(4096, 1, generator=g)  # MSE ±25 % a batch
    batches = [(inputs[i : i + 32], targets[i : i + 32]) for i in range(0, 4096, 32)]
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 1))
    sweep = find_lr(model, torch.optim.Adam(model.parameters(), lr=1e-3), nn.MSELoss(), iter(batches), FP32_CPU, seed=0)
    assert sweep.fell and sweep.noise > 0.5
    assert 1e-3 <= sweep.suggested <= 1e-1, sweep.suggested  # Adam on a small MLP: where the grid tests put it
