"""`trainlab eval`: test a run's checkpoint again, on the run's data or on data that moved, without
touching what training recorded. Each evaluation gets its own folder and an entry in run.json."""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from trainlab.config import ExperimentConfig, load_config, parse_override
from trainlab.data import DATASETS
from trainlab.engine.checkpoint import load_checkpoint
from trainlab.engine.device import resolve_placement
from trainlab.engine.loop import Trainer
from trainlab.engine.losses import LOSSES
from trainlab.errors import ConfigError, DataError, UsageError
from trainlab.evaluation.metrics import CONFUSION_CSV, TestResults
from trainlab.evaluation.report import write_html_report
from trainlab.experiment import build_network, evaluate_test_set, load_data
from trainlab.run_folder import RunFolder, read_record

EVALUATIONS = "evaluations"  # RUN/evaluations/<checkpoint>-<stamp>/: the test files of each `trainlab eval`


@dataclass
class Evaluation:
    """One `trainlab eval`: a checkpoint's test results, the folder of their files, and its record in run.json."""

    results: TestResults
    path: Path  # RUN/evaluations/<checkpoint>-<stamp>/
    record: dict  # the entry appended to run.json's `evaluations`

    @property
    def accuracy(self) -> float:
        return self.results.accuracy


def evaluate_run(run_dir: Path, checkpoint: str = "best", overrides: Sequence[str] = ()) -> Evaluation:
    """`trainlab eval`: rebuild a run's data and model, load a checkpoint and test it again.

    The test files go to RUN/evaluations/<checkpoint>-<stamp>/ and a record is appended to run.json's
    `evaluations`; what training recorded (test_acc, the run's own test files) stays as it was.
    `overrides` are data.* keys only (data.root=... for data that moved): other keys change the experiment.
    """
    folder = RunFolder.open(run_dir)
    _check_data_overrides(overrides)
    _recorded_evaluations(folder)  # a corrupt run.json stops here, before the work: it could not take the record
    config, _ = load_config(str(folder.path / "config.yaml"), list(overrides))
    state = load_checkpoint(folder.checkpoints / f"{checkpoint}.pt")
    placement = resolve_placement(config.device, config.precision, config.channels_last)
    with _pointing_at_moved_data(folder, config, overrides):
        data = load_data(config, placement)
    _check_same_classes(folder, data.classes, data.source, overrides)
    model = build_network(config, data, placement)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as e:
        lines = [line.strip() for line in str(e).splitlines() if line.strip()]  # "Error(s) in loading ...", then the first
        raise (UsageError if overrides else DataError)(
            f"{folder.checkpoints / f'{checkpoint}.pt'} does not fit the model built for {data.source}"
            f"{' with ' + ' '.join(overrides) if overrides else ''}: {(lines[1:] or lines or [type(e).__name__])[0][:300]}"
        ) from None
    loss_fn = LOSSES.build(config.loss.name, **config.loss.args)
    trainer = Trainer(model, None, loss_fn, data.train, None, epochs=0, placement=placement)  # predicts only: no optimizer

    now = dt.datetime.now().astimezone()
    target = _new_evaluation_folder(folder, checkpoint, now.strftime("%Y%m%d-%H%M%S"))
    try:
        results = evaluate_test_set(trainer, data, RunFolder(target))  # the test files, into the evaluation's folder
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)  # no half-written evaluation left behind
        raise
    record = {
        "checkpoint": checkpoint, "epoch": state["trainer"]["epoch"], "test_acc": results.accuracy,
        "test_macro_f1": results.report_dict()["macro avg"]["f1-score"], "test_size": data.sizes["test"],
        "data_source": data.source, "data_root": config.data.args.get("root"), "overrides": list(overrides),
        "path": target.relative_to(folder.path).as_posix(), "time": now.isoformat(timespec="seconds"),
    }  # fmt: skip
    folder.update_run(evaluations=[*_recorded_evaluations(folder), record])
    write_html_report(folder.path)
    return Evaluation(results, target, record)


def _recorded_evaluations(folder: RunFolder) -> list:
    """run.json's `evaluations` ([] without run.json); a DataError naming the file when run.json is corrupt."""
    path = folder.path / "run.json"
    earlier = read_record(path).get(EVALUATIONS, []) if path.exists() else []
    return earlier if isinstance(earlier, list) else []


def _check_data_overrides(overrides: Sequence[str]) -> None:
    """Only data.* keys may change for a test: anything else would make it another experiment."""
    for text in overrides:
        key, _ = parse_override(text)
        if key[0] != "data" or len(key) < 2:
            raise UsageError(
                f"trainlab eval: cannot override '{'.'.join(key)}' ({text}): a run is tested with the config it was "
                "trained with; only data.* keys may change, e.g. data.root=/new/place or data.eval_batch_size=256"
            )


@contextlib.contextmanager
def _pointing_at_moved_data(folder: RunFolder, config: ExperimentConfig, overrides: Sequence[str]) -> Iterator[None]:
    """Data that cannot be read where the run's config says: the error, then how to point eval elsewhere."""
    try:
        yield
    except ConfigError:
        raise
    except (UsageError, DataError) as e:
        takes_root = "root" in DATASETS.arguments(config.data.name)
        if not takes_root or any(text.split("=", 1)[0].strip() == "data.root" for text in overrides):
            raise
        raise type(e)(
            f"{e}\n{folder.path} was trained on {folder.read_run().get('data_source') or config.data.name}; "
            f"if the data moved, give its new place: trainlab eval {folder.path} data.root=/new/place"
        ) from None


def _check_same_classes(folder: RunFolder, classes: list[str], source: str, overrides: Sequence[str]) -> None:
    """Data with other classes than the run was tested on would be scored against the wrong names."""
    try:
        with open(folder.path / CONFUSION_CSV, encoding="utf-8", newline="") as f:
            tested = next(csv.reader(f), [])[1:]  # header: true\predicted, then every class
    except (OSError, UnicodeDecodeError, csv.Error):
        return  # the run never reached its test pass: nothing to compare with
    if tested and tested != classes:
        raise (UsageError if overrides else DataError)(
            f"{source} has the classes {', '.join(classes)}, but {folder.path} was tested on "
            f"{', '.join(tested)} (its {CONFUSION_CSV}): is it the run's data?"
        )


def _new_evaluation_folder(folder: RunFolder, checkpoint: str, stamp: str) -> Path:
    """RUN/evaluations/<checkpoint>-<stamp>/, made here; two in the same second get -2, -3, ..."""
    parent = folder.path / EVALUATIONS
    parent.mkdir(exist_ok=True)
    for attempt in range(1, 100):
        path = parent / (f"{checkpoint}-{stamp}" + (f"-{attempt}" if attempt > 1 else ""))
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise UsageError(f"cannot create an evaluation folder in {parent}")
