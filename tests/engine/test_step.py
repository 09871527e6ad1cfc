import copy
import importlib
import inspect
import pkgutil

import pytest
import torch
from torch import nn

import trainlab.tools.doctor
from trainlab.engine import loop
from trainlab.engine.device import resolve_placement
from trainlab.engine.loop import Callback, Trainer
from trainlab.engine.step import training_step

FP32_CPU = resolve_placement("cpu", "fp32", False)


def tiny_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))


def batches(count=3, n=16):
    g = torch.Generator().manual_seed(1)
    return [(torch.randn(n, 1, 4, 4, generator=g), torch.randint(0, 4, (n,), generator=g)) for _ in range(count)]


def reference_steps(model, optimizer, data):
    """The step as written out by hand: forward and loss, zero_grad, backward, step."""
    losses = []
    for inputs, targets in data:
        loss = nn.functional.cross_entropy(model(inputs), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def test_losses_and_weights_match_a_hand_written_step_bit_for_bit():
    model, data = tiny_model(), batches()
    reference = copy.deepcopy(model)
    optimizer, reference_optimizer = (torch.optim.Adam(m.parameters(), lr=1e-2) for m in (model, reference))
    losses = [training_step(model, optimizer, nn.CrossEntropyLoss(), x, y, FP32_CPU).loss.item() for x, y in data]
    assert losses == reference_steps(reference, reference_optimizer, data)
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), reference.parameters()))


def test_the_trainer_takes_the_same_step():
    class StepLosses(Callback):
        def __init__(self):
            self.losses = []

        def on_train_batch_end(self, trainer):
            self.losses.append(trainer.loss.item())

    model, data = tiny_model(), batches()
    alone = copy.deepcopy(model)
    recorder = StepLosses()
    Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), nn.CrossEntropyLoss(), data, None, epochs=1,
            placement=FP32_CPU, callbacks=[recorder]).fit()
    optimizer = torch.optim.SGD(alone.parameters(), lr=0.1)
    losses = [training_step(alone, optimizer, nn.CrossEntropyLoss(), x, y, FP32_CPU).loss.item() for x, y in data]
    assert recorder.losses == losses
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), alone.parameters()))


def test_before_backward_replaces_the_loss_that_is_backpropagated():
    model = tiny_model()
    inputs, targets = batches(1)[0]
    result = training_step(model, torch.optim.SGD(model.parameters(), lr=0.0), nn.CrossEntropyLoss(), inputs, targets,
                           FP32_CPU, before_backward=lambda logits, loss: loss * 0)  # fmt: skip
    assert result.loss.item() == 0 and result.logits.shape == (16, 4)
    assert all(not p.grad.any() for p in model.parameters())


def test_after_backward_sees_the_gradients_and_can_skip_the_step():
    model = tiny_model()
    before = [p.detach().clone() for p in model.parameters()]
    seen = []

    def look(loss):
        seen.append(all(p.grad is not None for p in model.parameters()))
        return False

    result = training_step(model, torch.optim.SGD(model.parameters(), lr=1.0), nn.CrossEntropyLoss(), *batches(1)[0],
                           FP32_CPU, after_backward=look)  # fmt: skip
    assert seen == [True] and not result.stepped
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters())), "a skipped step leaves the weights"


def _doctor_modules():
    package = trainlab.tools.doctor
    return [importlib.import_module(f"{package.__name__}.{m.name}") for m in pkgutil.iter_modules(package.__path__)]


@pytest.mark.parametrize("module", [loop, *_doctor_modules()], ids=lambda m: m.__name__)
def test_neither_the_loop_nor_the_doctor_writes_out_a_backward_or_an_optimizer_step(module):
    source = inspect.getsource(module)
    assert ".backward(" not in source and "optimizer.step(" not in source
    if hasattr(module, "training_step"):
        assert module.training_step is training_step


def test_every_training_check_takes_the_trainers_step():
    from trainlab.tools.doctor import checks, health, lr_finder, overfit, seeds

    assert not hasattr(checks, "train_step")
    assert all(m.training_step is loop.training_step for m in (health, lr_finder, overfit, seeds))
