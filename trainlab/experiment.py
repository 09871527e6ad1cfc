"""The experiment runner: config -> data, model, optimizer -> trained run folder.

With the CLI, this is the only code that reads a whole config; everything it calls
takes plain arguments.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from rich.console import Console
from torch import nn

from trainlab.config import ConfigSource, ExperimentConfig
from trainlab.build import as_config_error, build_loss, build_model, build_optimizer, load_data, resolve_task
from trainlab.data import PreparedData
from trainlab.data.features import FeatureLoader, cached_features
from trainlab.data.loader import ArrayLoader
from trainlab.engine.callbacks import (
    Checkpointer,
    LRSchedule,
    MetricsCSV,
    NonFiniteLossGuard,
    ProgressBar,
    StopAtStepEnd,
    TensorBoardLogger,
    TrainForEpochs,
    UnfreezeBackbone,
)
from trainlab.engine.averaging import Lookahead, WeightEMA
from trainlab.engine.checkpoint import load_checkpoint, restore
from trainlab.engine.device import Placement, resolve_placement
from trainlab.engine.distributed import (
    Distributed, PeerFailure, check_batch, init_distributed, is_peer_failure, leave_distributed, started_by_torchrun,
)
from trainlab.engine.loop import Callback, Trainer
from trainlab.engine.seed import seed_everything
from trainlab.engine.threads import CPUThreads
from trainlab.engine.regularization import EarlyStopping, GradientClipping, PenaltyTerms
from trainlab.engine.tasks import Task
from trainlab.engine.optim import SCHEDULERS
from trainlab.errors import TrainlabError, UsageError
from trainlab.evaluation.metrics import CONFUSION_PNG
from trainlab.evaluation.task_results import PRECISION_RECALL_PNG, RESIDUALS_PNG, ROC_PNG, SCATTER_PNG
from trainlab.evaluation.plots import curves_figure, save_figure
from trainlab.evaluation.report import write_html_report
from trainlab.inference import Predictor
from trainlab.models.compiled import CompiledBackbone
from trainlab.models.tuning import first_conv, whiten_first_conv
from trainlab.models.transfer import TransferModel
from trainlab.models.user import RUN_COPY, check_model_file, is_file_spec, model_file, model_file_record
from trainlab.run_folder import Heartbeat, RunFolder, disk_error, environment
from trainlab.utils.ranks import record_failure
from trainlab.utils.signals import Interrupted, interruption, mark_reported
from trainlab.evaluation.model_summary import summarize
from trainlab.utils.io import write_bytes, write_json, write_text


# The test split's pictures, also shown in TensorBoard: a classification's confusion matrix, a binary task's curves,
# a regression's scatter and residuals.
TEST_PICTURES = (("confusion_matrix", CONFUSION_PNG), ("roc_curve", ROC_PNG), ("precision_recall", PRECISION_RECALL_PNG),
                 ("predicted_vs_true", SCATTER_PNG), ("residuals", RESIDUALS_PNG))  # fmt: skip


@dataclass
class Experiment:
    config: ExperimentConfig
    placement: Placement
    data: PreparedData
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    loss_fn: nn.Module
    task: Task


def build_experiment(config: ExperimentConfig) -> Experiment:
    placement = resolve_placement(config.device, config.precision, config.channels_last)
    data = load_data(config, placement)
    task = resolve_task(config, data.preprocess)  # auto -> classification or regression; loss and monitor to match
    seed_everything(config.seed)  # the initial weights depend on the seed alone, not on the data code
    model = build_model(config, data.model_inputs(), placement, example=data.example())
    for key, value in getattr(model, "found_arguments", {}).items():  # into config.yaml: the run folder alone rebuilds it
        setattr(config.model, key, value)
    if config.patch_whitening:
        whiten_from_training_images(model, data)
    optimizer = build_optimizer(config, model)
    with as_config_error("scheduler", config.scheduler.name):
        scheduler = SCHEDULERS.build(
            config.scheduler.name, optimizer, epochs=config.epochs, steps_per_epoch=len(data.train), **config.scheduler.args
        )
    return Experiment(config, placement, data, model, optimizer, scheduler, build_loss(config, task), task)


def whiten_from_training_images(model: nn.Module, data: PreparedData, count: int = 5000) -> None:
    """patch_whitening: the first conv set from (up to) `count` training images, normalised as the model gets them."""
    if not isinstance(data.train, ArrayLoader):
        raise UsageError("patch_whitening: true needs an image dataset (its first conv whitens image patches)")
    images = data.train.images[:count].permute(0, 3, 1, 2).float().div_(255)
    with as_config_error("patch_whitening", str(True)):
        whiten_first_conv(model, data.preprocess.normalise(images))


def build_callbacks(
    config: ExperimentConfig, experiment: Experiment, folder: RunFolder | None, console: Console | None,
    threads: CPUThreads | None = None, dist: Distributed | None = None,
) -> list[Callback]:
    """The callbacks of a run, in firing order. Without a folder (a data-parallel rank other than 0), only those
    that change the training: the writers (metrics, checkpoints, TensorBoard, progress) are rank 0's."""
    reg, stop = config.regularization, config.early_stopping
    callbacks: list[Callback] = [threads or CPUThreads(config.threads), NonFiniteLossGuard()]
    if reg.l1 or reg.l2:
        callbacks.insert(0, PenaltyTerms(reg.l1, reg.l2))
    if reg.clip_grad_norm or reg.clip_grad_value:
        callbacks.append(GradientClipping(reg.clip_grad_norm, reg.clip_grad_value))
    if config.transfer.unfreeze_at_epoch is not None:
        callbacks.append(UnfreezeBackbone(config.transfer.unfreeze_at_epoch))
    if config.whitening_bias_epochs is not None and (bias := first_conv(experiment.model).bias) is not None:
        callbacks.append(TrainForEpochs([bias], config.whitening_bias_epochs))
    callbacks.append(LRSchedule(experiment.scheduler))
    if config.lookahead.enabled:  # before the average: the last epoch ends on the slow weights, then averages
        callbacks.append(Lookahead(config.lookahead.every, config.lookahead.decay, config.lookahead.ramp))
    if config.ema.enabled:
        callbacks.append(WeightEMA(config.ema.decay, config.ema.every))
    if folder is not None:
        callbacks.append(MetricsCSV(folder.path / "metrics.csv"))
    if stop.enabled:
        callbacks.append(EarlyStopping(stop.monitor, stop.patience, stop.min_delta, stop.restore_best_weights))
    if folder is not None:
        callbacks += [
            Checkpointer(folder.checkpoints, config.to_dict(), config.monitor, model_file=_model_file(config)),
            Heartbeat(folder),
            TensorBoardLogger(folder.path / "tb"),
            ProgressBar(console, live=config.progress, unit=f"{experiment.data.unit}/s"),
        ]
    callbacks.append(StopAtStepEnd(dist))
    return callbacks


def run_experiment(
    config: ExperimentConfig, source: ConfigSource, *, console: Console | None = None, resume: Path | None = None,
    init_from: Path | None = None, extra_callbacks: Sequence[Callback] = (),
) -> RunFolder:
    """Train, test and report; returns the run folder. `resume` continues an existing run folder;
    `init_from` starts a new one from another run's checkpoint (weights, optimizer, schedule, epoch, RNG);
    `extra_callbacks` fire after the run's own."""
    console = console or Console()
    dist = _join_distributed(config)
    finished = False
    try:
        folder = _run(config, source, console, resume, init_from, extra_callbacks, dist)
        finished = True
        return folder
    except BaseException as e:
        if dist is not None:
            peer_failed = is_peer_failure(e)
            if not peer_failed and not isinstance(e, (PeerFailure, Interrupted, KeyboardInterrupt)):
                record_failure(e.exit_code if isinstance(e, TrainlabError) else 1)  # before the others can exit
            dist.tell_failure()  # a failure before the first step: the other ranks stop with this one
            if peer_failed:
                raise PeerFailure(dist.rank) from None
        raise
    finally:
        if dist is not None:
            leave_distributed(together=finished or dist.stopped_together)


def _join_distributed(config: ExperimentConfig) -> Distributed | None:
    """This process's rank when torchrun started it (`trainlab run --nproc N` does too), else None."""
    if not started_by_torchrun():
        return None
    dist = init_distributed(resolve_placement(config.device, config.precision, config.channels_last).device)
    check_batch(config.data.batch_size, dist.world_size)
    return dist


def _run(
    config: ExperimentConfig, source: ConfigSource, console: Console, resume: Path | None, init_from: Path | None,
    extra_callbacks: Sequence[Callback], dist: Distributed | None,
) -> RunFolder | None:
    threads = CPUThreads(config.threads)  # measures the machine's load from here on
    seed_everything(config.seed)
    world_size = dist.world_size if dist is not None else 1
    if resume is not None:
        folder = RunFolder.open(resume)
        finished = UsageError(f"{folder.path} has already finished; `trainlab eval {folder.path}` tests it again")
        if folder.read_run(missing_ok=True).get("status") == "finished":
            raise finished
        if world_size == 1 or dist.is_main:
            folder.claim()  # refused while another process trains this run
        if not (folder.checkpoints / "last.pt").is_file():
            raise UsageError(f"{folder.path} has no checkpoint to continue from: it stopped before its first epoch was "
                             f"saved; start it again with: trainlab run {folder.path / 'config.yaml'}")  # fmt: skip
        state = load_checkpoint(folder.checkpoints / "last.pt")
        if state["trainer"]["epoch"] >= config.epochs:
            raise finished
        trained_by = state["trainer"].get("world_size", 1)
        if trained_by != world_size:
            raise UsageError(
                f"{folder.path} was trained by {trained_by} process{'es' * (trained_by > 1)} and resumes with the same "
                f"number, not {world_size}: trainlab run --resume {folder.path}"
                + ("" if trained_by == 1 else f" --nproc {trained_by}")
            )  # fmt: skip
    else:
        state = load_checkpoint(init_from) if init_from is not None else None
    if state is not None:  # its weights fit the model file as it was then
        check_model_file(state["config"]["model"]["name"], state.get("model_file"), resume or init_from.parent.parent)
    experiment = build_experiment(config)
    if dist is not None and not dist.is_main:
        _train_as_worker(config, experiment, state, threads, dist)
        return None
    if resume is None:
        folder = RunFolder.create(Path(config.output_dir), config.name or source.run_name)
        try:
            folder.claim()
            folder.write_config(config.to_yaml())
        except OSError as e:
            raise disk_error(folder, e) from None
    try:
        return _train_in_folder(config, source, experiment, folder, state, console, threads, resume, init_from,
                                extra_callbacks, dist)  # fmt: skip
    except OSError as e:  # a full disk, a folder made read-only or removed under the run: one message, no traceback
        _record_failure(folder, e)
        raise disk_error(folder, e) from None
    finally:
        threads.restore()


def _train_as_worker(
    config: ExperimentConfig, experiment: Experiment, state: dict | None, threads: CPUThreads, dist: Distributed,
) -> None:
    """A data-parallel rank other than 0: the same steps as rank 0 on its part of each batch, writing nothing."""
    callbacks = build_callbacks(config, experiment, None, None, threads, dist)
    trainer = Trainer(
        experiment.model, experiment.optimizer, experiment.loss_fn, experiment.data.train, experiment.data.val,
        epochs=config.epochs, placement=experiment.placement, callbacks=callbacks, task=experiment.task, dist=dist,
        compile=config.compile, validate_every=config.validate_every,
    )  # fmt: skip
    if state is not None:
        restore(trainer, state)
    _seed_rank(config, trainer, dist)
    try:
        features = _frozen_features(config, experiment, Console(quiet=True))
        if features is not None:
            trainer.train_loader, trainer.val_loader = features
        experiment.model.inputs_are_features = features is not None
        dist.start()
        trainer.fit()
    finally:
        experiment.model.inputs_are_features = False
        threads.restore()


def _seed_rank(config: ExperimentConfig, trainer: Trainer, dist: Distributed | None) -> None:
    """Every rank its own random numbers (dropout) from here on, after the same initial weights: rank 0 keeps the
    generators one process would have, the others' follow from the seed, their rank and the step."""
    if dist is not None and dist.rank:
        seed_everything((config.seed + dist.rank * 2**32 + trainer.global_step * 7_919) % 2**63)


def _record_failure(folder: RunFolder, error: BaseException, **fields) -> None:
    try:
        folder.update_run(status="failed", error=str(error) or type(error).__name__, **fields)
    except OSError:
        pass  # the disk is full or gone: the run is recognised as dead by its process (trainlab compare)


def _train_in_folder(
    config: ExperimentConfig, source: ConfigSource, experiment: Experiment, folder: RunFolder, state: dict | None,
    console: Console, threads: CPUThreads, resume: Path | None, init_from: Path | None, extra_callbacks: Sequence[Callback],
    dist: Distributed | None = None,
) -> RunFolder:
    env = environment(config.seed, experiment.placement)
    world_size = dist.world_size if dist is not None else 1
    if world_size > 1:
        env["world_size"] = world_size
    write_json(folder.path / "env.json", env)
    data = experiment.data
    data.preprocess.save(folder.path)  # what `trainlab predict` needs to turn a raw input into the model's input
    if is_file_spec(config.model.name):  # the code the weights fit, for the record
        write_bytes(folder.path / RUN_COPY, model_file(config.model.name).path.read_bytes())
    summary = summarize(experiment.model, data.example(), name=config.model.name)
    write_text(folder.path / "summary.txt", summary.text())
    console.print(
        f"{folder.path}  {config.model.name} on {data.source}: {data.sizes['train']:,} train / "
        f"{data.sizes['val']:,} val / {data.sizes['test']:,} test  ({env['device']}, {env['precision']}"
        f"{', channels-last' if env['channels_last'] else ''}{_processes(dist)})",
        highlight=False, soft_wrap=True,
    )
    for line in data.write_records(folder.path, experiment.model):
        console.print(line, highlight=False, soft_wrap=True, markup=False)

    callbacks = [*build_callbacks(config, experiment, folder, console, threads, dist), *extra_callbacks]
    tensorboard = next(cb for cb in callbacks if isinstance(cb, TensorBoardLogger))
    checkpointer = next(cb for cb in callbacks if isinstance(cb, Checkpointer))
    stopper = next((cb for cb in callbacks if isinstance(cb, EarlyStopping)), None)
    trainer = Trainer(
        experiment.model, experiment.optimizer, experiment.loss_fn, data.train, data.val,
        epochs=config.epochs, placement=experiment.placement, callbacks=callbacks, task=experiment.task, dist=dist,
        compile=config.compile, validate_every=config.validate_every,
    )  # fmt: skip
    if state is not None:
        restore(trainer, state)
        start = "resuming" if resume is not None else f"starting from {init_from}"
        console.print(f"{start} after epoch {trainer.epoch} of {config.epochs}", highlight=False, soft_wrap=True)
    started = time.perf_counter()
    seconds_before = folder.read_run(missing_ok=True).get("train_seconds", 0.0) if state else 0.0
    folder.update_run(
        status="running", name=folder.path.name, config_source=source.label, data_source=data.source,
        data_sizes=data.sizes, num_classes=len(data.classes),
        started=env["started"], epochs=config.epochs, world_size=world_size, **({"resumed_at_epoch": trainer.epoch} if resume else {}),
        **({"init_from": str(init_from), "started_at_epoch": trainer.epoch} if init_from else {}),
    )  # fmt: skip
    try:
        features = _frozen_features(config, experiment, console)  # minutes for a big backbone: interruptible
        if features is not None:
            trainer.train_loader, trainer.val_loader = features
        experiment.model.inputs_are_features = features is not None
        if dist is not None:
            dist.start()  # every rank ready, or every rank stops
        try:
            trainer.fit()
        finally:
            experiment.model.inputs_are_features = False  # the model is tested, saved and loaded on images
        seconds = time.perf_counter() - started
        tested_epoch = trainer.epoch
        if config.test_checkpoint == "best" and (folder.checkpoints / "best.pt").is_file():
            trainer.model.load_state_dict(load_checkpoint(folder.checkpoints / "best.pt")["model"])
            tested_epoch = checkpointer.best_epoch
        predictor = Predictor(trainer.model, data.preprocess, experiment.placement, task=experiment.task)
        results = predictor.test(data.test, folder.path, val=data.val)
        for name, picture_file in TEST_PICTURES:  # drawn once, for the files and for TensorBoard
            if (folder.path / picture_file).is_file():
                with Image.open(folder.path / picture_file) as picture:
                    tensorboard.add_image(f"test/{name}", np.asarray(picture.convert("RGB")), trainer.global_step)
        last = trainer.history[-1]
        folder.update_run(
            status="finished", train_seconds=round(seconds_before + seconds, 2),
            epochs_completed=trainer.epoch, best_epoch=checkpointer.best_epoch, best_val=checkpointer.best,
            monitor=config.monitor.name, task=experiment.task.name, tested_checkpoint=config.test_checkpoint,
            tested_epoch=tested_epoch, **results.run_fields(), final_train_loss=last["train_loss"],
            **{f"final_val_{m}": last[f"val_{m}"] for m in experiment.task.metrics[:1]},
            early_stopped_at=stopper.stopped_epoch if stopper else None, threads=threads.summary(),
        )  # fmt: skip
        tensorboard.add_hparams(config.to_dict(), folder.read_run(), trainer.global_step)  # the HParams dashboard
        console.print(f"{results.summary()} ({config.test_checkpoint} checkpoint, epoch {tested_epoch})",
                      highlight=False, soft_wrap=True)  # fmt: skip
    except KeyboardInterrupt as e:  # Ctrl-C, SIGTERM, SIGHUP
        folder.update_run(status="interrupted", epochs_completed=trainer.epoch, threads=threads.summary())
        console.print(f"{interruption(e)} after epoch {trainer.epoch}; continue with: trainlab run --resume {folder.path}",
                      highlight=False, soft_wrap=True, markup=False)  # fmt: skip
        mark_reported(e)
        raise
    except BaseException as e:
        peer_failed = dist is not None and is_peer_failure(e)
        _record_failure(folder, PeerFailure(dist.rank) if peer_failed else e, epochs_completed=trainer.epoch)
        raise
    finally:
        if isinstance(experiment.model, TransferModel):
            experiment.model.compiled_backbone = None  # its graph holds the weights as constants
        _write_closing_files(folder, tensorboard, trainer.history)
    console.print(f"report: {folder.path / 'report.html'}", highlight=False, soft_wrap=True)
    return folder


def _processes(dist: Distributed | None) -> str:
    if dist is None:
        return ""
    return f", {dist.world_size} processes ({'nccl' if dist.device.type == 'cuda' else 'gloo'})"


def _model_file(config: ExperimentConfig) -> dict[str, str] | None:
    return model_file_record(config.model.name) if is_file_spec(config.model.name) else None


def _frozen_features(config: ExperimentConfig, experiment: Experiment, console: Console) -> tuple[FeatureLoader, FeatureLoader] | None:
    """Training and validation loaders of a frozen backbone's features, computed once (or read from the cache),
    when the backbone stays frozen for the whole run and no augmentation changes the images; else None."""
    transfer, data, model = config.transfer, experiment.data, experiment.model
    if transfer.freeze != "backbone" or transfer.unfreeze_at_epoch is not None or not transfer.cache_features:
        return None
    if not isinstance(data.train, ArrayLoader):
        return None
    say = lambda line: console.print(line, highlight=False, soft_wrap=True, markup=False)  # noqa: E731
    if data.train.augment is not None:
        say("features of the frozen backbone are not cached: augmentation changes the images every epoch, "
            "so the backbone runs at every step")  # fmt: skip
        return None
    started = time.perf_counter()
    count = len(data.train.labels) + len(data.val.labels)
    if transfer.compile_backbone:  # for these features and for the test pass
        model.compiled_backbone = CompiledBackbone(model.extract, say)
    compiled = " (compiled first, about 30 s)" if transfer.compile_backbone else ""
    say(f"features of the frozen backbone: {count:,} training and validation images, once{compiled}")
    loaders, reused = [], []
    for split in (data.train, data.val):
        features, cached = cached_features(model, split, experiment.placement, say)
        loaders.append(FeatureLoader(features, split))
        reused.append(cached)
    how = "read from the cache" if all(reused) else "computed once by the frozen backbone"
    say(f"features of {count:,} training and validation images {how} in {time.perf_counter() - started:.1f} s; "
        f"the head trains on them ({tuple(loaders[0].features.shape[1:])} per image)")
    return loaders[0], loaders[1]


def _write_closing_files(folder: RunFolder, tensorboard: TensorBoardLogger, history: list[dict]) -> None:
    """Curves and report, also after an error; on a full disk the error that stopped the run is the one to report."""
    try:
        tensorboard.close()
        if history:
            save_figure(curves_figure(history), folder.path / "curves.png")
        write_html_report(folder.path)
    except OSError:
        if folder.read_run(missing_ok=True).get("status") in ("finished", "running"):
            raise
