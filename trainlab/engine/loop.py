"""The training loop. It fetches a batch, runs forward, loss, backward and step, and
calls hooks; everything else (schedules, logging, checkpoints, progress, guards) is a
callback in `callbacks.py`. Hooks, in firing order:

    on_fit_start
      on_train_epoch_start
        on_before_backward       (penalty terms added to the loss)
        on_after_backward        (before the optimizer step: guards, clipping)
        on_train_batch_end
      on_train_epoch_end
      on_validation_end
      on_epoch_end               (history row complete: logs, checkpoints, early stopping)
    on_fit_end
    on_teardown                  (always, also after an error or Ctrl-C)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import nn

from trainlab.engine.device import Placement


class Callback:
    """Base class: override the hooks you need; `state_dict` goes into checkpoints."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


class Trainer:
    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        train_loader: Iterable,
        val_loader: Iterable | None,
        *,
        epochs: int,
        placement: Placement,
        callbacks: Sequence[Callback] = (),
    ):
        self.model, self.optimizer, self.loss_fn = model, optimizer, loss_fn
        self.train_loader, self.val_loader = train_loader, val_loader
        self.epochs, self.placement, self.callbacks = epochs, placement, list(callbacks)
        self.epoch = 0  # epochs completed
        self.global_step = 0  # optimizer steps taken
        self.history: list[dict[str, float]] = []  # one row per completed epoch
        self.should_stop = False

    def fit(self) -> list[dict[str, float]]:
        try:
            self.fire("on_fit_start")
            self._fit()
        finally:
            self.fire("on_teardown")  # runs on errors and Ctrl-C too: close bars and files
        return self.history

    def _fit(self) -> None:
        while self.epoch < self.epochs and not self.should_stop:
            started = time.perf_counter()
            train = self.train_epoch()
            val = self.evaluate(self.val_loader) if self.val_loader is not None else {}
            self.fire("on_validation_end")
            self.epoch += 1
            self.history.append({
                "epoch": self.epoch, "train_loss": train["loss"], "train_acc": train["acc"],
                "val_loss": val.get("loss", float("nan")), "val_acc": val.get("acc", float("nan")),
                "lr": self.optimizer.param_groups[0]["lr"], "seconds": time.perf_counter() - started,
                "samples_per_s": train["samples_per_s"],
            })  # fmt: skip
            self.fire("on_epoch_end")
        self.fire("on_fit_end")

    def train_epoch(self) -> dict[str, float]:
        self.model.train()
        if hasattr(self.train_loader, "set_epoch"):
            self.train_loader.set_epoch(self.epoch)  # shuffling depends on the epoch only, so resuming replays it
        self.fire("on_train_epoch_start")
        loss_sum, correct, seen, started = torch.zeros((), device=self.placement.device), 0, 0, time.perf_counter()
        for self.inputs, self.targets in self.train_loader:
            with self.placement.autocast():
                self.logits = self.model(self.inputs)
                self.loss = self.loss_fn(self.logits, self.targets)
            self.fire("on_before_backward")  # callbacks may add terms to self.loss (L1, elastic net)
            self.optimizer.zero_grad(set_to_none=True)
            self.loss.backward()
            self.fire("on_after_backward")
            self.optimizer.step()
            self.global_step += 1
            self.batch_correct = (self.logits.detach().argmax(1) == self.targets).sum()  # argmax, never a 0.5 threshold
            loss_sum += self.loss.detach() * len(self.targets)
            correct += self.batch_correct
            seen += len(self.targets)
            self.fire("on_train_batch_end")
        seconds = time.perf_counter() - started
        self.fire("on_train_epoch_end")
        return {"loss": loss_sum.item() / seen, "acc": float(correct) / seen, "samples_per_s": seen / seconds}

    @torch.inference_mode()
    def predict(self, loader: Iterable) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Logits (float32) and targets of every batch, and the summed loss."""
        self.model.eval()
        logits, targets, loss_sum = [], [], torch.zeros((), device=self.placement.device)
        for inputs, batch_targets in loader:
            with self.placement.autocast():
                batch_logits = self.model(inputs).float()
            loss_sum += self.loss_fn(batch_logits, batch_targets) * len(batch_targets)
            logits.append(batch_logits)
            targets.append(batch_targets)
        return torch.cat(logits), torch.cat(targets), loss_sum

    def evaluate(self, loader: Iterable) -> dict[str, float]:
        logits, targets, loss_sum = self.predict(loader)
        return {"loss": loss_sum.item() / len(targets), "acc": (logits.argmax(1) == targets).sum().item() / len(targets)}

    def fire(self, hook: str) -> None:
        for callback in self.callbacks:
            method = getattr(callback, hook, None)
            if method is not None:
                method(self)
