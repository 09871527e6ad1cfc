"""Registered optimizers and learning-rate schedules.

Schedules are multipliers of the base learning rate as a function of the step, so
they step once per batch and the learning rate can be logged at every step.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Annotated

import torch
from pydantic import Field

from trainlab.registry import Registry

OPTIMIZERS = Registry("optimizers")
SCHEDULERS = Registry("schedulers")

Params = Iterable[torch.nn.Parameter]
PositiveFloat = Annotated[float, Field(gt=0)]
NonNegative = Annotated[float, Field(ge=0)]
Betas = tuple[Annotated[float, Field(ge=0, lt=1)], Annotated[float, Field(ge=0, lt=1)]]


@OPTIMIZERS.register(injected=("params",))
def sgd(
    params: Params, *, lr: PositiveFloat = 0.01, momentum: NonNegative = 0.0, nesterov: bool = False,
    weight_decay: NonNegative = 0.0,
) -> torch.optim.Optimizer:  # fmt: skip
    """Stochastic gradient descent, with optional (Nesterov) momentum."""
    if nesterov and momentum == 0:
        raise ValueError("nesterov momentum needs momentum > 0")
    return torch.optim.SGD(params, lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay)


@OPTIMIZERS.register(injected=("params",))
def adagrad(params: Params, *, lr: PositiveFloat = 0.01, weight_decay: NonNegative = 0.0, eps: PositiveFloat = 1e-10):
    """Adagrad: per-parameter steps shrinking with the sum of squared gradients."""
    return torch.optim.Adagrad(params, lr=lr, weight_decay=weight_decay, eps=eps)


@OPTIMIZERS.register(injected=("params",))
def rmsprop(
    params: Params, *, lr: PositiveFloat = 0.001, alpha: Annotated[float, Field(gt=0, lt=1)] = 0.99,
    momentum: NonNegative = 0.0, weight_decay: NonNegative = 0.0, eps: PositiveFloat = 1e-8,
):  # fmt: skip
    """RMSprop: steps divided by a running root-mean-square of the gradients."""
    return torch.optim.RMSprop(params, lr=lr, alpha=alpha, momentum=momentum, weight_decay=weight_decay, eps=eps)


@OPTIMIZERS.register(injected=("params",))
def adam(
    params: Params, *, lr: PositiveFloat = 0.001, betas: Betas = (0.9, 0.999), weight_decay: NonNegative = 0.0,
    eps: PositiveFloat = 1e-8, amsgrad: bool = False,
):  # fmt: skip
    """Adam; weight_decay here is an L2 penalty added to the gradient."""
    return torch.optim.Adam(params, lr=lr, betas=betas, weight_decay=weight_decay, eps=eps, amsgrad=amsgrad)


@OPTIMIZERS.register(injected=("params",))
def adamw(
    params: Params, *, lr: PositiveFloat = 0.001, betas: Betas = (0.9, 0.999), weight_decay: NonNegative = 0.01,
    eps: PositiveFloat = 1e-8, amsgrad: bool = False,
):  # fmt: skip
    """AdamW: Adam with decoupled weight decay."""
    return torch.optim.AdamW(params, lr=lr, betas=betas, weight_decay=weight_decay, eps=eps, amsgrad=amsgrad)


# ---------------------------------------------------------------------------------------- schedules

SCHEDULE_INPUTS = ("optimizer", "epochs", "steps_per_epoch")


def _lambda_lr(optimizer: torch.optim.Optimizer, factor: Callable[[int], float]) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _warmup(step: int, warmup_steps: int) -> float:
    return min(1.0, (step + 1) / warmup_steps) if warmup_steps > 0 else 1.0


@SCHEDULERS.register(injected=SCHEDULE_INPUTS)
def constant(optimizer: torch.optim.Optimizer, *, epochs: int, steps_per_epoch: int, warmup_epochs: NonNegative = 0.0):
    """The base learning rate throughout, after an optional linear warmup."""
    warmup = round(warmup_epochs * steps_per_epoch)
    return _lambda_lr(optimizer, lambda step: _warmup(step, warmup))


@SCHEDULERS.register(injected=SCHEDULE_INPUTS)
def step(
    optimizer: torch.optim.Optimizer, *, epochs: int, steps_per_epoch: int,
    milestones: list[Annotated[int, Field(gt=0)]] = [10, 20], gamma: PositiveFloat = 0.1,  # noqa: B006
    warmup_epochs: NonNegative = 0.0,
):  # fmt: skip
    """Multiply the learning rate by `gamma` at each milestone epoch."""
    warmup = round(warmup_epochs * steps_per_epoch)
    bounds = sorted(m * steps_per_epoch for m in milestones)
    return _lambda_lr(
        optimizer, lambda s: _warmup(s, warmup) * gamma ** sum(s >= b for b in bounds)
    )


@SCHEDULERS.register(injected=SCHEDULE_INPUTS)
def cosine(
    optimizer: torch.optim.Optimizer, *, epochs: int, steps_per_epoch: int, warmup_epochs: NonNegative = 0.0,
    min_lr_ratio: Annotated[float, Field(ge=0, le=1)] = 0.0,
):  # fmt: skip
    """Linear warmup, then a cosine decay to min_lr_ratio x the base learning rate at the last step."""
    total = max(1, epochs * steps_per_epoch)
    warmup = min(round(warmup_epochs * steps_per_epoch), total - 1)

    def factor(s: int) -> float:
        if s < warmup:
            return _warmup(s, warmup)
        progress = min(1.0, (s - warmup) / max(1, total - warmup))
        return min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return _lambda_lr(optimizer, factor)
