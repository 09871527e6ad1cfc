"""A trained model and its preprocessing, loaded from its run folder alone: `Predictor.from_run(run_dir)`.

Everything that uses a trained model (`trainlab predict`, `trainlab eval`, the runner's test pass) goes
through a Predictor; nothing else rebuilds a trained model. A run folder needs nothing beside it: not the
training data, not $TRAINLAB_DATA.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from trainlab.build import build_model, resolve_task
from trainlab.config import ExperimentConfig, load_config
from trainlab.data.prepared import Loader
from trainlab.data.preprocess import Preprocess, load_preprocess
from trainlab.engine.checkpoint import load_checkpoint
from trainlab.engine.device import Placement, resolve_placement
from trainlab.errors import DataError, UsageError
from trainlab.evaluation.metrics import TestResults, write_test_results
from trainlab.evaluation.mistakes import write_mistakes
from trainlab.evaluation.task_results import (
    BinaryResults, RegressionResults, best_threshold, write_binary_results, write_regression_results,
)  # fmt: skip
from trainlab.engine.tasks import Classification, Task
from trainlab.models.user import check_model_file
from trainlab.run_folder import RunFolder, run_status
from trainlab.run_records import read_run_record

CHECKPOINTS = ("best", "last")
PREDICT_BATCH = 64  # raw inputs converted and run at once


class Predictor:
    """A model in eval mode on its placement, and the preprocessing that turns raw inputs into its input."""

    def __init__(self, model: nn.Module, preprocess: Preprocess, placement: Placement, *, config: ExperimentConfig | None = None,
                 checkpoint: Path | None = None, epoch: int | None = None, task: Task | None = None):  # fmt: skip
        self.model, self.preprocess, self.placement = model, preprocess, placement
        self.config, self.checkpoint, self.epoch = config, checkpoint, epoch
        self.task = task or Classification()  # turns outputs into probabilities or values

    @classmethod
    def from_run(cls, run_dir: str | Path, checkpoint: str = "best", *, device: str = "auto",
                 finished_only: bool = True, preprocess: Preprocess | None = None, tta: str | None = None) -> Predictor:  # fmt: skip
        """The run's model built from its saved config and preprocess.json, its `checkpoint` (best or last)
        loaded with weights_only=True, in eval mode on `device` (auto: a GPU when there is one).

        `finished_only` refuses a run that did not finish (interrupted, failed, died, still running); `preprocess`
        stands in for the run's preprocess.json (a run folder of a trainlab that did not write one); `tta` (none,
        flip, flip_translate) replaces the test-time augmentation the run was trained with: it changes no weight."""
        if checkpoint not in CHECKPOINTS:
            raise UsageError(f"checkpoint '{checkpoint}': expected one of {', '.join(CHECKPOINTS)}")
        folder = RunFolder.open(Path(run_dir))
        if finished_only:
            _check_finished(folder)
        path = folder.checkpoints / f"{checkpoint}.pt"
        if not path.is_file():
            other = [name for name in CHECKPOINTS if name != checkpoint and (folder.checkpoints / f"{name}.pt").is_file()]
            hint = f"; it has {other[0]}.pt (--checkpoint {other[0]})" if other else ": the run saved no model"
            raise UsageError(f"{path} not found{hint}")
        state = load_checkpoint(path)
        check_model_file(state["config"]["model"]["name"], state.get("model_file"), folder.path)  # before it runs
        config, _ = load_config(str(folder.path / "config.yaml"), [f"tta={tta}"] if tta is not None else [])
        preprocess = preprocess or load_preprocess(folder.path)
        task = resolve_task(config, preprocess)
        placement = resolve_placement(device, config.precision, config.channels_last)
        with torch.random.fork_rng(devices=[]):  # initial weights, overwritten below: leave the caller's generators alone
            model = build_model(config, {**preprocess.model_inputs(), "load_pretrained": False}, placement, preprocess.example())
        try:
            model.load_state_dict(state["model"])
        except RuntimeError as e:
            lines = [line.strip() for line in str(e).splitlines() if line.strip()]
            raise DataError(
                f"{path} does not fit the model its config.yaml and preprocess.json describe: "
                f"{(lines[1:] or lines or [type(e).__name__])[0][:300]}"
            ) from None
        model.eval()
        return cls(model, preprocess, placement, config=config, checkpoint=path, epoch=state["trainer"]["epoch"], task=task)

    @property
    def classes(self) -> list[str]:
        return self.preprocess.classes

    @property
    def is_regression(self) -> bool:
        return self.task.name == "regression"

    @torch.inference_mode()
    def probabilities(self, batch: torch.Tensor) -> torch.Tensor:
        """Class probabilities (N, classes), float32 on the model's device, of a batch of model inputs; a
        regression's values (N, target columns) in the targets' units."""
        self.model.eval()
        batch = batch.to(self.placement.device)
        if self.placement.channels_last and batch.dim() == 4:
            batch = batch.contiguous(memory_format=torch.channels_last)
        with self.placement.autocast():
            logits = self.model(batch).float()
        return self.task.predictions(logits)

    def predict(self, inputs: torch.Tensor | Sequence[Any], batch_size: int = PREDICT_BATCH) -> torch.Tensor:
        """Class probabilities (N, classes), float32 on the CPU, of a batch of model inputs or of raw inputs
        (image files or PIL images, texts) converted as the training data was."""
        if isinstance(inputs, torch.Tensor):
            return self.probabilities(inputs).cpu()
        chunks = [self.probabilities(self.preprocess.encode(inputs[i : i + batch_size])).cpu()
                  for i in range(0, len(inputs), batch_size)]  # fmt: skip
        return torch.cat(chunks) if chunks else torch.empty(0, self.preprocess.model_inputs()["num_classes"])

    def top_classes(self, inputs: Sequence[Any], top: int) -> list[list[tuple[str, float]]]:
        """The `top` classes of each raw input (or model input) with their probabilities, most probable first."""
        if self.is_regression:
            raise UsageError("a regression model predicts values, not classes: Predictor.predict gives them")
        probabilities = self.predict(inputs)
        values, indices = probabilities.topk(min(top, len(self.classes)), dim=1)
        return [[(self.classes[i], p) for i, p in zip(row_indices, row_values)]
                for row_values, row_indices in zip(values.tolist(), indices.tolist())]  # fmt: skip

    def predict_loader(self, loader: Loader) -> tuple[torch.Tensor, torch.Tensor]:
        """Probabilities (N, classes) and labels (N,) of a split, on the CPU, in the split's order."""
        batches = [(self.probabilities(inputs), labels) for inputs, labels in loader]
        probabilities = torch.cat([p for p, _ in batches]).cpu()
        labels = torch.cat([t for _, t in batches]).cpu()
        if loader.order is not None:  # the loader's position of each example of the split
            back = loader.order.cpu().argsort()
            probabilities, labels = probabilities[back], labels[back]
        return probabilities, labels

    def test(self, loader: Loader, folder: Path, val: Loader | None = None) -> TestResults | RegressionResults:
        """Score the test split and write the test files (predictions, confusion matrices, report, mistakes; a binary
        task's curves; a regression's values and pictures) into `folder`. A binary task's decision threshold is
        tuned on `val` when given."""
        probabilities, labels = self.predict_loader(loader)
        if self.is_regression:
            results = RegressionResults(labels.numpy().reshape(len(labels), -1), probabilities.numpy(), self.preprocess.targets)
            write_regression_results(folder, results)
            return results
        confidence, predicted = probabilities.max(1)
        arrays = (labels.numpy(), predicted.numpy(), confidence.numpy(), self.classes)
        if self.task.name == "binary":
            threshold = None
            if val is not None:
                val_probabilities, val_labels = self.predict_loader(val)
                threshold = best_threshold(val_probabilities[:, 1].numpy(), val_labels.numpy())
            results = BinaryResults(*arrays, scores=probabilities[:, 1].numpy(), threshold=threshold)
            write_binary_results(folder, results)
        else:
            results = TestResults(*arrays)
            write_test_results(folder, results)
        write_mistakes(folder, probabilities.numpy(), labels.numpy(), self.classes, loader)
        return results


SHIPPED_KINDS = ("image", "text", "pieces")  # what export, bench and serve take


def check_shippable(predictor: Predictor, command: str) -> None:
    """`trainlab export`, `bench` and `serve` take image and text classifiers (binary ones too); a table's model
    or a regression is refused before any work, as not built for them yet."""
    if predictor.preprocess.kind not in SHIPPED_KINDS or predictor.is_regression:
        what = "a regression" if predictor.is_regression else f"a model of {predictor.preprocess.kind} inputs"
        raise UsageError(f"trainlab {command} takes image and text classifiers; {what} is not built for it yet "
                         "(trainlab predict and the Python API's Run.predict serve it)")  # fmt: skip


def _check_finished(folder: RunFolder) -> None:
    record = read_run_record(folder.path, missing_ok=True)
    if record is None:
        raise UsageError(f"{folder.path} has not started training (no run.json): it holds no trained model")
    status, reason = run_status(record)
    if status == "finished":
        return
    epochs = record.get("epochs_completed")
    after = f" after {epochs} of {record.get('epochs')} epochs" if isinstance(epochs, int) else ""
    advice = (
        "wait for it to finish" if status == "running"
        else f"finish it with `trainlab run --resume {folder.path}`, or test its checkpoint with `trainlab eval {folder.path}`"
    )  # fmt: skip
    raise UsageError(f"{folder.path} did not finish: its status is {status}{after}{' (' + reason + ')' if reason else ''}; {advice}")
