import math
import warnings

import pytest
import torch

from trainlab.errors import ConfigNote
from trainlab.engine.optim import OPTIMIZERS, SCHEDULERS, warmup_steps_for


def learning_rates(name, steps, base=0.1, **args):
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=base)
    scheduler = SCHEDULERS.build(name, optimizer, **args)
    rates = []
    for _ in range(steps):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return rates


def test_constant_with_warmup_in_steps_ramps_linearly_then_holds():
    rates = learning_rates("constant", 8, epochs=2, steps_per_epoch=4, warmup_steps=4)
    assert rates == pytest.approx([0.025, 0.05, 0.075, 0.1, 0.1, 0.1, 0.1, 0.1])


def test_warmup_in_epochs_counts_steps_per_epoch():
    rates = learning_rates("constant", 6, epochs=3, steps_per_epoch=2, warmup_epochs=1)
    assert rates[:3] == pytest.approx([0.05, 0.1, 0.1])


def test_step_multiplies_by_gamma_at_each_milestone_epoch():
    rates = learning_rates("step", 12, epochs=4, steps_per_epoch=3, milestones=[1, 3], gamma=0.5)
    assert rates == pytest.approx([0.1] * 3 + [0.05] * 6 + [0.025] * 3)


def test_cosine_matches_its_formula():
    total = 20
    rates = learning_rates("cosine", total, epochs=4, steps_per_epoch=5, min_lr_ratio=0.1)
    for s in (0, 7, 13, 19):
        assert rates[s] == pytest.approx(0.1 * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * s / (total - 1)))))


def test_linear_decays_to_end_ratio_at_the_last_step():
    rates = learning_rates("linear", 11, epochs=1, steps_per_epoch=11, end_ratio=0.2)
    assert rates[0] == pytest.approx(0.1) and rates[-1] == pytest.approx(0.02) and rates[5] == pytest.approx(0.06)


def test_inverse_sqrt_falls_as_one_over_root_step_after_warmup():
    rates = learning_rates("inverse_sqrt", 16, epochs=4, steps_per_epoch=4, warmup_steps=4)
    assert rates[3] == pytest.approx(0.1)
    assert rates[15] == pytest.approx(0.1 * math.sqrt(4 / 15))


def test_per_epoch_interval_holds_the_rate_through_each_epoch():
    rates = learning_rates("linear", 8, epochs=2, steps_per_epoch=4, interval="epoch")
    assert rates[:4] == pytest.approx([0.1] * 4) and len(set(rates[4:])) == 1 and rates[4] < 0.1


def test_a_warmup_not_shorter_than_the_training_is_cut_to_a_tenth_of_it_with_a_note():
    with pytest.warns(ConfigNote) as notes:
        rates = learning_rates("constant", 20, epochs=2, steps_per_epoch=10, warmup_epochs=2)
    assert rates[:3] == pytest.approx([0.05, 0.1, 0.1])  # 2 warmup steps: a tenth of 20
    assert len(notes) == 1 and str(notes[0].message) == (
        "scheduler.warmup_epochs=2 (20 steps) is not shorter than the training (2 epochs = 20 steps): "
        "warming up over 2 steps (10% of it) instead; set scheduler.warmup_steps to choose"
    )


def test_a_warmup_in_steps_longer_than_the_training_is_cut_and_named():
    with pytest.warns(ConfigNote, match=r"^scheduler.warmup_steps=500 is not shorter than the training \(1 epoch = 40 steps\): warming up over 4 steps"):
        rates = learning_rates("cosine", 40, epochs=1, steps_per_epoch=40, warmup_steps=500)
    assert rates[:4] == pytest.approx([0.025, 0.05, 0.075, 0.1])


def test_a_training_too_short_for_any_warmup_runs_without_one():
    with pytest.warns(ConfigNote, match="no warmup instead"):
        rates = learning_rates("constant", 3, epochs=1, steps_per_epoch=3, warmup_epochs=1)
    assert rates == pytest.approx([0.1, 0.1, 0.1])


def test_a_warmup_shorter_than_the_training_is_kept_without_a_note():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert warmup_steps_for(epochs=2, steps_per_epoch=10, warmup_epochs=1.9, warmup_steps=0) == 19


def test_a_warmup_in_epochs_and_steps_at_once_is_refused_naming_both_keys():
    with pytest.raises(ValueError, match=r"scheduler.warmup_epochs=1 and scheduler.warmup_steps=2 both set the warmup; set one of them to 0"):
        learning_rates("cosine", 1, epochs=2, steps_per_epoch=5, warmup_epochs=1, warmup_steps=2)


@pytest.mark.parametrize("name", OPTIMIZERS.names())
def test_every_optimizer_takes_a_step(name):
    weight = torch.nn.Parameter(torch.ones(3))
    optimizer = OPTIMIZERS.build(name, [weight], **({"momentum": 0.9} if name == "sgd" else {}))
    (weight**2).sum().backward()
    optimizer.step()
    assert (weight < 1).all()


def test_adam_weight_decay_can_be_decoupled_like_adamw():
    def step(name, **args):
        torch.manual_seed(0)
        w = torch.nn.Parameter(torch.randn(4))
        opt = OPTIMIZERS.build(name, [w], lr=0.1, weight_decay=0.5, **args)
        (w.sum()).backward()
        opt.step()
        return w.detach()

    assert torch.allclose(step("adam", decoupled_weight_decay=True), step("adamw"))
    assert not torch.allclose(step("adam"), step("adamw"))


class Layered(torch.nn.Module):
    """embedding -> two layers with LayerNorm -> head, with layer_groups() from the input up."""

    def __init__(self):
        super().__init__()
        self.embedding = torch.nn.Embedding(10, 4)
        self.layers = torch.nn.ModuleList(torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.LayerNorm(4)) for _ in range(2))
        self.head = torch.nn.Linear(4, 3)

    def layer_groups(self):
        return [list(self.embedding.parameters()), *(list(layer.parameters()) for layer in self.layers)]


def test_parameter_groups_exempt_biases_and_norms_from_weight_decay_and_decay_rates_layer_by_layer():
    from trainlab.engine.optim import parameter_groups, scale_learning_rates

    model = Layered()
    model.layers[0].requires_grad_(False)  # frozen: left out of every group
    groups = parameter_groups(model, no_decay=["bias", "norm"], layer_decay=0.5)
    optimizer = scale_learning_rates(OPTIMIZERS.build("adamw", groups, lr=0.1, weight_decay=0.01))
    by_param = {id(p): group for group in optimizer.param_groups for p in group["params"]}
    assert id(model.layers[0][0].weight) not in by_param
    assert by_param[id(model.head.weight)]["lr"] == pytest.approx(0.1)  # the top (what layer_groups leaves out)
    assert by_param[id(model.head.weight)]["weight_decay"] == 0.01 and by_param[id(model.head.bias)]["weight_decay"] == 0.0
    assert by_param[id(model.layers[1][0].weight)]["lr"] == pytest.approx(0.05)
    assert by_param[id(model.layers[1][1].weight)]["weight_decay"] == 0.0  # LayerNorm's weight
    assert by_param[id(model.embedding.weight)]["lr"] == pytest.approx(0.1 * 0.5**3)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.1)  # metrics.csv logs the first group: the base rate
    with pytest.raises(ValueError, match="layer_decay needs a model made of layers"):
        parameter_groups(torch.nn.Linear(2, 2), layer_decay=0.8)


def test_a_schedule_scales_each_groups_own_rate():
    from trainlab.engine.optim import parameter_groups, scale_learning_rates

    model = Layered()
    optimizer = scale_learning_rates(OPTIMIZERS.build("sgd", parameter_groups(model, layer_decay=0.5), lr=0.1))
    scheduler = SCHEDULERS.build("linear", optimizer, epochs=1, steps_per_epoch=3)
    optimizer.step()
    scheduler.step()
    assert [round(g["lr"], 4) for g in optimizer.param_groups] == [0.05, 0.025, 0.0125, 0.0063]
