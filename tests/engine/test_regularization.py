import pytest
import torch
from torch import nn

from trainlab.engine.device import resolve_placement
from trainlab.engine.loop import Trainer
from trainlab.engine.losses import LOSSES
from trainlab.engine.regularization import EarlyStopping, GradientClipping, PenaltyTerms, l1_penalty, l2_penalty

FP32 = resolve_placement("cpu", "fp32", False)


def model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))


def test_l1_and_l2_terms_equal_their_formulas_on_weights_only():
    m = model()
    weights = [m[1].weight, m[3].weight]
    assert l1_penalty(m).item() == pytest.approx(sum(w.abs().sum().item() for w in weights))
    assert l2_penalty(m).item() == pytest.approx(sum((w**2).sum().item() for w in weights))


def test_penalty_terms_are_added_to_the_loss_before_backward():
    class Loss:
        def __init__(self):
            self.seen = []

    m = model()
    trainer = Trainer(m, torch.optim.SGD(m.parameters(), lr=0.0), nn.CrossEntropyLoss(), [], None, epochs=1, placement=FP32)
    trainer.loss = torch.tensor(1.0)
    PenaltyTerms(l1=0.1, l2=0.01).on_before_backward(trainer)
    assert trainer.loss.item() == pytest.approx(1 + 0.1 * l1_penalty(m).item() + 0.01 * l2_penalty(m).item())


def test_gradient_clipping_by_norm_and_by_value():
    m = model()
    trainer = Trainer(m, torch.optim.SGD(m.parameters(), lr=0.0), nn.CrossEntropyLoss(), [], None, epochs=1, placement=FP32)
    for p in m.parameters():
        p.grad = torch.full_like(p, 10.0)
    GradientClipping(max_value=0.5).on_after_backward(trainer)
    assert max(p.grad.abs().max().item() for p in m.parameters()) == pytest.approx(0.5)
    GradientClipping(max_norm=1.0).on_after_backward(trainer)
    total = torch.stack([p.grad.norm() for p in m.parameters()]).norm()
    assert total.item() == pytest.approx(1.0, rel=1e-4)


def test_early_stopping_stops_after_patience_and_restores_the_best_weights():
    m = model()
    trainer = Trainer(m, torch.optim.SGD(m.parameters(), lr=0.0), nn.CrossEntropyLoss(), [], None, epochs=10, placement=FP32)
    stopper = EarlyStopping(monitor="val/loss", patience=2, min_delta=0.01)
    best = None
    for epoch, val_loss in enumerate([1.0, 0.5, 0.495, 0.7, 0.6], start=1):
        with torch.no_grad():
            m[1].weight.fill_(epoch)
        trainer.epoch = epoch
        trainer.history.append({"val_loss": val_loss})
        stopper.on_epoch_end(trainer)
        if epoch == 2:
            best = m[1].weight.clone()
        if trainer.should_stop:
            break
    assert stopper.stopped_epoch == 4 and stopper.best_epoch == 2  # 0.495 is not better by min_delta
    assert torch.equal(m[1].weight, best)


REGRESSION_LOSSES = ("mae", "huber")  # of values, not classes (mse takes both)


@pytest.mark.parametrize("name", [name for name in LOSSES.names() if name not in REGRESSION_LOSSES])
def test_every_loss_is_lowest_for_confident_right_answers(name):
    loss = LOSSES.build(name)
    targets = torch.tensor([0, 2, 1])
    right = torch.nn.functional.one_hot(targets, 3).float() * 10 - 5
    assert loss(right, targets) < loss(-right, targets)
    assert loss(right, targets).dim() == 0


@pytest.mark.parametrize("name", [*REGRESSION_LOSSES, "mse"])
def test_every_regression_loss_is_zero_for_right_values_and_refuses_classes(name):
    loss = LOSSES.build(name, task="regression")
    targets = torch.tensor([[0.5], [-1.0], [2.0]])
    assert loss(targets, targets) == 0 and loss(targets + 1, targets) > 0
    if name != "mse":
        with pytest.raises(ValueError, match=f"{name} is a loss of regression tasks"):
            LOSSES.build(name, task="classification")
