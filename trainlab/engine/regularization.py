"""Regularisation around the loop: penalty terms, gradient clipping, early stopping."""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from trainlab.engine.loop import Callback, Trainer
from trainlab.engine.monitor import Monitor


def penalized_weights(model: nn.Module) -> list[torch.Tensor]:
    """Weights of the layers (tensors of 2+ dimensions); biases and norm scales are not penalised."""
    return [p for p in model.parameters() if p.requires_grad and p.dim() > 1]


def l1_penalty(model: nn.Module) -> torch.Tensor:
    return sum(w.abs().sum() for w in penalized_weights(model))


def l2_penalty(model: nn.Module) -> torch.Tensor:
    return sum(w.pow(2).sum() for w in penalized_weights(model))


class PenaltyTerms(Callback):
    """Adds l1 * sum|w| + l2 * sum w^2 to the loss: L1, explicit L2, or both (elastic net)."""

    def __init__(self, l1: float = 0.0, l2: float = 0.0):
        self.l1, self.l2 = l1, l2

    def on_before_backward(self, trainer: Trainer) -> None:
        if self.l1:
            trainer.loss = trainer.loss + self.l1 * l1_penalty(trainer.model)
        if self.l2:
            trainer.loss = trainer.loss + self.l2 * l2_penalty(trainer.model)


class GradientClipping(Callback):
    """Clips gradients before each optimizer step: their global norm, each value, or both."""

    def __init__(self, max_norm: float | None = None, max_value: float | None = None):
        self.max_norm, self.max_value = max_norm, max_value

    def on_after_backward(self, trainer: Trainer) -> None:
        if self.max_value is not None:
            nn.utils.clip_grad_value_(trainer.model.parameters(), self.max_value)
        if self.max_norm is not None:
            nn.utils.clip_grad_norm_(trainer.model.parameters(), self.max_norm)


class EarlyStopping(Callback):
    """Stops when `monitor` has not improved by `min_delta` for `patience` epochs; can restore the best weights."""

    def __init__(
        self, monitor: Monitor | str = "val/loss", patience: int = 5, min_delta: float = 0.0, restore_best_weights: bool = True
    ):
        self.monitor = Monitor.parse(monitor)
        self.patience, self.min_delta, self.restore = patience, min_delta, restore_best_weights
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.best_weights: dict[str, torch.Tensor] | None = None
        self.waited = 0
        self.stopped_epoch: int | None = None

    def on_epoch_end(self, trainer: Trainer) -> None:
        value = trainer.history[-1][self.monitor.column]
        if self.monitor.improves(value, self.best, self.min_delta):
            self.best, self.best_epoch, self.waited = value, trainer.epoch, 0
            if self.restore:
                self.best_weights = {k: v.detach().to("cpu", copy=True) for k, v in trainer.model.state_dict().items()}
            return
        self.waited += 1
        if self.waited >= self.patience:
            trainer.should_stop = True
            self.stopped_epoch = trainer.epoch
            if self.restore and self.best_weights is not None:
                trainer.model.load_state_dict(self.best_weights)

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch, "waited": self.waited,
                "best_weights": copy.copy(self.best_weights)}  # fmt: skip

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.best_epoch, self.waited = state["best"], state["best_epoch"], state["waited"]
        self.best_weights = state["best_weights"]
