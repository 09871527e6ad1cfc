"""Registered losses. Each takes the model's logits (B, C) and integer class targets (B,)."""

from __future__ import annotations

from typing import Annotated, Literal

import torch
from pydantic import Field
from torch import nn
from torch.nn import functional as F

from trainlab.registry import Registry

LOSSES = Registry("losses")


@LOSSES.register()
def cross_entropy(*, label_smoothing: Annotated[float, Field(ge=0, lt=1)] = 0.0) -> nn.Module:
    """Softmax cross-entropy on logits (multi-class), with optional label smoothing."""
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


@LOSSES.register()
def bce() -> nn.Module:
    """Binary cross-entropy of a sigmoid output per class against one-hot targets (one-vs-rest)."""
    return OneHotLoss("bce", "sigmoid")


@LOSSES.register()
def mse(*, output: Literal["softmax", "sigmoid"] = "softmax") -> nn.Module:
    """Mean squared error between the softmax (or sigmoid) output and one-hot targets."""
    return OneHotLoss("mse", output)
