"""Everything the loop does besides forward, backward and step."""

from __future__ import annotations

import csv
import importlib.util
import shutil
import signal
import time
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from trainlab.engine.checkpoint import save_checkpoint
from trainlab.engine.distributed import Distributed
from trainlab.engine.loop import Callback, Trainer
from trainlab.engine.metric_names import LR, METRIC_COLUMNS, TRAIN_LOSS, epoch_metrics, epoch_tag, metric_columns, step_tag
from trainlab.engine.monitor import Monitor
from trainlab.errors import TrainlabError
from trainlab.evaluation.hparams import run_metrics, write_hparams
from trainlab.utils import signals
from trainlab.utils.io import atomic_open, atomic_path


class NonFiniteLossError(TrainlabError):
    pass


def gradient_norm(model: torch.nn.Module) -> float:
    grads = [p.grad.detach().float().norm() for p in model.parameters() if p.grad is not None]
    return torch.stack(grads).norm().item() if grads else 0.0


class NonFiniteLossGuard(Callback):
    """Stops the run at the first NaN or infinite loss, before the optimizer step spoils the weights.

    On a GPU, asking whether the loss is finite waits for the GPU to finish the step, so it is asked every
    `gpu_every` steps and at the epoch's end (the flag of every step is kept on the GPU meanwhile)."""

    def __init__(self, gpu_every: int = 25):
        self.gpu_every = gpu_every
        self.nonfinite: torch.Tensor | None = None  # any non-finite loss since the last check (on the GPU)
        self.since = 0

    def on_after_backward(self, trainer: Trainer) -> None:
        loss = trainer.loss.detach()
        if loss.device.type == "cpu":
            if not torch.isfinite(loss):
                self._raise(trainer, f"became {loss.item()} at step {trainer.global_step + 1}")
            return
        flag = ~torch.isfinite(loss)
        self.nonfinite = flag if self.nonfinite is None else self.nonfinite | flag
        if (trainer.global_step + 1) % self.gpu_every == 0:
            self._check(trainer)

    def on_train_epoch_end(self, trainer: Trainer) -> None:
        if self.nonfinite is not None:
            self._check(trainer)

    def _check(self, trainer: Trainer) -> None:
        nonfinite, self.nonfinite = bool(self.nonfinite.item()), None
        if nonfinite:
            self._raise(trainer, f"was NaN or infinite at a step up to step {trainer.global_step + 1}")

    @staticmethod
    def _raise(trainer: Trainer, what: str) -> None:
        raise NonFiniteLossError(
            f"the loss {what} (epoch {trainer.epoch + 1}); "
            f"learning rate {trainer.optimizer.param_groups[0]['lr']:.3g}, gradient norm {gradient_norm(trainer.model):.3g}. "
            "Try a lower learning rate, gradient clipping, or fp32 precision."
        )


class LRSchedule(Callback):
    """Steps a learning-rate scheduler after every optimizer step."""

    def __init__(self, scheduler: torch.optim.lr_scheduler.LRScheduler):
        self.scheduler = scheduler

    def on_train_batch_end(self, trainer: Trainer) -> None:
        self.scheduler.step()

    def state_dict(self) -> dict[str, Any]:
        return self.scheduler.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.scheduler.load_state_dict(state)


class UnfreezeBackbone(Callback):
    """A pretrained backbone frozen until epoch `epoch` (1-based), then trained with the head. The state follows
    from the epoch alone, so a resumed run is frozen or not as the original was."""

    def __init__(self, epoch: int):
        self.epoch = epoch

    def on_train_epoch_start(self, trainer: Trainer) -> None:
        frozen = trainer.epoch + 1 < self.epoch  # trainer.epoch: epochs completed
        if trainer.model.backbone_frozen != frozen:
            trainer.model.freeze_backbone(frozen)


class TrainForEpochs(Callback):
    """`params` train for the first `epochs` epochs, then stay as they are (airbench's whitening bias: 3 epochs).
    The state follows from the epoch alone, so a resumed run does the same."""

    def __init__(self, params: list[torch.nn.Parameter], epochs: int):
        self.params, self.epochs = params, epochs

    def on_train_epoch_start(self, trainer: Trainer) -> None:
        training = trainer.epoch < self.epochs  # trainer.epoch: epochs completed
        for param in self.params:
            param.requires_grad_(training)
            if not training:
                param.grad = None  # the optimizer skips a parameter without a gradient: no momentum, no decay


class MetricsCSV(Callback):
    """metrics.csv: one row per epoch, rewritten whole (and atomically) after each epoch."""

    def __init__(self, path: Path):
        self.path = path

    def on_epoch_end(self, trainer: Trainer) -> None:
        write_metrics_csv(self.path, trainer.history, metric_columns(trainer.task.name))


def write_metrics_csv(path: Path, history: list[dict[str, float]], columns: list[str] = METRIC_COLUMNS) -> None:
    with atomic_open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for row in history:
            writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})


class Checkpointer(Callback):
    """checkpoints/last.pt after every epoch; checkpoints/best.pt when the monitored metric improves."""

    def __init__(self, folder: Path, config: dict[str, Any], monitor: Monitor | str = "val/acc",
                 model_file: dict[str, str] | None = None):  # fmt: skip
        self.folder, self.config, self.monitor = folder, config, Monitor.parse(monitor)
        self.model_file = model_file  # the user's model file's path and hash, kept in every checkpoint
        self.best: float | None = None
        self.best_epoch: int | None = None

    def on_epoch_end(self, trainer: Trainer) -> None:
        value = trainer.history[-1][self.monitor.column]
        is_best = self.monitor.improves(value, self.best)
        if is_best:
            self.best, self.best_epoch = value, trainer.epoch
        save_checkpoint(self.folder / "last.pt", trainer, self.config, self.model_file)  # records the updated best above
        if is_best:
            with atomic_path(self.folder / "best.pt") as tmp:
                shutil.copyfile(self.folder / "last.pt", tmp)  # the same state: copy it, don't serialise it again

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.best_epoch = state["best"], state["best_epoch"]


class TensorBoardLogger(Callback):
    """tb/: loss, accuracy and learning rate per step (`step/train_loss`), the epoch metrics per epoch
    (`epoch/val_acc`): metrics.csv's names, the x-axis in front; once the run is tested, its config and
    final metrics for the HParams dashboard (`add_hparams`)."""

    def __init__(self, log_dir: Path, every: int = 50):
        self.log_dir = log_dir
        self.writer = None
        self.every = every  # steps whose values are read from the device at once: no wait for the GPU at every step
        self.pending: list[tuple[int, torch.Tensor, float]] = []  # (step, [loss, score] on the device, learning rate)

    def on_fit_start(self, trainer: Trainer) -> None:
        from torch.utils.tensorboard import SummaryWriter  # imported here: it costs about a second

        # purge_step drops events logged after the checkpoint a resumed run starts from
        self.writer = SummaryWriter(str(self.log_dir), purge_step=trainer.global_step or None)
        self.score_tag = step_tag(f"train_{trainer.task.score}")

    def on_train_batch_end(self, trainer: Trainer) -> None:
        values = torch.stack([trainer.loss.detach().float(), trainer.batch_score.float() / len(trainer.targets)])
        self.pending.append((trainer.global_step, values, trainer.optimizer.param_groups[0]["lr"]))
        if len(self.pending) >= self.every:
            self._write_steps()

    def on_train_epoch_end(self, trainer: Trainer) -> None:
        self._write_steps()

    def _write_steps(self) -> None:
        if not self.pending or self.writer is None:
            return
        values = torch.stack([v for _, v, _ in self.pending]).tolist()  # one wait for the device
        for (step, _, lr), (loss, score) in zip(self.pending, values):
            self.writer.add_scalar(step_tag(TRAIN_LOSS), loss, step)
            self.writer.add_scalar(self.score_tag, score, step)
            self.writer.add_scalar(step_tag(LR), lr, step)
        self.pending = []

    def on_epoch_end(self, trainer: Trainer) -> None:
        row = trainer.history[-1]
        for name in epoch_metrics(trainer.task.name):
            if name in row:  # a row of a run resumed from an older trainlab may lack a newer metric
                self.writer.add_scalar(epoch_tag(name), row[name], trainer.epoch)
        self.writer.flush()

    def add_image(self, tag: str, image, step: int) -> None:  # image: (H, W, 3) uint8
        self.writer.add_image(tag, image, step, dataformats="HWC")
        self.writer.flush()

    def add_hparams(self, config: dict[str, Any], record: dict[str, Any], step: int) -> None:
        """The finished run as one session of the HParams dashboard: `config` (`ExperimentConfig.to_dict()`)
        and the final metrics of `record` (run.json), `hparams/test_acc`...: see evaluation/hparams.py."""
        write_hparams(self.writer, config, run_metrics(record), step)

    def on_fit_end(self, trainer: Trainer) -> None:
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self._write_steps()  # the steps of an epoch that an error or a stop cut short
            self.writer.close()


class StopAtStepEnd(Callback):
    """Ctrl-C, SIGTERM or SIGHUP during training stop the run at the end of the current step (or of
    the epoch's bookkeeping), not in the middle of a checkpoint or log write: see utils/signals.py.
    In data-parallel training every rank stops after the same step, when any of them got the signal
    (asked every step on CPUs, every `gpu_every` steps on GPUs, where asking waits for the GPU).
    Fire it last."""

    def __init__(self, dist: Distributed | None = None, gpu_every: int = 20):
        self.dist = dist
        self.every = 1 if dist is None or dist.device.type == "cpu" else gpu_every

    def on_fit_start(self, trainer: Trainer) -> None:
        signals.hold_stops()
        self.holding = True

    def on_train_batch_end(self, trainer: Trainer) -> None:
        if self.dist is None or trainer.global_step % self.every == 0:
            self._check()

    def on_epoch_end(self, trainer: Trainer) -> None:
        self._check()

    def _check(self) -> None:
        if self.dist is not None and self.dist.any(signals.stop_pending()) and not signals.stop_pending():
            raise signals.Stopped(signal.SIGTERM)  # another rank was told to stop
        signals.check()

    def on_teardown(self, trainer: Trainer) -> None:
        if getattr(self, "holding", False):
            signals.release_stops()
            self.holding = False


SHOWN = {"acc": "acc", "macro_f1": "macro F1", "f1": "F1", "auc": "AUC", "mae": "MAE", "rmse": "RMSE", "r2": "R²"}


class ProgressBar(Callback):
    """A live bar with loss, accuracy and samples/s in a terminal, and in Jupyter (a widget: needs ipywidgets);
    one line per epoch everywhere. `unit` names the samples in the rate ("img/s", "texts/s")."""

    def __init__(self, console: Console, live: bool = True, refresh_every: int = 10, unit: str = "img/s"):
        shows_bars = console.is_terminal or (console.is_jupyter and importlib.util.find_spec("ipywidgets") is not None)
        self.console, self.live, self.refresh_every = console, live and shows_bars, refresh_every
        self.unit = unit
        self.progress: Progress | None = None

    def on_train_epoch_start(self, trainer: Trainer) -> None:
        self.started, self.loss_sum, self.correct, self.seen = time.perf_counter(), 0.0, 0, 0
        if self.live:
            self.progress = Progress(
                TextColumn(f"epoch {trainer.epoch + 1}/{trainer.epochs}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[stats]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                console=self.console, transient=True,
            )  # fmt: skip
            self.task = self.progress.add_task("train", total=len(trainer.train_loader), stats="")
            self.progress.start()

    def on_train_batch_end(self, trainer: Trainer) -> None:
        if self.progress is None:
            return
        n = len(trainer.targets)
        self.seen += n
        if trainer.global_step % self.refresh_every == 0:
            rate = self.seen / (time.perf_counter() - self.started)
            stats = f"loss {trainer.loss.item():.4f}  {trainer.task.score} {trainer.batch_score.item() / n:.3f}  {rate:,.0f} {self.unit}"
            self.progress.update(self.task, stats=stats)
        self.progress.advance(self.task)

    def on_train_epoch_end(self, trainer: Trainer) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None

    def on_epoch_end(self, trainer: Trainer) -> None:
        r, task = trainer.history[-1], trainer.task
        val = " ".join(f"{SHOWN.get(m, m)} {r.get(f'val_{m}', float('nan')):.4f}" for m in task.metrics)
        val = f"val loss {r['val_loss']:.4f} {val}" if r["val_loss"] == r["val_loss"] else "not validated (validate_every)"
        self.console.print(
            f"epoch {r['epoch']:>3}/{trainer.epochs}  train loss {r['train_loss']:.4f} {SHOWN[task.score]} {r[f'train_{task.score}']:.4f}  "
            f"{val}  lr {r['lr']:.2e}  {r['seconds']:.1f} s  {r['samples_per_s']:,.0f} {self.unit}",
            highlight=False, soft_wrap=True,
        )

    def on_teardown(self, trainer: Trainer) -> None:
        self.on_train_epoch_end(trainer)
