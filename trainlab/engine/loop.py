"""The training loop. It fetches a batch, runs forward, loss, backward and step (`step.py`, the
doctor's checks take the same step), and calls hooks; everything else (schedules, logging,
checkpoints, progress, guards) is a callback in `callbacks.py`. Hooks, in firing order, each
declared on `Callback`:

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
from trainlab.engine.distributed import Distributed, ShardedLoader
from trainlab.engine.step import training_step
from trainlab.engine.tasks import Classification, Task, macro_f1  # noqa: F401  (macro_f1: imported from here too)
from trainlab.registry import did_you_mean
from trainlab.utils import signals


class Callback:
    """Base class: override the hooks you need; `state_dict` goes into checkpoints.

    Every hook is declared here and does nothing; a subclass method named `on_...` that is not one
    of them (a misspelt hook, which would never fire) is refused when the class is defined."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name, value in vars(cls).items():
            if name.startswith("on_") and callable(value) and name not in HOOKS:
                raise TypeError(f"{cls.__qualname__}.{name} is not a callback hook{did_you_mean(name, HOOKS)}, "
                                f"so it would never fire; hooks: {', '.join(HOOKS)}")  # fmt: skip

    def on_fit_start(self, trainer: Trainer) -> None:
        """Before the first epoch (of a resumed run too: `trainer.epoch` says where it starts)."""

    def on_train_epoch_start(self, trainer: Trainer) -> None:
        """Before the epoch's first batch; the model is in training mode."""

    def on_before_backward(self, trainer: Trainer) -> None:
        """After forward and loss: `trainer.logits` and `trainer.loss` are set, and `trainer.loss` may be replaced."""

    def on_after_backward(self, trainer: Trainer) -> None:
        """After backward, before the optimizer step: the gradients are ready to check or clip."""

    def on_train_batch_end(self, trainer: Trainer) -> None:
        """After the optimizer step; `trainer.global_step` counts it."""

    def on_train_epoch_end(self, trainer: Trainer) -> None:
        """After the epoch's last batch, before validation."""

    def on_validation_end(self, trainer: Trainer) -> None:
        """After validation (also when there is no validation loader)."""

    def on_epoch_end(self, trainer: Trainer) -> None:
        """The epoch's row is in `trainer.history`; setting `trainer.should_stop` ends the run after it."""

    def on_fit_end(self, trainer: Trainer) -> None:
        """After the last epoch, when the run ended normally."""

    def on_teardown(self, trainer: Trainer) -> None:
        """Always last, also after an error or Ctrl-C: close bars and files."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


HOOKS = tuple(name for name in vars(Callback) if name.startswith("on_"))  # in firing order


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
        task: Task | None = None,
        dist: Distributed | None = None,
        compile: bool = False,
        validate_every: int = 1,
    ):
        self.model, self.optimizer, self.loss_fn = model, optimizer, loss_fn  # the model itself, never a DDP wrapper
        self.dist = dist  # this process's rank in data-parallel training; None: one process
        self._ddp: tuple[tuple[bool, ...], nn.Module] | None = None
        self.compile = compile  # the training steps through torch.compile
        self.validate_every = validate_every  # 0: after the last epoch only
        self._compiled: tuple[nn.Module, nn.Module] | None = None
        self.task = task or Classification()  # scores the outputs: accuracy, macro F1, AUC, MAE, ...
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
        signals.check()  # a stop held while the callbacks closed their files stops the run here
        return self.history

    def _fit(self) -> None:
        while self.epoch < self.epochs and not self.should_stop:
            started = time.perf_counter()
            train = self.train_epoch()
            val = self.evaluate(self.val_loader) if self.val_loader is not None and self._validates() else {}
            self.fire("on_validation_end")
            self.epoch += 1
            score = self.task.score
            self.history.append({
                "epoch": self.epoch, "train_loss": train["loss"], f"train_{score}": train[score],
                "val_loss": val.get("loss", float("nan")), **{f"val_{m}": val.get(m, float("nan")) for m in self.task.metrics},
                "lr": self.optimizer.param_groups[0]["lr"], "seconds": time.perf_counter() - started,
                "samples_per_s": train["samples_per_s"],
            })  # fmt: skip
            self.fire("on_epoch_end")
        self.fire("on_fit_end")

    def _validates(self) -> bool:
        """Whether the epoch that just trained is validated: every `validate_every`-th, and the last."""
        last = self.epoch + 1 == self.epochs
        return last or (self.validate_every > 0 and (self.epoch + 1) % self.validate_every == 0)

    def train_epoch(self) -> dict[str, float]:
        self.model.train()
        if hasattr(self.train_loader, "set_epoch"):
            self.train_loader.set_epoch(self.epoch)  # shuffling depends on the epoch only, so resuming replays it
        self.fire("on_train_epoch_start")
        model, loader = self.model, self.train_loader
        if self.dist is not None:
            loader = ShardedLoader(loader, self.dist)  # this rank's part of every global batch
            model = self._ddp_model(loader)
        if self.compile:
            if self._compiled is None or self._compiled[0] is not model:
                self._compiled = (model, torch.compile(model))
            model = self._compiled[1]
        device = self.placement.device
        loss_sum, score_sum, seen = torch.zeros((), device=device), torch.zeros((), device=device), 0
        started = time.perf_counter()
        for self.inputs, self.targets in loader:
            self.logits, self.loss, _ = training_step(
                model, self.optimizer, self.loss_fn, self.inputs, self.targets, self.placement,
                before_backward=self._before_backward, after_backward=self._after_backward,
            )
            self.global_step += 1
            self.batch_score = self.task.batch_score(self.logits, self.targets)  # correct predictions, absolute errors
            loss_sum += self.loss.detach() * len(self.targets)
            score_sum += self.batch_score
            seen += len(self.targets)
            self.fire("on_train_batch_end")
        totals = torch.stack([loss_sum.double(), score_sum.double(), torch.tensor(float(seen), dtype=torch.float64, device=device)])
        if self.dist is not None:
            totals = self.dist.sum(totals)  # every rank's examples, each counted once
        loss_total, score_total, seen_total = totals.tolist()
        seconds = time.perf_counter() - started
        self.fire("on_train_epoch_end")
        return {"loss": loss_total / seen_total, self.task.score: score_total / seen_total, "samples_per_s": seen_total / seconds}

    def _ddp_model(self, loader: Iterable) -> nn.Module:
        """The model wrapped by DistributedDataParallel; wrapped again when the set of trained parameters changed
        (a backbone unfrozen), since DDP reduces the gradients of the parameters it saw when it was made."""
        trained = tuple(p.requires_grad for p in self.model.parameters())
        if self._ddp is None or self._ddp[0] != trained:
            example, _ = next(iter(loader))
            self._ddp = (trained, self.dist.wrap(self.model, example))
        return self._ddp[1]

    def _before_backward(self, logits: torch.Tensor, loss: torch.Tensor) -> torch.Tensor:
        self.logits, self.loss = logits, loss
        self.fire("on_before_backward")  # callbacks may add terms to self.loss (L1, elastic net)
        return self.loss

    def _after_backward(self, loss: torch.Tensor) -> bool:
        self.fire("on_after_backward")  # guards raise before a bad step; clipping edits the gradients
        return True

    @torch.inference_mode()
    def predict(self, loader: Iterable) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Logits (float32) and targets of every batch, and the summed loss. In data-parallel training each rank
        computes its part of every batch, and every rank gets all of them back, in the order one process gives."""
        self.model.eval()
        if self.dist is not None:
            self.dist.share_buffers(self.model)  # rank 0's batch-norm statistics, which its checkpoint holds
            loader = ShardedLoader(loader, self.dist, every_batch=True)
        logits, targets = [], []
        for inputs, batch_targets in loader:
            if len(batch_targets):
                with self.placement.autocast():
                    logits.append(self.model(inputs).float())
            else:  # a rank's empty part of a batch smaller than the number of ranks
                logits.append(torch.empty(0, device=self.placement.device))
            targets.append(batch_targets)
        if self.dist is not None:
            logits, targets = self.dist.gather_batches(logits, targets)
        logits, targets = torch.cat(logits), torch.cat(targets)
        return logits, targets, self.loss_fn(logits, targets) * len(targets)

    def evaluate(self, loader: Iterable) -> dict[str, float]:
        logits, targets, loss_sum = self.predict(loader)
        return {"loss": loss_sum.item() / len(targets), **self.task.evaluate(logits, targets)}

    def fire(self, hook: str) -> None:
        for callback in self.callbacks:
            getattr(callback, hook)(self)

