import torch
from torch import nn

from trainlab.tools.doctor.checks import FAIL, PASS
from trainlab.tools.doctor.overfit import EXAMPLE_TARGET_LOSS, check_overfit_batch, check_overfit_example
from tests.tools.doctor_helpers import CLASSES, FEATURES, FP32_CPU, adam, batched, blobs, drawn, inf_mlp, mlp, sgd


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


def test_a_model_that_outputs_inf_fails_at_the_first_step_and_the_advice_blames_the_model():
    for check_fn in (check_overfit_example, check_overfit_batch):
        check = check_fn(inf_mlp(), adam(), nn.CrossEntropyLoss(), one_batch(), FP32_CPU)
        assert check.status == FAIL
        assert check.evidence["non_finite_step"] == check.evidence["steps"] == 1
        assert "nan at the first step, before any update" in check.summary
        assert "not the cause" in check.advice and "forward" in check.advice
        assert drawn(check.figures[check.name])


def test_a_rate_that_diverges_names_the_step_and_the_rate():
    check = check_overfit_batch(mlp(), sgd(lr=1e30), nn.CrossEntropyLoss(), one_batch(), FP32_CPU)
    assert check.status == FAIL
    assert check.evidence["non_finite_step"] == 2 and check.evidence["lr"] == 1e30
    assert "at step 2 (lr 1e+30)" in check.summary and "optimizer.lr=1e+29" in check.advice
    assert drawn(check.figures["overfit_batch"])
