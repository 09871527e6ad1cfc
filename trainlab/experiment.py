"""The experiment runner: config -> data, model, optimizer -> trained run folder.

With the CLI, this is the only code that reads a whole config; everything it calls
takes plain arguments.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from rich.console import Console
from torch import nn

from trainlab.config import ConfigSource, ExperimentConfig
from trainlab.data import DATASETS
from trainlab.data.augment import build_augment
from trainlab.data.loader import DataBundle, prepare_data
from trainlab.data.text import TextData, TextDataset, describe, prepare_text_data
from trainlab.engine.callbacks import (
    Checkpointer,
    LRSchedule,
    MetricsCSV,
    NonFiniteLossGuard,
    ProgressBar,
    StopAtStepEnd,
    TensorBoardLogger,
)
from trainlab.engine.checkpoint import load_checkpoint, restore
from trainlab.engine.device import Placement, resolve_placement
from trainlab.engine.loop import Callback, Trainer
from trainlab.engine.seed import seed_everything
from trainlab.engine.threads import CPUThreads
from trainlab.engine.regularization import EarlyStopping, GradientClipping, PenaltyTerms
from trainlab.engine.losses import LOSSES
from trainlab.engine.optim import OPTIMIZERS, SCHEDULERS
from trainlab.errors import ConfigError, UsageError
from trainlab.evaluation.grid import sample_grid_figure
from trainlab.evaluation.metrics import CONFUSION_PNG, TestResults, write_test_results
from trainlab.evaluation.plots import curves_figure, save_figure
from trainlab.evaluation.report import write_html_report
from trainlab.models import MODELS, build_model
from trainlab.models.init import initialize
from trainlab.models.registry import reads_text
from trainlab.run_folder import Heartbeat, RunFolder, disk_error, environment
from trainlab.utils.signals import interruption, mark_reported
from trainlab.evaluation.model_summary import summarize
from trainlab.utils.io import write_json, write_text


@dataclass
class Experiment:
    config: ExperimentConfig
    placement: Placement
    data: DataBundle
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    loss_fn: nn.Module


def load_data(config: ExperimentConfig, placement: Placement | None = None) -> DataBundle | TextData:
    placement = placement or resolve_placement(config.device, config.precision, config.channels_last)
    dataset = DATASETS.build(config.data.name, **config.data.args)
    if isinstance(dataset, TextDataset):
        if build_augment(**config.augment) is not None:
            raise ConfigError(f"augment.* transforms images; dataset '{config.data.name}' is text")
        return prepare_text_data(
            dataset, batch_size=config.data.batch_size, eval_batch_size=config.data.eval_batch_size,
            val_size=config.data.val_size, split_seed=config.seed if config.data.split_seed is None else config.data.split_seed,
            seed=config.seed, device=placement.device,
        )  # fmt: skip
    return prepare_data(
        dataset, batch_size=config.data.batch_size, eval_batch_size=config.data.eval_batch_size,
        val_size=config.data.val_size, split_seed=config.seed if config.data.split_seed is None else config.data.split_seed,
        seed=config.seed, device=placement.device, channels_last=placement.channels_last,
        augment=build_augment(**config.augment),
    )  # fmt: skip


def build_experiment(config: ExperimentConfig) -> Experiment:
    placement = resolve_placement(config.device, config.precision, config.channels_last)
    data = load_data(config, placement)
    seed_everything(config.seed)  # the initial weights depend on the seed alone, not on the data code
    model = build_network(config, data, placement)
    with _as_config_error("optimizer", config.optimizer.name):
        optimizer = OPTIMIZERS.build(config.optimizer.name, model.parameters(), **config.optimizer.args)
    with _as_config_error("scheduler", config.scheduler.name):
        scheduler = SCHEDULERS.build(
            config.scheduler.name, optimizer, epochs=config.epochs, steps_per_epoch=len(data.train), **config.scheduler.args
        )
    loss_fn = LOSSES.build(config.loss.name, **config.loss.args)
    return Experiment(config, placement, data, model, optimizer, scheduler, loss_fn)


def build_network(config: ExperimentConfig, data: DataBundle | TextData, placement: Placement) -> nn.Module:
    """The config's model for its data, initialised (from the global generators) and placed on the device."""
    if isinstance(data, TextData):
        model = build_text_model(config, data)
    else:
        model = build_configured_model(config, data.image_shape, len(data.classes))
    memory_format = torch.channels_last if placement.channels_last else torch.preserve_format
    return model.to(placement.device, memory_format=memory_format)


def build_configured_model(config: ExperimentConfig, image_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    """The config's model for images of `image_shape` (C, H, W), initialised as the config says."""
    channels, height, width = image_shape
    _check_model_reads(config, "images")
    with _as_config_error("model", config.model.name):
        model = build_model(
            config.model.name, in_channels=channels, num_classes=num_classes, image_size=(height, width), **config.model.args
        )
    return initialize(model, config.init)


def build_text_model(config: ExperimentConfig, data: TextData) -> nn.Module:
    """The config's text model, given the inputs its builder names (vocabulary, num_classes, corpus), initialised."""
    _check_model_reads(config, "text")
    with _as_config_error("model", config.model.name):
        inputs = {name: data.model_inputs[name] for name in MODELS.injected(config.model.name)}
        model = MODELS.build(config.model.name, **inputs, **config.model.args)
    return initialize(model, config.init)


def _check_model_reads(config: ExperimentConfig, kind: str) -> None:
    """A text model on images, or an image model on text, is a config mistake: name the models that fit."""
    def reads(name: str) -> str:
        return "text" if reads_text(name) else "images"

    if reads(config.model.name) != kind:
        fitting = ", ".join(name for name in MODELS.names() if reads(name) == kind)
        raise ConfigError(
            f"model '{config.model.name}' reads {reads(config.model.name)}, but dataset '{config.data.name}' "
            f"gives {kind}; models for {kind}: {fitting}"
        )


@contextlib.contextmanager
def _as_config_error(section: str, name: str) -> Iterator[None]:
    """A builder's ValueError is a mistake in its config section: exit 2, naming the section."""
    try:
        yield
    except ValueError as e:
        raise ConfigError(f"{section} '{name}': {e}") from None


def build_callbacks(
    config: ExperimentConfig, experiment: Experiment, folder: RunFolder, console: Console, threads: CPUThreads | None = None,
) -> list[Callback]:
    """The callbacks of a run, in firing order."""
    reg, stop = config.regularization, config.early_stopping
    callbacks: list[Callback] = [threads or CPUThreads(config.threads), NonFiniteLossGuard()]
    if reg.l1 or reg.l2:
        callbacks.insert(0, PenaltyTerms(reg.l1, reg.l2))
    if reg.clip_grad_norm or reg.clip_grad_value:
        callbacks.append(GradientClipping(reg.clip_grad_norm, reg.clip_grad_value))
    callbacks.append(LRSchedule(experiment.scheduler))
    callbacks.append(MetricsCSV(folder.path / "metrics.csv"))
    if stop.enabled:
        callbacks.append(EarlyStopping(stop.monitor, stop.patience, stop.min_delta, stop.restore_best_weights))
    callbacks += [
        Checkpointer(folder.checkpoints, config.to_dict(), config.monitor),
        Heartbeat(folder),
        TensorBoardLogger(folder.path / "tb"),
        ProgressBar(console, live=config.progress, unit="texts/s" if isinstance(experiment.data, TextData) else "img/s"),
        StopAtStepEnd(),
    ]
    return callbacks


def run_experiment(
    config: ExperimentConfig, source: ConfigSource, *, console: Console | None = None, resume: Path | None = None,
    init_from: Path | None = None, extra_callbacks: Sequence[Callback] = (),
) -> RunFolder:
    """Train, test and report; returns the run folder. `resume` continues an existing run folder;
    `init_from` starts a new one from another run's checkpoint (weights, optimizer, schedule, epoch, RNG);
    `extra_callbacks` fire after the run's own."""
    console = console or Console()
    threads = CPUThreads(config.threads)  # measures the machine's load from here on
    seed_everything(config.seed)
    if resume is not None:
        folder = RunFolder.open(resume)
        finished = UsageError(f"{folder.path} has already finished; `trainlab eval {folder.path}` tests it again")
        if folder.read_run().get("status") == "finished":
            raise finished
        folder.claim()  # refused while another process trains this run
        state = load_checkpoint(folder.checkpoints / "last.pt")
        if state["trainer"]["epoch"] >= config.epochs:
            raise finished
    else:
        state = load_checkpoint(init_from) if init_from is not None else None
    experiment = build_experiment(config)
    if resume is None:
        folder = RunFolder.create(Path(config.output_dir), config.name or source.run_name)
        try:
            folder.claim()
            folder.write_config(config.to_yaml())
        except OSError as e:
            raise disk_error(folder, e) from None
    try:
        return _train_in_folder(config, source, experiment, folder, state, console, threads, resume, init_from, extra_callbacks)
    except OSError as e:  # a full disk, a folder made read-only or removed under the run: one message, no traceback
        _record_failure(folder, e)
        raise disk_error(folder, e) from None
    finally:
        threads.restore()


def _record_failure(folder: RunFolder, error: BaseException, **fields) -> None:
    try:
        folder.update_run(status="failed", error=str(error) or type(error).__name__, **fields)
    except OSError:
        pass  # the disk is full or gone: the run is recognised as dead by its process (trainlab compare)


def _train_in_folder(
    config: ExperimentConfig, source: ConfigSource, experiment: Experiment, folder: RunFolder, state: dict | None,
    console: Console, threads: CPUThreads, resume: Path | None, init_from: Path | None, extra_callbacks: Sequence[Callback],
) -> RunFolder:
    env = environment(config.seed, experiment.placement)
    write_json(folder.path / "env.json", env)
    data = experiment.data
    text = isinstance(data, TextData)
    if not text:
        write_sample_grid(data, folder.path / "samples.png")
    summary = summarize(experiment.model, data.example() if text else data.image_shape, name=config.model.name)
    write_text(folder.path / "summary.txt", summary.text())
    console.print(
        f"{folder.path}  {config.model.name} on {data.source}: {data.sizes['train']:,} train / "
        f"{data.sizes['val']:,} val / {data.sizes['test']:,} test  ({env['device']}, {env['precision']}"
        f"{', channels-last' if env['channels_last'] else ''})",
        highlight=False, soft_wrap=True,
    )
    if text:
        for line in write_text_data(data, experiment.model, folder.path):
            console.print(line, highlight=False, soft_wrap=True, markup=False)

    callbacks = [*build_callbacks(config, experiment, folder, console, threads), *extra_callbacks]
    tensorboard = next(cb for cb in callbacks if isinstance(cb, TensorBoardLogger))
    checkpointer = next(cb for cb in callbacks if isinstance(cb, Checkpointer))
    stopper = next((cb for cb in callbacks if isinstance(cb, EarlyStopping)), None)
    trainer = Trainer(
        experiment.model, experiment.optimizer, experiment.loss_fn, data.train, data.val,
        epochs=config.epochs, placement=experiment.placement, callbacks=callbacks,
    )  # fmt: skip
    if state is not None:
        restore(trainer, state)
        start = "resuming" if resume is not None else f"starting from {init_from}"
        console.print(f"{start} after epoch {trainer.epoch} of {config.epochs}", highlight=False, soft_wrap=True)
    started = time.perf_counter()
    seconds_before = folder.read_run().get("train_seconds", 0.0) if state else 0.0
    folder.update_run(
        status="running", name=folder.path.name, config_source=source.label, data_source=data.source,
        data_sizes=data.sizes, data_shape=None if text else list(data.image_shape), num_classes=len(data.classes),
        started=env["started"], epochs=config.epochs, **({"resumed_at_epoch": trainer.epoch} if resume else {}),
        **({"init_from": str(init_from), "started_at_epoch": trainer.epoch} if init_from else {}),
    )  # fmt: skip
    try:
        trainer.fit()
        seconds = time.perf_counter() - started
        tested_epoch = trainer.epoch
        if config.test_checkpoint == "best" and (folder.checkpoints / "best.pt").is_file():
            trainer.model.load_state_dict(load_checkpoint(folder.checkpoints / "best.pt")["model"])
            tested_epoch = checkpointer.best_epoch
        results = evaluate_test_set(trainer, data, folder)
        with Image.open(folder.path / CONFUSION_PNG) as picture:  # drawn once, for the file and for TensorBoard
            tensorboard.add_image("test/confusion_matrix", np.asarray(picture.convert("RGB")), trainer.global_step)
        report = results.report_dict()
        folder.update_run(
            status="finished", train_seconds=round(seconds_before + seconds, 2),
            epochs_completed=trainer.epoch, best_epoch=checkpointer.best_epoch, best_val=checkpointer.best,
            monitor=config.monitor, tested_checkpoint=config.test_checkpoint, tested_epoch=tested_epoch, test_acc=results.accuracy,
            test_macro_f1=report["macro avg"]["f1-score"], final_train_loss=trainer.history[-1]["train_loss"],
            final_val_acc=trainer.history[-1]["val_acc"], early_stopped_at=stopper.stopped_epoch if stopper else None,
            threads=threads.summary(),
        )  # fmt: skip
        console.print(
            f"test accuracy {results.accuracy:.4f}, macro F1 {report['macro avg']['f1-score']:.4f} "
            f"({config.test_checkpoint} checkpoint, epoch {tested_epoch})",
            highlight=False, soft_wrap=True,
        )
    except KeyboardInterrupt as e:  # Ctrl-C, SIGTERM, SIGHUP
        folder.update_run(status="interrupted", epochs_completed=trainer.epoch, threads=threads.summary())
        console.print(f"{interruption(e)} after epoch {trainer.epoch}; continue with: trainlab run --resume {folder.path}",
                      highlight=False, soft_wrap=True, markup=False)  # fmt: skip
        mark_reported(e)
        raise
    except BaseException as e:
        _record_failure(folder, e, epochs_completed=trainer.epoch)
        raise
    finally:
        _write_closing_files(folder, tensorboard, trainer.history)
    console.print(f"report: {folder.path / 'report.html'}", highlight=False, soft_wrap=True)
    return folder


def _write_closing_files(folder: RunFolder, tensorboard: TensorBoardLogger, history: list[dict]) -> None:
    """Curves and report, also after an error; on a full disk the error that stopped the run is the one to report."""
    try:
        tensorboard.close()
        if history:
            save_figure(curves_figure(history), folder.path / "curves.png")
        write_html_report(folder.path)
    except OSError:
        if folder.read_run().get("status") in ("finished", "running"):
            raise


def write_text_data(data: TextData, model: nn.Module, folder: Path) -> list[str]:
    """data.json (class counts, unknown-token shares, text lengths, coverage of pretrained vectors) and
    vocab.txt; returns the lines to print."""
    coverage = getattr(model, "vectors_coverage", None)
    record = {"source": data.source, "classes": data.classes, **data.stats, "vectors": coverage and coverage.to_dict()}
    write_json(folder / "data.json", record)
    data.vocabulary.save(folder / "vocab.txt")
    return describe(data) + ([f"vectors: {coverage}"] if coverage else [])


def write_sample_grid(data: DataBundle, path: Path, count: int = 64) -> None:
    """A picture of the first training batch as the model sees it (augmented), with class names."""
    images, labels = data.train.preview(count)
    save_figure(sample_grid_figure(images.cpu(), labels.tolist(), data.classes), path)


def evaluate_test_set(trainer: Trainer, data: DataBundle, folder: RunFolder) -> TestResults:
    """Evaluate the model's current weights on the test set and write the test files."""
    logits, targets, _ = trainer.predict(data.test)
    order = getattr(data.test, "order", None)  # texts come sorted by length: put them back in the file's order
    if order is not None:
        back = order.argsort().to(logits.device)  # (N,): the loader position of each text of the file
        logits, targets = logits[back], targets[back]
    probabilities = logits.softmax(1)
    confidence, predicted = probabilities.max(1)
    results = TestResults(targets.cpu().numpy(), predicted.cpu().numpy(), confidence.cpu().numpy(), data.classes)
    write_test_results(folder.path, results)
    return results
