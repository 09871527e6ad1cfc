"""`trainlab eval`: test a run's checkpoint again, on the run's data or on data that moved, without
touching what training recorded. Each evaluation gets its own folder and an entry in run.json."""

from __future__ import annotations

import contextlib
import datetime as dt
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainlab.config import ExperimentConfig, load_config, parse_override
from trainlab.build import eval_batch_size, load_data
from trainlab.data import DATASETS, Loader, prepare_test
from trainlab.data.preprocess import PREPROCESS_JSON
from trainlab.errors import ConfigError, DataError, UsageError
from trainlab.evaluation.metrics import TestResults
from trainlab.evaluation.report import write_html_report
from trainlab.inference import Predictor
from trainlab.run_folder import RunFolder
from trainlab.run_records import read_evaluations, read_run_record

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
    """`trainlab eval`: load a run's checkpoint (Predictor.from_run) and test it again on its data's test split,
    prepared with the run's own preprocessing record (its normalisation, its vocabulary).

    The test files go to RUN/evaluations/<checkpoint>-<stamp>/ and a record is appended to run.json's
    `evaluations`; what training recorded (test_acc, the run's own test files) stays as it was.
    `overrides` are data.* keys (data.root=... for data that moved) and tta (test-time augmentation, which changes
    no weight: tta=flip_translate tests the same checkpoint on mirrored and shifted copies too); other keys would
    change the experiment.
    """
    folder = RunFolder.open(run_dir)
    check_data_overrides(overrides, also=("tta",))
    _recorded_evaluations(folder)  # a corrupt run.json stops here, before the work: it could not take the record
    config, _ = load_config(str(folder.path / "config.yaml"), list(overrides))
    preprocess = None
    if not (folder.path / PREPROCESS_JSON).is_file():  # a run of a trainlab before preprocess.json: derived from its data
        with _pointing_at_moved_data(folder, config, overrides):
            preprocess = load_data(config).preprocess
    predictor = Predictor.from_run(folder.path, checkpoint, device=config.device, finished_only=False, preprocess=preprocess, tta=config.tta)
    data_overrides = [text for text in overrides if parse_override(text)[0] != ("tta",)]
    test, dataset = load_test_split(folder, config, predictor, data_overrides)

    now = dt.datetime.now().astimezone()
    target = _new_evaluation_folder(folder, checkpoint, now.strftime("%Y%m%d-%H%M%S"))
    try:
        results = predictor.test(test, target)  # the test files, into the evaluation's folder
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)  # no half-written evaluation left behind
        raise
    record = {
        "checkpoint": checkpoint, "epoch": predictor.epoch, "tta": config.tta, **results.run_fields(), "test_size": len(results.y_true),
        "data_source": dataset.source, "data_root": config.data.args.get("root"), "overrides": list(overrides),
        "path": target.relative_to(folder.path).as_posix(), "time": now.isoformat(timespec="seconds"),
    }  # fmt: skip
    folder.update_run(evaluations=[*_recorded_evaluations(folder), record])
    write_html_report(folder.path)
    return Evaluation(results, target, record)


def load_test_split(
    folder: RunFolder, config: ExperimentConfig, predictor: Predictor, overrides: Sequence[str] = (), command: str = "eval",
) -> tuple[Loader, Any]:  # fmt: skip
    """The test split of the run's dataset (built with test_only, `overrides` applied to data.*) prepared with the
    predictor's preprocessing, and the dataset; data that moved gets the advice to pass data.root to `command`."""
    with _pointing_at_moved_data(folder, config, overrides, command):
        dataset = DATASETS.build(config.data.name, test_only=True, **config.data.args)
    try:
        test = prepare_test(dataset, predictor.preprocess, batch_size=eval_batch_size(config, dataset),
                            device=predictor.placement.device, channels_last=predictor.placement.channels_last)  # fmt: skip
    except DataError as e:
        raise (UsageError if overrides else DataError)(f"{e}{' (with ' + ' '.join(overrides) + ')' if overrides else ''}") from None
    return test, dataset


def _recorded_evaluations(folder: RunFolder) -> list:
    """run.json's `evaluations` ([] without run.json); a DataError naming the file when run.json is corrupt."""
    return read_evaluations(folder.path, missing_ok=True)


def check_data_overrides(overrides: Sequence[str], command: str = "eval", also: Sequence[str] = ()) -> None:
    """Only data.* keys (and the top-level keys in `also`) may change for a test: anything else would make it
    another experiment."""
    for text in overrides:
        key, _ = parse_override(text)
        if (key[0] != "data" or len(key) < 2) and ".".join(key) not in also:
            allowed = "".join(f" and {name}" for name in also)
            raise UsageError(
                f"trainlab {command}: cannot override '{'.'.join(key)}' ({text}): a run is tested with the config it was "
                f"trained with; only data.* keys{allowed} may change, e.g. data.root=/new/place or data.eval_batch_size=256"
            )


@contextlib.contextmanager
def _pointing_at_moved_data(
    folder: RunFolder, config: ExperimentConfig, overrides: Sequence[str], command: str = "eval"
) -> Iterator[None]:
    """Data that cannot be read where the run's config says: the error, then how to point `command` elsewhere."""
    try:
        yield
    except ConfigError:
        raise
    except (UsageError, DataError) as e:
        takes_root = "root" in DATASETS.arguments(config.data.name)
        if not takes_root or any(text.split("=", 1)[0].strip() == "data.root" for text in overrides):
            raise
        raise type(e)(
            f"{e}\n{folder.path} was trained on {(read_run_record(folder.path, missing_ok=True) or {}).get('data_source') or config.data.name}; "
            f"if the data moved, give its new place: trainlab {command} {folder.path} data.root=/new/place"
        ) from None


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
