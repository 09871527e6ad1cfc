"""What every callback can count on: the hooks declared on `Callback`, and its own state in checkpoints."""

import pytest
import torch
from torch import nn

from trainlab.engine import loop
from trainlab.engine.callbacks import Checkpointer
from trainlab.engine.checkpoint import FORMAT, load_checkpoint, restore, rng_state, save_checkpoint, state_keys
from trainlab.engine.device import resolve_placement
from trainlab.engine.loop import HOOKS, Callback, Trainer
from trainlab.engine.regularization import EarlyStopping

FP32_CPU = resolve_placement("cpu", "fp32", False)


def test_the_hooks_are_those_the_loop_documents_in_firing_order():
    documented = [line.split()[0] for line in loop.__doc__.splitlines() if line.strip().startswith("on_")]
    assert list(HOOKS) == documented


def test_every_hook_is_a_no_op_on_the_base_class():
    model = nn.Linear(2, 2)
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), nn.CrossEntropyLoss(), [], None, epochs=1,
                      placement=FP32_CPU)  # fmt: skip
    for hook in HOOKS:
        assert getattr(Callback(), hook)(trainer) is None


def test_a_misspelt_hook_is_refused_naming_the_class_and_the_closest_hook():
    with pytest.raises(TypeError, match=r"Saver\.on_epoch_ends is not a callback hook \(did you mean 'on_epoch_end'\?\)"):

        class Saver(Callback):
            def on_epoch_ends(self, trainer):
                pass


def test_helpers_that_are_not_hooks_are_allowed():
    class Logger(Callback):
        once = True  # an attribute, and methods whose names do not start with on_

        def write(self):
            pass

    assert Logger().once


def test_instances_of_one_class_get_their_own_checkpoint_keys():
    callbacks = [EarlyStopping(), Checkpointer(None, {}), EarlyStopping(), EarlyStopping()]
    assert state_keys(callbacks) == ["EarlyStopping", "Checkpointer", "EarlyStopping#2", "EarlyStopping#3"]


def two_epochs(callbacks, epochs=2):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 4))
    g = torch.Generator().manual_seed(1)
    data = [(torch.randn(32, 1, 4, 4, generator=g), torch.randint(0, 4, (32,), generator=g))]
    return Trainer(model, torch.optim.SGD(model.parameters(), lr=0.5), nn.CrossEntropyLoss(), data, data, epochs=epochs,
                   placement=FP32_CPU, callbacks=callbacks)  # fmt: skip


def test_two_callbacks_of_one_class_keep_their_own_state_through_a_resume(tmp_path):
    by_loss, by_acc = EarlyStopping("val/loss", patience=10), EarlyStopping("val/acc", patience=10)
    trainer = two_epochs([by_loss, by_acc, Checkpointer(tmp_path, {})])
    trainer.fit()
    assert by_loss.best != by_acc.best

    resumed_by_loss, resumed_by_acc = EarlyStopping("val/loss", patience=10), EarlyStopping("val/acc", patience=10)
    resumed = two_epochs([resumed_by_loss, resumed_by_acc, Checkpointer(tmp_path, {})], epochs=3)
    restore(resumed, load_checkpoint(tmp_path / "last.pt"))
    assert (resumed_by_loss.best, resumed_by_loss.best_epoch) == (by_loss.best, by_loss.best_epoch)
    assert (resumed_by_acc.best, resumed_by_acc.best_epoch) == (by_acc.best, by_acc.best_epoch)
    resumed.fit()
    assert resumed.epoch == 3 and resumed_by_loss.monitor.name == "val/loss"


def test_a_checkpoint_keyed_by_class_name_alone_still_restores(tmp_path):
    stopper = EarlyStopping("val/loss")
    trainer = two_epochs([stopper])
    trainer.fit()
    old = {  # as trainlab-checkpoint/1 was written before instances were numbered
        "format": FORMAT, "config": {}, "model": trainer.model.state_dict(), "optimizer": trainer.optimizer.state_dict(),
        "trainer": {"epoch": trainer.epoch, "global_step": trainer.global_step, "history": trainer.history},
        "callbacks": {type(cb).__name__: cb.state_dict() for cb in trainer.callbacks}, "rng": rng_state(),
    }  # fmt: skip
    torch.save(old, tmp_path / "old.pt")
    first, second = EarlyStopping("val/loss"), EarlyStopping("val/loss")
    restore(two_epochs([first, second]), load_checkpoint(tmp_path / "old.pt"))
    assert (first.best, first.best_epoch, first.waited) == (stopper.best, stopper.best_epoch, stopper.waited)
    assert second.best is None, "a state the old checkpoint did not have stays fresh"


def test_checkpoints_store_each_instance_under_its_key(tmp_path):
    trainer = two_epochs([EarlyStopping("val/loss"), EarlyStopping("val/acc")], epochs=1)
    trainer.fit()
    save_checkpoint(tmp_path / "c.pt", trainer, {})
    assert set(load_checkpoint(tmp_path / "c.pt")["callbacks"]) == {"EarlyStopping", "EarlyStopping#2"}
