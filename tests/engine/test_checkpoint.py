import pytest
import torch
from torch import nn

from trainlab.engine.checkpoint import load_checkpoint, restore, save_checkpoint
from trainlab.engine.device import resolve_placement
from trainlab.engine.loop import Trainer
from trainlab.errors import DataError, UsageError


def make_trainer():
    model = nn.Linear(3, 2)
    return Trainer(model, torch.optim.Adam(model.parameters()), nn.CrossEntropyLoss(), [], None, epochs=1,
                   placement=resolve_placement("cpu", "fp32", False))


def test_checkpoint_loads_with_weights_only_and_restores_rng(tmp_path):
    trainer = make_trainer()
    trainer.epoch, trainer.global_step, trainer.history = 3, 30, [{"epoch": 1, "train_loss": 0.5}]
    torch.manual_seed(5)
    save_checkpoint(tmp_path / "c.pt", trainer, {"seed": 5})
    expected = torch.rand(3)
    state = torch.load(tmp_path / "c.pt", weights_only=True)
    assert state["trainer"]["epoch"] == 3
    other = make_trainer()
    restore(other, load_checkpoint(tmp_path / "c.pt"))
    assert torch.equal(torch.rand(3), expected)
    assert other.global_step == 30 and other.history == trainer.history
    assert torch.equal(other.model.weight, trainer.model.weight)


def test_corrupt_checkpoint_is_a_clear_error_naming_the_file(tmp_path):
    save_checkpoint(tmp_path / "c.pt", make_trainer(), {})
    data = (tmp_path / "c.pt").read_bytes()
    (tmp_path / "c.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"c\.pt: not a readable checkpoint"):
        load_checkpoint(tmp_path / "c.pt")


def test_foreign_file_is_not_taken_for_a_checkpoint(tmp_path):
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(DataError, match="not a trainlab checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    with pytest.raises(UsageError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "missing.pt")
