import pytest
import torch
from torch import nn

from trainlab.engine.callbacks import NonFiniteLossError, NonFiniteLossGuard
from trainlab.engine.device import resolve_placement
from trainlab.engine.loop import HOOKS, Callback, Trainer

FP32_CPU = resolve_placement("cpu", "fp32", False)


def tiny_model(classes=4):
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, classes))


def one_batch(n=16, classes=4):
    g = torch.Generator().manual_seed(1)
    return [(torch.randn(n, 1, 4, 4, generator=g), torch.randint(0, classes, (n,), generator=g))]


def test_overfits_one_batch_to_near_zero_loss():
    model = tiny_model()
    batch = one_batch()
    trainer = Trainer(model, torch.optim.Adam(model.parameters(), lr=1e-2), nn.CrossEntropyLoss(), batch, batch,
                      epochs=150, placement=FP32_CPU)
    history = trainer.fit()
    assert history[0]["train_loss"] > 1.0
    assert history[-1]["val_loss"] < 0.01
    assert history[-1]["val_acc"] == 1.0
    assert trainer.global_step == 150


def test_overfits_one_batch_in_bf16_autocast_too():
    model = tiny_model()
    batch = one_batch()
    trainer = Trainer(model, torch.optim.Adam(model.parameters(), lr=1e-2), nn.CrossEntropyLoss(), batch, batch,
                      epochs=150, placement=resolve_placement("cpu", "bf16", False))
    assert trainer.fit()[-1]["val_loss"] < 0.05


def test_accuracy_is_the_argmax_of_the_logits_not_a_threshold():
    class Fixed(nn.Module):  # logits all below 0.5, but the right class is always the largest
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.zeros(()))

        def forward(self, x):
            return torch.full((len(x), 3), -2.0).scatter(1, x.long().view(-1, 1), 0.1) + self.w

    inputs = torch.tensor([0, 1, 2, 2])
    trainer = Trainer(Fixed(), torch.optim.SGD(Fixed().parameters(), lr=0.0), nn.CrossEntropyLoss(), [], None,
                      epochs=1, placement=FP32_CPU)
    assert trainer.evaluate([(inputs, inputs)])["acc"] == 1.0


def test_callbacks_fire_in_the_documented_order():
    fired = []

    def record(hook):
        return lambda self, trainer: fired.append(hook)

    Recorder = type("Recorder", (Callback,), {hook: record(hook) for hook in HOOKS})

    model = tiny_model()
    batch = one_batch()
    Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), nn.CrossEntropyLoss(), batch, batch,
            epochs=1, placement=FP32_CPU, callbacks=[Recorder()]).fit()
    assert fired == ["on_fit_start", "on_train_epoch_start", "on_before_backward", "on_after_backward", "on_train_batch_end",
                     "on_train_epoch_end", "on_validation_end", "on_epoch_end", "on_fit_end", "on_teardown"]


def test_non_finite_loss_stops_the_run_naming_step_lr_and_gradient_norm():
    model = tiny_model()
    inputs, targets = one_batch()[0]
    inputs[3, 0, 0, 0] = float("nan")
    before = [p.detach().clone() for p in model.parameters()]
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.05), nn.CrossEntropyLoss(), [(inputs, targets)],
                      None, epochs=1, placement=FP32_CPU, callbacks=[NonFiniteLossGuard()])
    with pytest.raises(NonFiniteLossError, match=r"nan at step 1 \(epoch 1\); learning rate 0.05, gradient norm nan"):
        trainer.fit()
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters())), "the bad step must not be applied"


@pytest.mark.parametrize("seed", range(4))
def test_macro_f1_is_sklearns_over_all_classes(seed):
    from sklearn.metrics import f1_score

    from trainlab.engine.loop import macro_f1

    g = torch.Generator().manual_seed(seed)
    targets, predicted = torch.randint(0, 4, (50,), generator=g), torch.randint(0, 5, (50,), generator=g)
    expected = f1_score(targets, predicted, average="macro", labels=list(range(6)), zero_division=0)
    assert macro_f1(predicted, targets, 6) == pytest.approx(expected)


def test_a_stop_that_arrives_while_the_callbacks_close_their_files_still_stops_the_run():
    """A signal held in on_teardown (after the last step's check) is raised once the loop has closed everything."""
    import os
    import signal

    from trainlab.engine.callbacks import StopAtStepEnd
    from trainlab.utils import signals

    class SignalledWhileClosing(Callback):
        def on_teardown(self, trainer):
            os.kill(os.getpid(), signal.SIGTERM)

    model = tiny_model()
    batch = one_batch()
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), nn.CrossEntropyLoss(), batch, None, epochs=1,
                      placement=FP32_CPU, callbacks=[SignalledWhileClosing(), StopAtStepEnd()])  # fmt: skip
    previous = signal.signal(signal.SIGTERM, signals._handler)
    try:
        with pytest.raises(signals.Stopped):
            trainer.fit()
    finally:
        signal.signal(signal.SIGTERM, previous)
        signals._pending, signals._stopping = None, False
    assert trainer.global_step == 1
