import torch
from torch import nn

from trainlab.tools.doctor.checks import FAIL, PASS
from trainlab.tools.doctor.overfit import EXAMPLE_TARGET_LOSS, check_overfit_batch, check_overfit_example
from tests.tools.doctor_helpers import CLASSES, FEATURES, FP32_CPU, adam, batched, blobs, mlp, sgd


class IgnoresInput(nn.Module):
    """A forward that never looks at its input: it feeds the layers zeros of the input's shape."""

    def __init__(self):
        super().__init__()
        self.net = mlp()

    def forward(self, x):
        return self.net(torch.zeros_like(x))


def one_batch():
    return batched(*blobs(n=64), size=64)[0]


def test_a_healthy_model_fits_one_example_to_about_zero():
    check = check_overfit_example(mlp(), adam(), nn.CrossEntropyLoss(), one_batch(), FP32_CPU)
    assert check.status == PASS, check.summary
    assert check.evidence["final_loss"] < EXAMPLE_TARGET_LOSS
    assert check.evidence["steps_to_target"] == check.evidence["steps"] <= 200
    assert "overfit_example" in check.figures


def test_a_model_that_ignores_its_input_cannot_overfit_one_example():
    check = check_overfit_example(IgnoresInput(), adam(), nn.CrossEntropyLoss(), one_batch(), FP32_CPU)
    assert check.status == FAIL
    assert check.evidence["output_spread_across_inputs"] == 0
    assert "ignores its input" in check.advice


def test_a_model_that_ignores_its_input_cannot_overfit_one_batch_either():
    check = check_overfit_batch(IgnoresInput(), adam(), nn.CrossEntropyLoss(), one_batch(), FP32_CPU)
    assert check.status == FAIL
    assert check.evidence["final_loss"] > 0.5 * check.evidence["first_loss"]


def test_batch_norm_gets_the_one_example_twice():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(FEATURES, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, CLASSES))
    assert check_overfit_example(model, adam(), nn.CrossEntropyLoss(), one_batch(), FP32_CPU).status == PASS


def test_a_healthy_model_overfits_one_batch_steadily():
    check = check_overfit_batch(mlp(width=64), adam(), nn.CrossEntropyLoss(), one_batch(), FP32_CPU)
    assert check.status == PASS, check.summary
    assert check.evidence["final_loss"] < 0.1 * check.evidence["first_loss"]
    assert check.evidence["spikes"] == 0


def test_a_learning_rate_of_10_cannot_overfit_one_batch():
    check = check_overfit_batch(mlp(), sgd(lr=10.0), nn.CrossEntropyLoss(), one_batch(), FP32_CPU)
    assert check.status == FAIL
    assert "learning rate" in check.advice


def test_dropout_is_off_and_the_model_is_left_untouched():
    model = nn.Sequential(mlp(), nn.Dropout(0.9))  # at p = 0.9 the loss could never settle near 0
    before = [p.clone() for p in model.parameters()]
    assert check_overfit_example(model, adam(), nn.CrossEntropyLoss(), one_batch(), FP32_CPU).status == PASS
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
