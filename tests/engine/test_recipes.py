"""The fast recipe's pieces (airbench94's ideas), each usable by any image config: weight averages (EMA,
Lookahead), batch-norm settings, patch whitening, test-time flips, alternating flips, one-cycle schedule,
validation every N epochs, and the `airbench` network."""

import copy
import json

import pytest
import torch
from torch import nn

from tests.conftest import TINY
from trainlab.config import load_config
from trainlab.data.augment import build_augment
from trainlab.data.table_loader import TableLoader
from trainlab.engine.averaging import Lookahead, WeightEMA
from trainlab.engine.checkpoint import restore
from trainlab.engine.device import Placement
from trainlab.engine.loop import Callback, Trainer
from trainlab.engine.optim import SCHEDULERS, parameter_groups, scale_learning_rates
from trainlab.models.fast import airbench
from trainlab.models.tuning import add_test_time_augmentation, configure_batchnorm, whiten_first_conv

CPU = Placement(torch.device("cpu"), None, False)


def table(n: int = 24, batch_size: int = 4) -> TableLoader:
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(n, 5, generator=generator)
    return TableLoader(features, (features[:, 0] > 0).long(), batch_size, shuffle=True, seed=1)


def mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))


def trainer(model: nn.Module, callbacks, epochs: int = 2, val=None, **kwargs) -> Trainer:
    optimizer = torch.optim.SGD(model.parameters(), lr=0.3, momentum=0.9)
    return Trainer(model, optimizer, nn.CrossEntropyLoss(), table(), val, epochs=epochs, placement=CPU,
                   callbacks=callbacks, **kwargs)  # fmt: skip


class Record(Callback):
    """The model's weights at every `hook`: after every step by default (fired before the averages act on them);
    "on_epoch_end": as validation and the checkpoints see them."""

    def __init__(self, hook: str = "on_train_batch_end"):
        self.steps = []
        setattr(self, hook, self._record)

    def _record(self, trainer):
        self.steps.append({k: v.detach().clone() for k, v in trainer.model.state_dict().items() if v.is_floating_point()})


def test_the_ema_is_the_average_of_the_steps_and_is_what_the_run_ends_on():
    record, ema = Record(), WeightEMA(decay=0.8)
    model = mlp()
    start = {k: v.clone() for k, v in model.state_dict().items() if v.is_floating_point()}
    trainer(model, [record, ema]).fit()
    expected = start
    for weights in record.steps:
        expected = {k: 0.8 * expected[k] + 0.2 * weights[k] for k in expected}
    for name, value in expected.items():
        torch.testing.assert_close(model.state_dict()[name], value)  # validation, checkpoint and test see it
    assert not torch.allclose(model[0].weight, record.steps[-1]["0.weight"])


def test_a_run_with_an_ema_resumes_exactly():
    whole = mlp()
    trainer(whole, [WeightEMA(decay=0.8)], epochs=2).fit()
    first = mlp()
    half = trainer(first, [WeightEMA(decay=0.8)], epochs=1)
    half.fit()
    state = copy.deepcopy({"model": first.state_dict(), "optimizer": half.optimizer.state_dict(),
                           "trainer": {"epoch": 1, "global_step": half.global_step, "history": half.history},
                           "callbacks": {"WeightEMA": half.callbacks[0].state_dict()},
                           "rng": __import__("trainlab.engine.checkpoint", fromlist=["rng_state"]).rng_state()})  # fmt: skip
    resumed_model = mlp()
    resumed = trainer(resumed_model, [WeightEMA(decay=0.8)], epochs=2)
    restore(resumed, state)
    resumed.fit()
    for name, value in whole.state_dict().items():
        torch.testing.assert_close(resumed_model.state_dict()[name], value)


def test_lookahead_pulls_the_weights_back_to_the_slow_ones_and_every_epoch_ends_on_them():
    record, lookahead, ends = Record(), Lookahead(every=4, decay=0.5, ramp="none"), Record("on_epoch_end")
    model = mlp()
    slow = {k: v.clone() for k, v in model.state_dict().items() if v.is_floating_point()}
    run = trainer(model, [record, lookahead, ends], epochs=2)
    run.fit()
    assert run.global_step == 12 and len(record.steps) == 12  # 6 steps an epoch: updates at steps 4, 8 and 12
    slow_at = {}
    for step, weights in enumerate(record.steps, start=1):
        if step % 4 == 0:
            slow = {k: 0.5 * slow[k] + 0.5 * weights[k] for k in slow}
        slow_at[step] = slow
    for epoch, weights in enumerate(ends.steps, start=1):
        for name, value in slow_at[6 * epoch].items():  # epoch 1 ends between two updates, on the slow weights
            torch.testing.assert_close(weights[name], value)
    assert not torch.allclose(record.steps[5]["0.weight"], slow_at[6]["0.weight"])  # the fast weights had moved on


def test_lookahead_with_a_cubic_ramp_starts_as_plain_training():
    assert Lookahead(decay=0.77)._decay(type("T", (), {"epochs": 10, "train_loader": range(10), "global_step": 0})()) == 0
    ramp = Lookahead(decay=0.8)._decay(type("T", (), {"epochs": 2, "train_loader": range(5), "global_step": 5})())
    assert ramp == pytest.approx(0.8 * 0.5**3)


def test_batchnorm_settings_as_airbench_sets_them():
    model = airbench(in_channels=3, num_classes=10, image_size=(32, 32))
    assert configure_batchnorm(model, momentum=0.4, eps=1e-12, train_weight=False) == 6
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert all(m.momentum == 0.4 and m.eps == 1e-12 and not m.weight.requires_grad and m.bias.requires_grad for m in norms)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_patch_whitening_decorrelates_the_first_convs_outputs():
    torch.manual_seed(0)
    mixing = torch.tensor([[1.0, 0.8, 0.2], [0.0, 0.5, 0.9], [0.3, 0.0, 1.0]])
    images = torch.einsum("dc,nchw->ndhw", mixing, torch.randn(200, 3, 8, 8))  # correlated channels
    conv = nn.Conv2d(3, 24, 2)
    whiten_first_conv(nn.Sequential(conv), images, eps=0.0)
    out = conv(images)[:, :12].permute(0, 2, 3, 1).reshape(-1, 12).detach()  # the 12 directions (+ their negatives)
    out = out - out.mean(0)
    torch.testing.assert_close(out.T @ out / len(out), torch.eye(12), atol=1e-3, rtol=0)
    torch.testing.assert_close(conv.weight[12:], -conv.weight[:12])
    with pytest.raises(ValueError, match="needs an even number up to 2 x 12"):
        whiten_first_conv(nn.Sequential(nn.Conv2d(3, 26, 2)), images)


def test_test_time_flips_average_mirrored_images_in_evaluation_only():
    torch.manual_seed(0)
    plain = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.LazyLinear(5))
    plain(torch.randn(1, 3, 8, 8))
    x = torch.randn(3, 3, 8, 8)
    model = add_test_time_augmentation(copy.deepcopy(plain), "flip")
    assert list(model.state_dict()) == list(plain.state_dict())  # same weights, same names
    torch.testing.assert_close(model(x), plain(x))  # training: untouched
    model.eval()
    torch.testing.assert_close(model(x), (plain(x) + plain(x.flip(-1))) / 2)
    copied = copy.deepcopy(model)  # DDP's probe and EMA copy models: the copy keeps its own forward
    torch.testing.assert_close(copied(x), model(x))
    shifted = add_test_time_augmentation(copy.deepcopy(plain), "flip_translate").eval()
    assert not torch.allclose(shifted(x), model(x))


def test_alternating_flips_mirror_each_image_every_other_epoch():
    augment = build_augment(flip_alternate=True)
    images = torch.rand(16, 3, 4, 4)
    positions = torch.arange(16)
    flipped = [(augment(images, torch.Generator(), positions, epoch, seed=3) != images).flatten(1).any(1) for epoch in range(3)]
    assert torch.equal(flipped[0], ~flipped[1]) and torch.equal(flipped[0], flipped[2])
    assert 3 <= int(flipped[0].sum()) <= 13  # about half, not all or none
    with pytest.raises(ValueError, match="in place of random flips"):
        build_augment(flip_alternate=True, flip_p=0.5)


def test_one_cycle_rises_to_the_peak_then_falls():
    model = nn.Linear(2, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    schedule = SCHEDULERS.build("one_cycle", optimizer, epochs=1, steps_per_epoch=101, peak_at=0.2, start_ratio=0.2,
                                end_ratio=0.07, anneal="linear")  # fmt: skip
    rates = []
    for _ in range(101):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    assert rates[0] == pytest.approx(0.2) and max(rates) == pytest.approx(1.0) and rates.index(1.0) == 20
    assert rates[-1] == pytest.approx(0.07) and rates[60] == pytest.approx(1 - 0.93 * 40 / 80)


def test_normalisation_layers_can_learn_faster_with_the_same_decay_per_step():
    model = mlp()
    groups = parameter_groups(model, norm_lr_factor=64)
    optimizer = scale_learning_rates(torch.optim.SGD(groups, lr=0.01, weight_decay=0.1))
    norm_group = next(g for g in optimizer.param_groups if any(p is model[1].bias for p in g["params"]))
    other = next(g for g in optimizer.param_groups if any(p is model[0].weight for p in g["params"]))
    assert norm_group["lr"] == pytest.approx(0.64) and norm_group["weight_decay"] == pytest.approx(0.1 / 64)
    assert other["lr"] == pytest.approx(0.01) and other["weight_decay"] == pytest.approx(0.1)


def test_validation_every_n_epochs_and_after_the_last():
    run = trainer(mlp(), [], epochs=5, val=table(8, 4), validate_every=2)
    history = run.fit()
    validated = [row["epoch"] for row in history if row["val_acc"] == row["val_acc"]]  # not NaN
    assert validated == [2, 4, 5]
    history = trainer(mlp(), [], epochs=3, val=table(8, 4), validate_every=0).fit()
    assert [row["epoch"] for row in history if row["val_acc"] == row["val_acc"]] == [3]


def test_early_stopping_needs_validation_every_epoch():
    from trainlab.errors import ConfigError

    with pytest.raises(ConfigError, match="early_stopping watches every epoch's validation"):
        load_config(None, ["validate_every=0", "early_stopping.enabled=true"])


def test_the_fast_preset_loads():
    config, _ = load_config("cifar10/fast")
    assert config.model.name == "airbench" and config.lookahead.enabled and config.tta == "flip_translate"


def test_a_run_with_every_piece_tests_and_evaluates_alike(tmp_path):
    """EMA, Lookahead, batch-norm settings, patch whitening, test-time flips and alternating flips on the workshop CNN:
    the run folder's test accuracy is what `trainlab eval` finds again (the flips travel with the config)."""
    from trainlab.experiment import run_experiment
    from trainlab.tools.evaluate import evaluate_run

    config, source = load_config(None, [
        *TINY, "epochs=3", "model.fc_batchnorm=true", "patch_whitening=true", "ema.enabled=true", "ema.decay=0.9",
        "lookahead.enabled=true", "batchnorm.momentum=0.4", "batchnorm.train_weight=false", "tta=flip",
        "augment.flip_alternate=true", "augment.crop_padding=1", "validate_every=2", "optimizer.lr=0.01",
        "scheduler.name=one_cycle",
    ])  # fmt: skip
    folder = run_experiment(config, source)
    record = json.loads((folder.path / "run.json").read_text())
    assert record["status"] == "finished" and record["test_acc"] > 0.3  # 3x chance after 3 tiny epochs
    assert evaluate_run(folder.path, "last").accuracy == pytest.approx(record["test_acc"])


def test_airbench_convs_start_partly_as_the_identity_and_whitened_filters_stay_fixed():
    model = airbench(in_channels=3, num_classes=10, image_size=(32, 32))
    conv = model[2][0]  # the first group's first conv: 24 -> 64
    assert torch.equal(conv.weight[:24, :, 1, 1], torch.eye(24)) and conv.weight[:24].abs().sum() == 24
    whiten_first_conv(model, torch.randn(16, 3, 8, 8))
    assert not model[0].weight.requires_grad and model[0].bias.requires_grad


def test_the_whitening_bias_trains_for_its_epochs_then_stays():
    """airbench's whitening_bias_epochs: the first conv's bias moves in epoch 1 and not after; the rest still trains."""
    from trainlab.experiment import run_experiment

    config, source = load_config(None, [*TINY, "epochs=3", "patch_whitening=true", "whitening_bias_epochs=1"])
    epoch_ends = Record("on_epoch_end")
    run_experiment(config, source, extra_callbacks=[epoch_ends])
    first, second, third = epoch_ends.steps
    bias = next(name for name in first if name.endswith("bias"))  # the first conv's
    assert not torch.equal(first[bias], torch.zeros_like(first[bias]))  # whitening zeroes it; epoch 1 moved it
    assert torch.equal(first[bias], second[bias]) and torch.equal(second[bias], third[bias])
    assert any(not torch.equal(second[k], third[k]) for k in second if k != bias)


def test_whitening_bias_epochs_without_whitening_is_refused():
    from trainlab.errors import ConfigError

    with pytest.raises(ConfigError, match="whitening_bias_epochs=3 sets the bias of the whitening conv"):
        load_config(None, ["whitening_bias_epochs=3"])
