"""Registered losses. Each takes the model's outputs and the targets of its task (`task`, given by trainlab):
classification logits (B, C) and class indices (B,); a binary task's logit (B,) and 0/1 targets (B,); a regression's
outputs and standardised targets (B, T). The task feeds them so (engine/tasks.py `Task.loss`)."""

from __future__ import annotations

from typing import Annotated, Literal

import torch
from pydantic import Field
from torch import nn
from torch.nn import functional as F

from trainlab.registry import Registry

LOSSES = Registry("losses")


TASK = ("task",)


def _for(task: str, loss: str, *tasks: str) -> None:
    if task not in tasks:
        fitting = {"classification": "cross_entropy, bce, mse", "binary": "bce", "regression": "mse, mae, huber"}[task]
        raise ValueError(f"{loss} is a loss of {' and '.join(tasks)} tasks; losses of a {task} task: {fitting}")


@LOSSES.register(injected=TASK)
def cross_entropy(*, label_smoothing: Annotated[float, Field(ge=0, lt=1)] = 0.0, task: str = "classification") -> nn.Module:
    """Softmax cross-entropy on logits (multi-class), with optional label smoothing."""
    _for(task, "cross_entropy", "classification")
    return nn.CrossEntropyLoss(label_smoothing=label_smoothing)


class OneHotLoss(nn.Module):
    """A loss on one-hot targets: `fn(scores(logits), one_hot(targets))`, mean over all entries."""

    def __init__(self, name: str, score: str):
        super().__init__()
        self.name, self.score = name, score

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        one_hot = F.one_hot(targets, logits.shape[1]).to(logits.dtype)  # (B,) -> (B, C)
        if self.name == "bce":
            return F.binary_cross_entropy_with_logits(logits, one_hot)
        return F.mse_loss(logits.softmax(1) if self.score == "softmax" else logits.sigmoid(), one_hot)

    def extra_repr(self) -> str:
        return f"{self.name} on {self.score}"


@LOSSES.register(injected=TASK)
def bce(*, task: str = "classification") -> nn.Module:
    """Binary cross-entropy of a sigmoid output: a binary task's one logit; per class against one-hot targets (one-vs-rest)."""
    _for(task, "bce", "classification", "binary")
    return nn.BCEWithLogitsLoss() if task == "binary" else OneHotLoss("bce", "sigmoid")


@LOSSES.register(injected=TASK)
def mse(*, output: Literal["softmax", "sigmoid"] = "softmax", task: str = "classification") -> nn.Module:
    """Mean squared error: of a regression's outputs; of the softmax (or sigmoid) output against one-hot targets."""
    _for(task, "mse", "classification", "regression")
    return nn.MSELoss() if task == "regression" else OneHotLoss("mse", output)


@LOSSES.register(injected=TASK)
def mae(*, task: str = "regression") -> nn.Module:
    """Mean absolute error (L1) of a regression's outputs: less pulled by outliers than mse."""
    _for(task, "mae", "regression")
    return nn.L1Loss()


@LOSSES.register(injected=TASK)
def huber(*, delta: Annotated[float, Field(gt=0)] = 1.0, task: str = "regression") -> nn.Module:
    """Huber loss of a regression's outputs: squared within `delta` standard deviations, absolute beyond."""
    _for(task, "huber", "regression")
    return nn.HuberLoss(delta=delta)
