"""Averages of the weights over training steps: an exponential moving average that is evaluated, checkpointed and
tested (`ema:`), and Lookahead's slow weights (`lookahead:`). Both act on the model's floating-point state
(parameters and batch-norm statistics) and keep their own copies in the checkpoint, so a resumed run continues
them exactly."""

from __future__ import annotations

from typing import Any

import torch

from trainlab.engine.loop import Callback, Trainer


def float_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The model's floating-point parameters and buffers (not a counter such as num_batches_tracked), by name."""
    return {k: v for k, v in model.state_dict(keep_vars=True).items() if v.is_floating_point()}


def _clone(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in state.items()}


class WeightEMA(Callback):
    """An exponential moving average of the weights, updated every `every` steps with weight `decay` on the average.

    From the end of each epoch's training to the start of the next, the model holds the average: validation, the
    checkpoint (its `model` weights), early stopping's best weights and the final test all see it; the training
    weights wait in this callback (and in its checkpoint state) and come back when training goes on."""

    def __init__(self, decay: float = 0.999, every: int = 1):
        self.decay, self.every = decay, every
        self.average: dict[str, torch.Tensor] | None = None
        self.training_weights: dict[str, torch.Tensor] | None = None  # set while the model holds the average

    def on_train_epoch_start(self, trainer: Trainer) -> None:
        state = float_state(trainer.model)
        if self.training_weights is not None:
            with torch.no_grad():
                for name, value in self.training_weights.items():
                    state[name].copy_(value)
            self.training_weights = None
        if self.average is None:
            self.average = _clone(state)

    def on_train_batch_end(self, trainer: Trainer) -> None:
        if trainer.global_step % self.every:
            return
        state = float_state(trainer.model)
        names = list(self.average)
        with torch.no_grad():
            torch._foreach_lerp_([self.average[n] for n in names], [state[n].detach() for n in names], 1 - self.decay)

    def on_train_epoch_end(self, trainer: Trainer) -> None:
        state = float_state(trainer.model)
        self.training_weights = _clone(state)
        with torch.no_grad():
            for name, value in self.average.items():
                state[name].copy_(value)

    def state_dict(self) -> dict[str, Any]:
        return {"average": self.average, "training_weights": self.training_weights}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.average, self.training_weights = state["average"], state["training_weights"]


class Lookahead(Callback):
    """Lookahead (Zhang et al. 2019) as airbench uses it: every `every` steps the slow weights take a step towards
    the model's, `slow = decay * slow + (1 - decay) * weights`, and the model goes back to them. With `ramp="cubic"`
    the decay grows from 0 as (step / total)**3. Every epoch ends on the slow weights: they are what validation,
    the checkpoints and the test see."""

    def __init__(self, every: int = 5, decay: float = 0.95**5, ramp: str = "cubic"):
        self.every, self.decay, self.ramp = every, decay, ramp
        self.slow: dict[str, torch.Tensor] | None = None

    def on_fit_start(self, trainer: Trainer) -> None:
        if self.slow is None:
            self.slow = _clone(float_state(trainer.model))

    def _decay(self, trainer: Trainer) -> float:
        if self.ramp == "none":
            return self.decay
        total = trainer.epochs * len(trainer.train_loader)
        return self.decay * min(1.0, trainer.global_step / total) ** 3

    def on_train_batch_end(self, trainer: Trainer) -> None:
        if trainer.global_step % self.every == 0:
            self._update(trainer, self._decay(trainer))

    def on_train_epoch_end(self, trainer: Trainer) -> None:
        self._update(trainer, 1.0)  # back to the slow weights, unchanged

    def _update(self, trainer: Trainer, decay: float) -> None:
        state = float_state(trainer.model)
        names = list(self.slow)
        slow, fast = [self.slow[n] for n in names], [state[n].detach() for n in names]
        with torch.no_grad():
            torch._foreach_lerp_(slow, fast, 1 - decay)
            torch._foreach_copy_(fast, slow)

    def state_dict(self) -> dict[str, Any]:
        return {"slow": self.slow}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.slow = state["slow"]
