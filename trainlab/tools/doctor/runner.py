"""`trainlab doctor`: a config (or a run folder) -> plain objects -> the checks -> a report folder.

The only module of the doctor that reads a config. A config gets the checks before training
and the curve diagnosis of a short run made here (SHORT_RUN_EPOCHS epochs of at most
SHORT_RUN_BATCHES batches); a finished run folder gets the diagnosis of its own metrics.csv,
and the other checks, on its saved config, when --only names them.

The short run notes its first step's loss and the first step whose loss is NaN or infinite, and
stops after that epoch; a training error inside it (the run's NaN guard) becomes the curves
check's failure, as a failed run folder's does. A picture matplotlib cannot draw is named in its
check's evidence (`pictures_not_drawn`); the report is written all the same.
"""

from __future__ import annotations

import functools
import itertools
import math
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from torch import nn

from trainlab.config import ConfigSource, ExperimentConfig
from trainlab.engine.callbacks import LRSchedule
from trainlab.engine.device import Placement
from trainlab.engine.loop import Callback, Trainer
from trainlab.engine.losses import LOSSES
from trainlab.engine.tasks import Classification, Task
from trainlab.engine.optim import OPTIMIZERS, SCHEDULERS
from trainlab.errors import ConfigNote, TrainlabError, UsageError
from trainlab.evaluation.plots import save_figure
from trainlab.run_folder import RunFolder
from trainlab.run_records import CONFIG_YAML, METRICS_CSV, read_metrics, read_run_record
from trainlab.tools.doctor import report
from trainlab.tools.doctor.checks import (
    CHECK_NAMES, Batch, Check, LossFn, OptimizerFactory, base_lr, cycle_batches, fresh_copy, seeded, select_checks,
    take_batches,
)  # fmt: skip
from trainlab.tools.doctor.curves import check_curves
from trainlab.tools.doctor.data_checks import DATA_BATCHES, GRID_IMAGES, check_data
from trainlab.tools.doctor.health import check_health
from trainlab.tools.doctor.initial_loss import INITIAL_BATCHES, check_initial_loss
from trainlab.tools.doctor.lr_finder import check_lr
from trainlab.tools.doctor.overfit import check_overfit_batch, check_overfit_example
from trainlab.tools.doctor.seeds import SEED_STEPS, Trial, check_seeds

SHORT_RUN_EPOCHS = 5  # enough epochs for a trend, a rise or a plateau to show
SHORT_RUN_BATCHES = 40  # training batches per epoch: 5,120 CIFAR images at batch 128, ~2 s an epoch in bf16 here
SHORT_RUN_VAL_BATCHES = 4  # validation batches per epoch, the same ones each epoch: 2,048 images at 512


@dataclass
class Subject:
    """What the checks work on, built from a config."""

    model: nn.Module  # initial weights of the config's seed; checks train copies
    build_trial: Callable[[int], Trial]  # a short run built from scratch under a seed
    make_optimizer: OptimizerFactory
    make_scheduler: Callable[[torch.optim.Optimizer, int, int], Any]  # (optimizer, epochs, steps per epoch)
    loss_fn: LossFn
    train: Any  # the ArrayLoader of training batches (set_epoch, preview, labels)
    val: Iterable[Batch] | None
    classes: list[str]  # [] for a regression
    placement: Placement
    seed: int
    task: Task = field(default_factory=Classification)
    outputs: int = 0  # the model's output width: one per class, one logit for a binary task, one per regression target

    def batches(self, count: int) -> list[Batch]:
        return take_batches(self.train, count)

    @property
    def lr(self) -> float:
        return base_lr(self.make_optimizer([nn.Parameter(torch.zeros(1))]))

    @property
    def chance(self) -> float:
        """The loss of an even guess on balanced classes (ln C for cross-entropy); a binary task's even logit (ln 2),
        a regression's guess of the training mean (the standardised targets' variance for mse), on training batches."""
        if self.task.name == "classification":
            return chance_loss(self.loss_fn, len(self.classes))
        with torch.no_grad():
            targets = torch.cat([t for _, t in self.batches(INITIAL_BATCHES)])
            return self.loss_fn(torch.zeros(len(targets), self.outputs, device=targets.device), targets).item()


@dataclass
class DoctorResult:
    folder: Path
    checks: list[Check]

    @property
    def failed(self) -> bool:
        return any(check.failed for check in self.checks)


# Each check, from the subject. Run in CHECK_NAMES order, each under the run's seed.
RUNNERS: dict[str, Callable[[Subject], Check]] = {
    "initial_loss": lambda s: check_initial_loss(
        s.model, s.loss_fn, s.batches(INITIAL_BATCHES), s.outputs, s.placement,
        class_counts=torch.bincount(s.train.labels.cpu(), minlength=len(s.classes)) if s.classes else None, task=s.task.name,
    ),
    "data": lambda s: check_data(
        s.batches(min(DATA_BATCHES, len(s.train))), s.train.labels, s.classes,
        s.train.preview(GRID_IMAGES) if hasattr(s.train, "preview") else None,
    ),
    "seeds": lambda s: check_seeds(s.build_trial, s.seed, s.placement, s.train),
    "overfit_example": lambda s: check_overfit_example(s.model, s.make_optimizer, s.loss_fn, s.batches(1)[0], s.placement),
    "overfit_batch": lambda s: check_overfit_batch(s.model, s.make_optimizer, s.loss_fn, s.batches(1)[0], s.placement),
    "lr": lambda s: check_lr(
        s.model, s.make_optimizer(s.model.parameters()), s.loss_fn, cycle_batches(s.train), s.placement, s.seed
    ),
    "health": lambda s: check_health(s.model, s.make_optimizer, s.loss_fn, cycle_batches(s.train), s.placement, s.seed),
    "curves": lambda s: short_run_curves(s),
}  # fmt: skip


def run_doctor(
    config: ExperimentConfig, source: ConfigSource, only: str | None = None, output_dir: Path | None = None,
    console: Console | None = None,
) -> DoctorResult:  # fmt: skip
    """Run the checks `only` names (default: all; for a run folder, its curves), write the report folder, print the table."""
    console = console or Console()
    run_dir = finished_run(source)
    names = select_checks(only) if only or run_dir is None else ["curves"]
    folder = Path(output_dir) if output_dir else run_dir / "doctor" if run_dir else _new_folder(config, source)
    folder.mkdir(parents=True, exist_ok=True)
    console.print(f"doctor: {', '.join(names)} on {source.label} -> {folder}", highlight=False, soft_wrap=True)

    checks: list[Check] = []
    if run_dir is not None and "curves" in names:
        checks.append(_timed(lambda: run_folder_curves(run_dir, config), console))
        names = [n for n in names if n != "curves"]
    if names:
        subject = build_subject(config)
        for name in names:
            checks.append(_timed(lambda: _seeded_check(name, subject), console))
    checks.sort(key=lambda c: CHECK_NAMES.index(c.name))
    for check in checks:
        for stem, figure in check.figures.items():
            try:
                save_figure(figure, folder / f"{stem}.png")
            except (ValueError, OverflowError) as e:  # matplotlib on values it cannot place: the findings still stand
                check.evidence.setdefault("pictures_not_drawn", {})[f"{stem}.png"] = str(e)
                continue
            check.pictures.append(f"{stem}.png")
    report.write_report(folder, checks, config, source, run_dir)
    report.print_table(console, checks)
    console.print(f"report: {folder / report.REPORT_HTML}", highlight=False, soft_wrap=True)
    return DoctorResult(folder, checks)


def finished_run(source: ConfigSource) -> Path | None:
    """The run folder that `source` is the config.yaml of, when that run wrote a metrics.csv; else None."""
    path = source.path
    if path is not None and path.name == CONFIG_YAML and (path.parent / METRICS_CSV).is_file():
        return path.parent
    return None


def build_subject(config: ExperimentConfig) -> Subject:
    """The config's data, model (initial weights), optimizer factory and loss, as `trainlab run` builds them."""
    from trainlab.build import build_model
    from trainlab.experiment import build_experiment  # the whole runner

    experiment = build_experiment(config)
    data, placement = experiment.data, experiment.placement
    make_optimizer = functools.partial(OPTIMIZERS.build, config.optimizer.name, **config.optimizer.args)

    def build_trial(seed: int) -> Trial:
        """build_experiment's model, built again (the generators are seeded already); the data is kept:
        rebuilding it costs seconds, and the loader's own repeatability is checked apart."""
        model = build_model(config, data.model_inputs(), placement, example=data.example())
        return Trial(model, make_optimizer(model.parameters()), experiment.loss_fn, take_batches(data.train, SEED_STEPS))

    def make_scheduler(optimizer: torch.optim.Optimizer, epochs: int, steps: int) -> Any:
        args = config.scheduler.args
        return SCHEDULERS.build(config.scheduler.name, optimizer, epochs=epochs, steps_per_epoch=steps, **args)

    return Subject(
        model=experiment.model, build_trial=build_trial, make_optimizer=make_optimizer, make_scheduler=make_scheduler,
        loss_fn=experiment.loss_fn, train=data.train, val=data.val, classes=list(data.classes), placement=placement,
        seed=config.seed, task=experiment.task, outputs=experiment.task.outputs(data.model_inputs()["num_classes"]),
    )  # fmt: skip


# ---------------------------------------------------------------------------------------- curves


class CappedLoader:
    """The first `batches` batches of each epoch of a loader; shuffling still follows the epoch."""

    def __init__(self, loader: Any, batches: int):
        self.loader, self.batches = loader, batches

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.loader, "set_epoch"):
            self.loader.set_epoch(epoch)

    def __len__(self) -> int:
        return min(len(self.loader), self.batches)

    def __iter__(self) -> Iterator[Batch]:
        return itertools.islice(iter(self.loader), self.batches)


class StopWhenNotFinite(Callback):
    """Notes the first step's loss and the first step whose loss is NaN or infinite, and ends the short run after the
    epoch of that one: the curve has said it all."""

    def __init__(self) -> None:
        self.start: float | None = None  # the loss of the first step, before any update
        self.first: dict[str, float] | None = None  # {"step", "epoch", "loss", "lr"}: 1-based step and epoch

    def on_after_backward(self, trainer: Trainer) -> None:
        if trainer.global_step == 0:
            self.start = trainer.loss.item()
        if self.first is None and not torch.isfinite(trainer.loss):
            self.first = {"step": trainer.global_step + 1, "epoch": trainer.epoch + 1, "loss": trainer.loss.item(),
                          "lr": trainer.optimizer.param_groups[0]["lr"]}  # fmt: skip

    def on_epoch_end(self, trainer: Trainer) -> None:
        if self.first is not None or not math.isfinite(trainer.history[-1]["train_loss"]):
            trainer.should_stop = True


@dataclass
class ShortRun:
    history: list[dict[str, float]]  # as metrics.csv has it
    start: float | None  # the loss of the first step, before any update
    non_finite: dict[str, float] | None  # the first step whose loss was NaN or infinite
    failure: str | None  # the training error that ended it (the NaN guard's), its last epoch missing from the history


def short_run(subject: Subject) -> ShortRun:
    """Train a copy of the model for SHORT_RUN_EPOCHS epochs of at most SHORT_RUN_BATCHES batches, with
    the config's optimizer and schedule (sized to the short run)."""
    model, optimizer = fresh_copy(subject.model, subject.make_optimizer)
    train = CappedLoader(subject.train, SHORT_RUN_BATCHES)
    val = CappedLoader(subject.val, SHORT_RUN_VAL_BATCHES) if subject.val is not None else None
    watch = StopWhenNotFinite()
    callbacks: list[Callback] = [watch]
    with warnings.catch_warnings():  # a warmup cut to fit the short run is the doctor's doing, not the config's
        warnings.simplefilter("ignore", ConfigNote)
        callbacks.append(LRSchedule(subject.make_scheduler(optimizer, SHORT_RUN_EPOCHS, len(train))))
    trainer = Trainer(model, optimizer, subject.loss_fn, train, val, epochs=SHORT_RUN_EPOCHS, placement=subject.placement,
                      callbacks=callbacks, task=subject.task)  # fmt: skip
    try:
        trainer.fit()
    except UsageError:
        raise
    except TrainlabError as e:  # a training failure (a NaN guard) is what the curves check reports, as for a failed run
        return ShortRun(trainer.history, watch.start, watch.first, str(e))
    return ShortRun(trainer.history, watch.start, watch.first, None)


def short_run_curves(subject: Subject) -> Check:
    """The curve diagnosis of a short run from the initial weights."""
    run = short_run(subject)
    return check_curves(
        run.history, subject.chance, short_run=True, lr=subject.lr, batch_size=subject.train.batch_size,
        source=f"a short run of {min(SHORT_RUN_BATCHES, len(subject.train))} batches an epoch", failure=run.failure,
        non_finite=run.non_finite, start=run.start,
    )  # fmt: skip


def run_folder_curves(run_dir: Path, config: ExperimentConfig) -> Check:
    """The curve diagnosis of a run folder's metrics.csv, with the run's class count, rate and batch size.
    A corrupt metrics.csv, run.json or classification report is a DataError naming it."""
    rows = read_metrics(run_dir)
    run = read_run_record(run_dir, missing_ok=True) or {}  # it adds the class count and the error of a failed run
    num_classes = run.get("num_classes") or report.class_count(run_dir)
    task = {"task": config.task} if "task" in LOSSES.injected(config.loss.name) and config.task != "auto" else {}
    loss_fn = LOSSES.build(config.loss.name, **task, **config.loss.args)
    failure = run.get("error") if run.get("status") == "failed" else None
    return check_curves(
        rows, chance_loss(loss_fn, num_classes) if num_classes else None, lr=config.optimizer.args.get("lr"),
        batch_size=config.data.batch_size, source=f"run {run_dir.name}", failure=failure,
    )  # fmt: skip


def chance_loss(loss_fn: LossFn, num_classes: int) -> float:
    """The loss of even logits over `num_classes` balanced targets: ln C for cross-entropy, computed by the loss itself."""
    with torch.no_grad():
        return loss_fn(torch.zeros(num_classes, num_classes), torch.arange(num_classes)).item()


# ---------------------------------------------------------------------------------------- helpers


def _seeded_check(name: str, subject: Subject) -> Check:
    with seeded(subject.seed):  # each check starts from the same random state, whatever ran before it
        return RUNNERS[name](subject)


def _timed(run: Callable[[], Check], console: Console) -> Check:
    started = time.perf_counter()
    check = run()
    check.seconds = time.perf_counter() - started
    style = report.STATUS_STYLES[check.status]
    console.print(f"  [{style}]{check.status}[/] {check.name} ({check.seconds:.1f} s)", highlight=False, soft_wrap=True)
    return check


def _new_folder(config: ExperimentConfig, source: ConfigSource) -> Path:
    """<output_dir>/doctor/<name>-<YYYYmmdd-HHMMSS>/, beside the runs of that config."""
    return RunFolder.create(Path(config.output_dir) / "doctor", config.name or source.run_name).path
