"""The training step: forward, loss, backward and optimizer step, under the placement's autocast.

The Trainer takes every step through `training_step`, and so do the doctor's checks, so a check
measures exactly what a run does. Two optional functions run between forward and step:

    forward and loss        (autocast)
    before_backward         may return a new loss (penalty terms added)
    zero_grad, backward
    after_backward          returns whether to take the optimizer step (gradients are ready)
    optimizer step
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import nn

from trainlab.engine.device import Placement

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class StepResult(NamedTuple):
    logits: torch.Tensor  # (B, C), in the autocast dtype
    loss: torch.Tensor  # the loss that was backpropagated, not detached
    stepped: bool  # False when `after_backward` skipped the optimizer step


def training_step(
    model: nn.Module, optimizer: torch.optim.Optimizer, loss_fn: LossFn, inputs: torch.Tensor, targets: torch.Tensor,
    placement: Placement, *,
    before_backward: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    after_backward: Callable[[torch.Tensor], bool] | None = None,
) -> StepResult:  # fmt: skip
    """One forward, backward and optimizer step on (`inputs`, `targets`).

    `before_backward(logits, loss)` returns the loss to backpropagate; `after_backward(loss)` sees the
    gradients before the optimizer step and returns False to skip it (a NaN would spoil the weights).
    """
    with placement.autocast():
        logits = model(inputs)
        loss = loss_fn(logits, targets)
    if before_backward is not None:
        loss = before_backward(logits, loss)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    stepped = after_backward is None or after_backward(loss)
    if stepped:
        optimizer.step()
    return StepResult(logits, loss, stepped)
