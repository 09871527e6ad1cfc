"""Registered optimizers and learning-rate schedules.

Schedules are multipliers of the base learning rate as a function of the step, so
they step once per batch and the learning rate can be logged at every step.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable
from typing import Annotated, Literal

import torch
from pydantic import Field

from trainlab.errors import ConfigNote
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
    eps: PositiveFloat = 1e-8, amsgrad: bool = False, decoupled_weight_decay: bool = False,
):  # fmt: skip
    """Adam; weight_decay is an L2 penalty added to the gradient, or decoupled from it (= AdamW) when asked."""
    return torch.optim.Adam(
        params, lr=lr, betas=betas, weight_decay=weight_decay, eps=eps, amsgrad=amsgrad,
        decoupled_weight_decay=decoupled_weight_decay,
    )  # fmt: skip


@OPTIMIZERS.register(injected=("params",))
def adamw(
    params: Params, *, lr: PositiveFloat = 0.001, betas: Betas = (0.9, 0.999), weight_decay: NonNegative = 0.01,
    eps: PositiveFloat = 1e-8, amsgrad: bool = False,
):  # fmt: skip
    """AdamW: Adam with decoupled weight decay."""
    return torch.optim.AdamW(params, lr=lr, betas=betas, weight_decay=weight_decay, eps=eps, amsgrad=amsgrad)


# ---------------------------------------------------------------------------------------- parameter groups
#
# Fine-tuning recipes treat parameters differently: no weight decay on biases and normalisation weights
# (they set scales and offsets, not features), and layer-wise learning-rate decay: a layer k levels below
# the top learns at layer_decay**k times the rate, so the pretrained lower layers move least.

NoDecay = Literal["bias", "norm"]
_NORMS = (torch.nn.LayerNorm, torch.nn.GroupNorm, torch.nn.modules.batchnorm._BatchNorm, torch.nn.RMSNorm)


def parameter_groups(
    model: torch.nn.Module, *, no_decay: Iterable[NoDecay] = (), layer_decay: float = 1.0,
    backbone: Iterable[torch.nn.Parameter] = (), backbone_lr_factor: float = 1.0, norm_lr_factor: float = 1.0,
) -> list[dict]:  # fmt: skip
    """The trainable parameters as optimizer groups. `no_decay` names the kinds that get weight_decay 0 (biases,
    normalisation weights); `layer_decay` < 1 needs the model's `layer_groups()` (input first; parameters in
    none of them form the top level); the `backbone` parameters (a pretrained backbone's, kept even while
    frozen, so that unfreezing needs no new optimizer) get `backbone_lr_factor` times the rate; normalisation
    layers' parameters get `norm_lr_factor` times it and their weight decay divided by it (airbench's bias scaler:
    the decay per step stays). Each group's `lr_scale` and `decay_scale` are applied by `scale_learning_rates`
    once the optimizer holds its base rate."""
    no_decay = set(no_decay)
    norm_params = {id(p) for m in model.modules() if isinstance(m, _NORMS) for p in m.parameters(recurse=False)}
    in_backbone = {id(p) for p in backbone}

    def exempt(name: str, param: torch.nn.Parameter) -> bool:
        return ("bias" in no_decay and name.endswith("bias")) or ("norm" in no_decay and id(param) in norm_params)

    if layer_decay == 1.0:
        levels = [[p for p in model.parameters()]]
    elif hasattr(model, "layer_groups"):
        levels = model.layer_groups()
        grouped = {id(p) for params in levels for p in params}
        rest = [p for p in model.parameters() if id(p) not in grouped]
        levels += [rest] if rest else []  # what the layers leave out (a head) is the top level
    else:
        raise ValueError(f"layer_decay needs a model made of layers ({type(model).__name__} has no layer_groups); leave it at 1")
    depth = {id(p): len(levels) - 1 - level for level, params in enumerate(levels) for p in params}
    groups: dict[tuple[bool, int, bool, bool], dict] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad and id(param) not in in_backbone:
            continue  # frozen for good: the optimizer never sees it
        key = (id(param) in in_backbone, depth.get(id(param), 0), exempt(name, param),
               norm_lr_factor != 1.0 and id(param) in norm_params)  # fmt: skip
        norm = norm_lr_factor if key[3] else 1.0
        scale = layer_decay ** key[1] * (backbone_lr_factor if key[0] else 1.0) * norm
        group = groups.setdefault(key, {"params": [], "lr_scale": scale, "decay_scale": 1 / norm})
        if key[2]:
            group["weight_decay"] = 0.0
        group["params"].append(param)
    return [groups[key] for key in sorted(groups)]  # the head's top layer first: metrics.csv logs the first group's rate


def scale_learning_rates(optimizer: torch.optim.Optimizer) -> torch.optim.Optimizer:
    """Multiply each group's rate by its `lr_scale` (layer-wise decay), before a schedule records the base rates."""
    for group in optimizer.param_groups:
        group["lr"] *= group.get("lr_scale", 1.0)
        group["weight_decay"] = group.get("weight_decay", 0.0) * group.get("decay_scale", 1.0)
    return optimizer


# ---------------------------------------------------------------------------------------- schedules
#
# Every schedule is a factor of the base learning rate as a function of the optimizer step,
# applied by LambdaLR and stepped after every batch. `interval: epoch` holds the factor of the
# epoch's first step through the epoch. An optional linear warmup, in epochs or in steps,
# multiplies the first steps by (step + 1) / warmup. A warmup not shorter than the training
# (a preset's `warmup_epochs: 1` run with `epochs=1`) is cut to WARMUP_FRACTION of it, with a note.

SCHEDULE_INPUTS = ("optimizer", "epochs", "steps_per_epoch")
Interval = Literal["step", "epoch"]
WARMUP_FRACTION = 0.1


def warmup_steps_for(epochs: int, steps_per_epoch: int, warmup_epochs: float, warmup_steps: int) -> int:
    """The warmup in optimizer steps; one not shorter than the training is cut to WARMUP_FRACTION of it,
    with a ConfigNote naming the setting and the steps used."""
    if warmup_epochs and warmup_steps:
        raise ValueError(
            f"scheduler.warmup_epochs={warmup_epochs:g} and scheduler.warmup_steps={warmup_steps} both set the warmup; "
            "set one of them to 0"
        )
    total = epochs * steps_per_epoch
    warmup = warmup_steps or round(warmup_epochs * steps_per_epoch)
    if warmup < total:
        return warmup
    shortened = round(WARMUP_FRACTION * total)
    given = f"scheduler.warmup_steps={warmup_steps}" if warmup_steps else f"scheduler.warmup_epochs={warmup_epochs:g} ({warmup} steps)"
    used = f"warming up over {shortened} step{'s' * (shortened != 1)} ({WARMUP_FRACTION:.0%} of it)" if shortened else "no warmup"
    warnings.warn(
        f"{given} is not shorter than the training ({epochs} epoch{'s' * (epochs != 1)} = {total} steps): {used} "
        "instead; set scheduler.warmup_steps to choose",
        ConfigNote,
    )
    return shortened


def _schedule(
    optimizer: torch.optim.Optimizer, epochs: int, steps_per_epoch: int, warmup_epochs: float, warmup_steps: int,
    interval: str, decay: Callable[[int, int, int], float],
) -> torch.optim.lr_scheduler.LambdaLR:  # fmt: skip
    """LambdaLR from `decay(step, warmup, total)`, the factor after warmup."""
    total = epochs * steps_per_epoch
    warmup = warmup_steps_for(epochs, steps_per_epoch, warmup_epochs, warmup_steps)

    def factor(step: int) -> float:
        if interval == "epoch":
            step -= step % steps_per_epoch
        if step < warmup:
            return (step + 1) / warmup
        return decay(step, warmup, total)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


@SCHEDULERS.register(injected=SCHEDULE_INPUTS)
def constant(
    optimizer: torch.optim.Optimizer, *, epochs: int, steps_per_epoch: int, warmup_epochs: NonNegative = 0.0,
    warmup_steps: Annotated[int, Field(ge=0)] = 0, interval: Interval = "step",
):  # fmt: skip
    """The base learning rate throughout, after an optional linear warmup."""
    return _schedule(optimizer, epochs, steps_per_epoch, warmup_epochs, warmup_steps, interval, lambda s, w, t: 1.0)


@SCHEDULERS.register(injected=SCHEDULE_INPUTS)
def step(
    optimizer: torch.optim.Optimizer, *, epochs: int, steps_per_epoch: int,
    milestones: list[Annotated[int, Field(gt=0)]] = [10, 20], gamma: PositiveFloat = 0.1,  # noqa: B006
    warmup_epochs: NonNegative = 0.0, warmup_steps: Annotated[int, Field(ge=0)] = 0, interval: Interval = "step",
):  # fmt: skip
    """Multiply the learning rate by `gamma` at each milestone epoch."""
    bounds = sorted(m * steps_per_epoch for m in milestones)
    return _schedule(
        optimizer, epochs, steps_per_epoch, warmup_epochs, warmup_steps, interval,
        lambda s, w, t: gamma ** sum(s >= b for b in bounds),
    )  # fmt: skip


@SCHEDULERS.register(injected=SCHEDULE_INPUTS)
def cosine(
    optimizer: torch.optim.Optimizer, *, epochs: int, steps_per_epoch: int, warmup_epochs: NonNegative = 0.0,
    warmup_steps: Annotated[int, Field(ge=0)] = 0, interval: Interval = "step",
    min_lr_ratio: Annotated[float, Field(ge=0, le=1)] = 0.0,
):  # fmt: skip
    """Cosine decay from the base learning rate to min_lr_ratio x it at the last step."""

    def decay(s: int, w: int, t: int) -> float:
        progress = (s - w) / max(1, t - 1 - w)
        return min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return _schedule(optimizer, epochs, steps_per_epoch, warmup_epochs, warmup_steps, interval, decay)


@SCHEDULERS.register(injected=SCHEDULE_INPUTS)
def linear(
    optimizer: torch.optim.Optimizer, *, epochs: int, steps_per_epoch: int, warmup_epochs: NonNegative = 0.0,
    warmup_steps: Annotated[int, Field(ge=0)] = 0, interval: Interval = "step",
    end_ratio: Annotated[float, Field(ge=0, le=1)] = 0.0,
):  # fmt: skip
    """Linear decay from the base learning rate to end_ratio x it at the last step."""

    def decay(s: int, w: int, t: int) -> float:
        return 1 - (1 - end_ratio) * min(1.0, (s - w) / max(1, t - 1 - w))

    return _schedule(optimizer, epochs, steps_per_epoch, warmup_epochs, warmup_steps, interval, decay)


@SCHEDULERS.register(injected=SCHEDULE_INPUTS)
def inverse_sqrt(
    optimizer: torch.optim.Optimizer, *, epochs: int, steps_per_epoch: int, warmup_epochs: NonNegative = 0.0,
    warmup_steps: Annotated[int, Field(ge=0)] = 0, interval: Interval = "step",
):  # fmt: skip
    """The transformer schedule: after the warmup, the rate falls as sqrt(warmup / step)."""
    return _schedule(
        optimizer, epochs, steps_per_epoch, warmup_epochs, warmup_steps, interval,
        lambda s, w, t: math.sqrt(max(1, w) / max(1, s)),
    )  # fmt: skip


@SCHEDULERS.register(injected=SCHEDULE_INPUTS)
def one_cycle(
    optimizer: torch.optim.Optimizer, *, epochs: int, steps_per_epoch: int,
    peak_at: Annotated[float, Field(gt=0, lt=1)] = 0.25, start_ratio: Annotated[float, Field(ge=0, le=1)] = 0.04,
    end_ratio: Annotated[float, Field(ge=0, le=1)] = 0.0, anneal: Literal["linear", "cosine"] = "cosine",
    interval: Interval = "step",
):  # fmt: skip
    """One cycle (Smith 2018): from start_ratio x the base rate up to it (linearly) at peak_at of the training, then
    down to end_ratio x it at the last step, linearly or along a cosine. airbench94's triangle: peak_at 0.23,
    start_ratio 0.2, end_ratio 0.07, anneal linear."""
    total = epochs * steps_per_epoch
    peak = max(1, round(peak_at * total))

    def factor(step: int) -> float:
        if interval == "epoch":
            step -= step % steps_per_epoch
        if step < peak:
            return start_ratio + (1 - start_ratio) * step / peak
        progress = min(1.0, (step - peak) / max(1, total - 1 - peak))
        down = progress if anneal == "linear" else 0.5 * (1 - math.cos(math.pi * progress))
        return 1 - (1 - end_ratio) * down

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
