"""What a run learns, and how its outputs are scored: `classification` (one score per class, softmax),
`binary` (one logit, sigmoid, decided at 0.5) or `regression` (one output per target column).

The Trainer asks the task for its training score and validation metrics, the loss is wrapped by it
(`task.loss`), and the Predictor turns outputs into probabilities or values through it. The metric names
are metrics.csv's columns (`val_acc`, `val_auc`, `val_rmse`, see metric_names.py), and the config's
monitor must be one of them.

A regression model learns standardised targets, (y - mean) / std with the training split's statistics;
its outputs are turned back into the targets' units before they are scored or shown, so the losses are
in standard deviations and MAE, RMSE and R² in the targets' own units.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from torch import nn

from trainlab.engine.metric_names import TASK_COLUMNS

TaskName = Literal["classification", "binary", "regression"]


class Task(ABC):
    name: ClassVar[TaskName]
    score: ClassVar[str]  # the training score of each batch: "acc" or "mae"
    metrics: ClassVar[tuple[str, ...]]  # validation metrics besides the loss
    default_loss: ClassVar[str]
    default_monitor: ClassVar[str]

    @property
    def columns(self) -> list[str]:
        """The history's metric columns of this task: train_loss, train_<score>, val_loss, val_<metric>..."""
        return list(TASK_COLUMNS[self.name])

    @property
    def monitors(self) -> list[str]:
        """The monitors a config may name for this task: val/loss and each validation metric."""
        return ["val/loss", *(f"val/{m}" for m in self.metrics)]

    @abstractmethod
    def outputs(self, count: int) -> int:
        """The model's output width for data of `count` classes (or target columns)."""

    def loss(self, base: nn.Module) -> nn.Module:
        """The registered loss, fed as this task's outputs and targets need."""
        return base

    @abstractmethod
    def batch_score(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The training score summed over a batch (correct predictions, absolute errors), on the device."""

    @abstractmethod
    def evaluate(self, outputs: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
        """The validation metrics of a split's float32 outputs and targets."""

    @abstractmethod
    def predictions(self, outputs: torch.Tensor) -> torch.Tensor:
        """Class probabilities (N, C), or values (N, T) in the targets' units."""


class Classification(Task):
    name, score, metrics = "classification", "acc", ("acc", "macro_f1")
    default_loss, default_monitor = "cross_entropy", "val/acc"

    def outputs(self, count: int) -> int:
        return count

    def batch_score(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return (outputs.detach().argmax(1) == targets).sum()  # argmax, never a 0.5 threshold

    def evaluate(self, outputs: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
        predicted = outputs.argmax(1)
        return {"acc": (predicted == targets).sum().item() / len(targets),
                "macro_f1": macro_f1(predicted, targets, outputs.shape[1])}  # fmt: skip

    def predictions(self, outputs: torch.Tensor) -> torch.Tensor:
        return outputs.softmax(1)


class Binary(Task):
    """Two classes, the second the positive one: one logit, its sigmoid the positive class's probability."""

    name, score, metrics = "binary", "acc", ("acc", "f1", "auc")
    default_loss, default_monitor = "bce", "val/auc"

    def outputs(self, count: int) -> int:
        return output_width(self.name, count)

    def loss(self, base: nn.Module) -> nn.Module:
        return _BinaryLoss(base)

    def batch_score(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return ((outputs.detach()[:, 0] > 0).long() == targets).sum()  # logit > 0: probability > 0.5

    def evaluate(self, outputs: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
        from sklearn.metrics import f1_score, roc_auc_score

        scores, truth = outputs[:, 0].float().cpu().numpy(), targets.cpu().numpy()
        predicted = (scores > 0).astype(np.int64)
        auc = roc_auc_score(truth, scores) if len(np.unique(truth)) == 2 else math.nan
        return {"acc": float(np.mean(predicted == truth)), "f1": float(f1_score(truth, predicted, zero_division=0)),
                "auc": float(auc)}  # fmt: skip

    def predictions(self, outputs: torch.Tensor) -> torch.Tensor:
        positive = outputs[:, :1].sigmoid()
        return torch.cat([1 - positive, positive], dim=1)


class _BinaryLoss(nn.Module):
    def __init__(self, base: nn.Module):
        super().__init__()
        self.base = base

    def forward(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return self.base(outputs[:, 0], targets.to(outputs.dtype))


class Regression(Task):
    name, score, metrics = "regression", "mae", ("mae", "rmse", "r2")
    default_loss, default_monitor = "mse", "val/mae"

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        self.mean = torch.tensor(mean, dtype=torch.float32)  # (T,) of the training targets
        self.std = torch.tensor(std, dtype=torch.float32)

    def outputs(self, count: int) -> int:
        return count

    def loss(self, base: nn.Module) -> nn.Module:
        return _StandardisedLoss(base, self.mean, self.std)

    def values(self, outputs: torch.Tensor) -> torch.Tensor:
        """Outputs in the targets' units."""
        return outputs.float() * self.std.to(outputs.device) + self.mean.to(outputs.device)

    def batch_score(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return (self.values(outputs.detach()) - targets).abs().mean(1).sum()  # mean over targets, summed over rows

    def evaluate(self, outputs: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
        return regression_metrics(targets.cpu().numpy(), self.values(outputs).cpu().numpy())

    def predictions(self, outputs: torch.Tensor) -> torch.Tensor:
        return self.values(outputs)


class _StandardisedLoss(nn.Module):
    def __init__(self, base: nn.Module, mean: torch.Tensor, std: torch.Tensor):
        super().__init__()
        self.base = base
        self.register_buffer("mean", mean, persistent=False)
        self.register_buffer("std", std, persistent=False)

    def forward(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        mean, std = self.mean.to(targets.device), self.std.to(targets.device)
        return self.base(outputs.float(), (targets - mean) / std)


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """MAE, RMSE and R² by scikit-learn, averaged over target columns with equal weights."""
    from sklearn.metrics import mean_absolute_error, r2_score, root_mean_squared_error

    if len(y_true) < 2:
        return {"mae": float(mean_absolute_error(y_true, y_pred)), "rmse": float(root_mean_squared_error(y_true, y_pred)),
                "r2": math.nan}  # fmt: skip
    return {"mae": float(mean_absolute_error(y_true, y_pred)), "rmse": float(root_mean_squared_error(y_true, y_pred)),
            "r2": float(r2_score(y_true, y_pred))}  # fmt: skip


def macro_f1(predicted: torch.Tensor, targets: torch.Tensor, num_classes: int) -> float:
    """The mean over all `num_classes` classes of 2·TP / (2·TP + FP + FN), a class neither true nor predicted
    counting 0: scikit-learn's f1_score(average="macro", labels=range(num_classes), zero_division=0)."""
    true = torch.bincount(targets, minlength=num_classes).double()  # (C,) TP + FN
    guessed = torch.bincount(predicted, minlength=num_classes).double()  # (C,) TP + FP
    hits = torch.bincount(targets[predicted == targets], minlength=num_classes).double()  # (C,) TP
    f1 = torch.where(true + guessed > 0, 2 * hits / (true + guessed).clamp(min=1), torch.zeros_like(hits))
    return f1.mean().item()


def build_task(name: str, preprocess: Any) -> Task:
    """The task `name` (classification, binary or regression) for data described by its `preprocess` record;
    a ValueError when the data cannot be learnt that way."""
    kind = getattr(preprocess, "target_kind", "classes")  # tables say; images and texts have classes
    if name == "regression":
        if kind != "values":
            raise ValueError("task regression needs numeric targets; this data has classes: use task: classification or binary")
        stats = [preprocess.target_stats[column] for column in preprocess.targets]
        return Regression([mean for mean, _ in stats], [std for _, std in stats])
    if kind == "values":
        raise ValueError(f"task {name} needs classes; this data's targets are numbers: use task: regression, or list "
                         "the target column in data.categorical to read its values as classes")  # fmt: skip
    return Binary() if name == "binary" else Classification()


def output_width(task: str, count: int) -> int:
    """The model's outputs for a task (a config's `task`, auto too) on data of `count` classes or target columns."""
    if task == "binary" and count != 2:
        raise ValueError(f"task binary needs data of 2 classes, this data has {count}; use task: classification")
    return 1 if task == "binary" else count


def default_task(preprocess: Any) -> TaskName:
    """The task `task: auto` means: regression for numeric targets, else classification."""
    return "regression" if getattr(preprocess, "target_kind", "classes") == "values" else "classification"


def task_monitor(config: Any) -> Any:
    """The monitor a config means before its data is read: its own, or its binary or regression task's default
    when it names none (`resolve_task` settles `task: auto` once the data says)."""
    from trainlab.engine.monitor import Monitor

    if "monitor" in config.model_fields_set or config.task not in TASKS:
        return config.monitor
    return Monitor.parse(TASKS[config.task].default_monitor)


TASKS: dict[str, type[Task]] = {"binary": Binary, "regression": Regression}  # tasks whose defaults differ from the config's
