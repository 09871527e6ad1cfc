"""Registered losses."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field
from torch import nn

from trainlab.registry import Registry

LOSSES = Registry("losses")


@LOSSES.register()
def cross_entropy(*, label_smoothing: Annotated[float, Field(ge=0, lt=1)] = 0.0) -> nn.Module:
    """Softmax cross-entropy on logits (multi-class)."""
    return nn.CrossEntropyLoss(label_smoothing=label_smoothing)
