import numpy as np
import torch
from torch import nn

from trainlab.tools.doctor.checks import FAIL, PASS, WARN
from trainlab.tools.doctor.seeds import Trial, check_seeds
from tests.tools.doctor_helpers import CLASSES, FEATURES, FP32_CPU, batched, blobs, inf_mlp

BATCHES = batched(*blobs())[:3]


class UnseededDropout(nn.Module):
    """Dropout whose masks come from NumPy's default_rng() without a seed: fresh OS entropy in every run."""

    def __init__(self, p=0.5):
        super().__init__()
        self.p, self.rng = p, np.random.default_rng()

    def forward(self, x):
        keep = torch.from_numpy(self.rng.random(tuple(x.shape)) >= self.p)
        return x * keep / (1 - self.p)


def trial_with(dropout, model=None):
    """Builds a short run; the model comes from torch's global generator, which the check has seeded."""
    def build(seed):
        net = model() if model else nn.Sequential(nn.Linear(FEATURES, 32), nn.ReLU(), dropout(), nn.Linear(32, CLASSES))
        return Trial(net, torch.optim.Adam(net.parameters(), lr=1e-2), nn.CrossEntropyLoss(), BATCHES)

    return build


def test_torch_dropout_repeats_under_the_seed():
    check = check_seeds(trial_with(lambda: nn.Dropout(0.5)), 0, FP32_CPU)
    assert check.status == PASS, check.summary
    assert check.evidence["losses_seed"] == check.evidence["losses_seed_again"] != check.evidence["losses_seed_plus_1"]


def test_a_dropout_path_the_seed_does_not_reach_fails():
    check = check_seeds(trial_with(UnseededDropout), 0, FP32_CPU)
    assert check.status == FAIL
    assert check.evidence["same_seed_max_difference"] > 0
    assert "default_rng" in check.advice


def test_a_model_the_seed_does_not_reach_warns():
    def fixed():  # weights set to constants, no dropout: every seed gives the same run
        model = nn.Sequential(nn.Linear(FEATURES, 8), nn.ReLU(), nn.Linear(8, CLASSES))
        for i, p in enumerate(model.parameters()):
            nn.init.constant_(p, 0.01 * (i + 1))
        return model

    check = check_seeds(trial_with(None, model=fixed), 0, FP32_CPU)
    assert check.status == WARN and "identical" in check.summary


class NoisyLoader:
    """Augments each batch with noise from an unseeded generator: epoch 0 is never the same twice."""

    def __init__(self, batches):
        self.batches, self.rng = batches, np.random.default_rng()

    def set_epoch(self, epoch):
        pass

    def __iter__(self):
        for x, y in self.batches:
            yield x + torch.from_numpy(self.rng.normal(size=tuple(x.shape))).float(), y


def test_a_loader_that_does_not_repeat_its_epoch_fails():
    check = check_seeds(trial_with(lambda: nn.Dropout(0.5)), 0, FP32_CPU, loader=NoisyLoader(BATCHES))
    assert check.status == FAIL and "loader" in check.summary


def test_a_loss_that_is_nan_from_the_first_step_leaves_nothing_to_compare():
    check = check_seeds(trial_with(None, model=inf_mlp), 0, FP32_CPU)
    assert check.status == WARN and check.summary.startswith("not applicable: the loss is nan from the first step")
    assert check.evidence["non_finite_step"] == 1
    assert "not the cause" in check.advice  # no update has happened: the model overflows


def test_a_loss_that_blows_up_within_the_steps_is_compared_as_it_is_and_warns():
    def build(seed):
        net = nn.Sequential(nn.Linear(FEATURES, 32), nn.ReLU(), nn.Linear(32, CLASSES))
        return Trial(net, torch.optim.SGD(net.parameters(), lr=1e30), nn.CrossEntropyLoss(), BATCHES)

    check = check_seeds(build, 0, FP32_CPU)
    assert check.status == WARN
    assert check.evidence["non_finite_step"] == 2 and check.evidence["same_seed_max_difference"] == 0  # NaN repeats NaN
    assert "identical" in check.summary and "from step 2" in check.summary
