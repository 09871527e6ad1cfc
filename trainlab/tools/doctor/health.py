"""Check 7, gradient and activation health over a few training steps.

Per layer with a weight matrix (convolutions, linear layers, embeddings; in the order they were defined):
- the gradient norm: vanishing when the smallest layer's is VANISHING_RATIO below the largest
  (the early layers of a deep sigmoid stack learn nothing), exploding past EXPLODING_NORM;
- the update-to-weight ratio |lr * update| / |w| per step: about 1e-3 is healthy (Karpathy's
  rule of thumb); far below, the layer barely moves; far above, one step rewrites it.
Per activation module (nn.ReLU, nn.Sigmoid, nn.Tanh; functional calls are not seen):
- ReLU: the share of dead units, which are never positive for any example or position;
- sigmoid and tanh: the share of saturated outputs, where the slope is under 2 % of its peak.
A step whose loss or gradients are NaN or infinite ends the observation before its optimizer
step (which would spoil the weights) and fails the check, naming the step, the loss, the rate
and the first layer whose output was not finite; the other measures come from the steps before.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import nn

from trainlab.engine.device import Placement
from trainlab.engine.step import training_step
from trainlab.tools.doctor.checks import (
    FAIL, WARN, Batch, Check, LossFn, OptimizerFactory, Problem, fmt, fresh_copy, from_problems, log_scale, new_figure,
    non_finite_advice, seeded,
)  # fmt: skip

HEALTH_STEPS = 10  # training steps observed, each on a new batch
VANISHING_RATIO = 1e-3  # smallest / largest layer gradient norm: below, the early layers barely get a signal
EXPLODING_NORM = 100.0  # a layer gradient norm above this (a loss of order 1 on normalised inputs gives 0.01-10)
UPDATE_RATIO_BAND = (1e-5, 0.3)  # |update| / |w| per step: ~1e-3 healthy; Adam's first steps reach ~0.1 on wide layers
DEAD_WARN, DEAD_FAIL = 0.25, 0.5  # share of dead ReLU units in a layer
SATURATION = 0.99  # |tanh| or |2 sigmoid - 1| above this: the slope is below 2 % (tanh) / 0.5 % (sigmoid) of its peak
SATURATED_WARN, SATURATED_FAIL = 0.2, 0.5  # share of saturated outputs in a layer
_SQUASHING = (nn.Sigmoid, nn.Tanh)


@dataclass
class LayerStats:
    name: str  # "3 Conv2d"
    grad_norms: list[float] = field(default_factory=list)  # one per step
    update_ratios: list[float] = field(default_factory=list)


@dataclass
class ActivationStats:
    name: str  # "4 ReLU"
    kind: str  # "relu" or "squashing"
    # ReLU: unit count -> (units,) bool, positive at least once; keyed by the count because one module may
    # serve several places of different widths (a residual block's single nn.ReLU)
    alive: dict[int, torch.Tensor] = field(default_factory=dict)
    saturated: list[float] = field(default_factory=list)  # share per call (sigmoid, tanh)

    def observe(self, module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        out = output.detach().float()
        if not out.isfinite().all():  # NaN is never positive nor saturated: it would read as dead units
            return
        if self.kind == "relu":
            # (B, units, ...) -> (units, B * positions): a unit is a feature, or a channel at every position
            units = out.transpose(0, 1).reshape(out.shape[1], -1) if out.ndim > 1 else out.view(1, -1)
            positive = (units > 0).any(1)
            count = len(positive)
            self.alive[count] = self.alive[count] | positive if count in self.alive else positive
        else:
            centred = 2 * out - 1 if isinstance(module, nn.Sigmoid) else out  # sigmoid (0, 1) -> (-1, 1), like tanh
            self.saturated.append((centred.abs() > SATURATION).float().mean().item())

    @property
    def share(self) -> float:
        """Dead share (ReLU) or saturated share (sigmoid, tanh)."""
        if self.kind == "relu":
            units = sum(len(alive) for alive in self.alive.values())
            return 1 - sum(int(alive.sum()) for alive in self.alive.values()) / units if units else 0.0
        return float(np.mean(self.saturated)) if self.saturated else 0.0


def check_health(
    model: nn.Module, make_optimizer: OptimizerFactory, loss_fn: LossFn, batches: Iterable[Batch], placement: Placement,
    seed: int,
) -> Check:  # fmt: skip
    """Train a copy of `model` for a few steps on `batches` and measure each layer."""
    model, optimizer = fresh_copy(model, make_optimizer)
    layers = {module: LayerStats(f"{name} {type(module).__name__}") for name, module in model.named_modules()
              if isinstance(getattr(module, "weight", None), nn.Parameter) and module.weight.ndim >= 2}  # fmt: skip
    activations = {
        module: ActivationStats(f"{name} {type(module).__name__}", "relu" if isinstance(module, nn.ReLU) else "squashing")
        for name, module in model.named_modules() if isinstance(module, (nn.ReLU, *_SQUASHING))
    }  # fmt: skip
    first_non_finite = FirstNonFiniteOutput(model)
    hooks = [module.register_forward_hook(stats.observe) for module, stats in activations.items()]
    steps, broken = 0, None
    try:
        with seeded(seed):
            for step, (inputs, targets) in zip(range(1, HEALTH_STEPS + 1), batches):
                first_non_finite.name = None
                broken = _observed_step(model, optimizer, loss_fn, inputs, targets, placement, layers)
                if broken is not None:
                    broken = {"step": step, **broken, "first_non_finite_output": first_non_finite.name}
                    break
                steps = step
    finally:
        for hook in [*hooks, *first_non_finite.hooks]:
            hook.remove()
    return _judge(list(layers.values()), list(activations.values()), steps, broken)


class FirstNonFiniteOutput:
    """Forward hooks on every layer without children, and on the model: the first of them, in the order they run,
    whose output holds a NaN or an infinity (None when none did); reset `name` before each forward."""

    def __init__(self, model: nn.Module):
        self.name: str | None = None
        self.hooks = [
            module.register_forward_hook(functools.partial(self._observe, f"{name} {type(module).__name__}" if name
                                                           else "the model's forward, outside its layers"))
            for name, module in model.named_modules() if module is model or not any(module.children())
        ]  # fmt: skip

    def _observe(self, name: str, module: nn.Module, inputs: tuple, output: Any) -> None:
        floating = isinstance(output, torch.Tensor) and output.is_floating_point()
        if self.name is None and floating and not output.detach().isfinite().all():
            self.name = name


def _observed_step(
    model: nn.Module, optimizer: torch.optim.Optimizer, loss_fn: LossFn, inputs: torch.Tensor, targets: torch.Tensor,
    placement: Placement, layers: dict[nn.Module, LayerStats],
) -> dict[str, Any] | None:  # fmt: skip
    """A training step that records each layer's gradient norm and update-to-weight ratio.

    A NaN or infinite loss or gradient stops it before the optimizer step: what was not finite, else None."""
    broken: dict[str, Any] = {}
    before: dict[nn.Module, torch.Tensor] = {}

    def look(loss: torch.Tensor) -> bool:
        norms = {module: module.weight.grad.float().norm().item() if module.weight.grad is not None else 0.0
                 for module in layers}  # fmt: skip
        not_finite = [layers[module].name for module, norm in norms.items() if not math.isfinite(norm)]
        if not_finite or not torch.isfinite(loss):
            broken.update(loss=loss.item(), lr=optimizer.param_groups[0]["lr"], non_finite_gradients=not_finite)
            return False
        for module, stats in layers.items():
            stats.grad_norms.append(norms[module])
            before[module] = module.weight.detach().float().clone()
        return True

    if not training_step(model, optimizer, loss_fn, inputs, targets, placement, after_backward=look).stepped:
        return broken
    for module, stats in layers.items():
        update = (module.weight.detach().float() - before[module]).norm()
        stats.update_ratios.append((update / before[module].norm().clamp_min(1e-12)).item())
    return None


def _judge(
    layers: list[LayerStats], activations: list[ActivationStats], steps: int, broken: dict[str, Any] | None
) -> Check:  # fmt: skip
    """The check from the `steps` finite steps measured; `broken`: the step after them that was not finite."""
    grad = {s.name: float(np.mean(s.grad_norms)) for s in layers if s.grad_norms}
    update = {s.name: float(np.mean(s.update_ratios)) for s in layers if s.update_ratios}
    evidence = {"steps": steps, "grad_norm": grad, "update_ratio": update,
                "dead_relu_share": {s.name: s.share for s in activations if s.kind == "relu"},
                "saturated_share": {s.name: s.share for s in activations if s.kind == "squashing"},
                **({"non_finite": broken} if broken else {})}  # fmt: skip
    problems = [*_non_finite_problems(broken), *_gradient_problems(grad), *_activation_problems(activations),
                *_update_problems(update)]  # fmt: skip
    if not layers:
        summary = "no layer with a weight matrix"
    elif not grad:
        summary = f"{len(layers)} layers: no finite step to measure"
    else:
        norms, ratios = grad.values(), update.values()
        summary = (f"{len(layers)} layers: gradient norms {fmt(min(norms))}..{fmt(max(norms))}, "
                   f"update/weight {fmt(min(ratios))}..{fmt(max(ratios))}")  # fmt: skip
    if activations:
        summary += f", dead or saturated units {max(s.share for s in activations):.0%} at most"
    healthy = (summary, "gradients reach every layer, activations are alive, updates are in proportion to the weights")
    check = from_problems("health", problems, evidence, healthy)
    check.figures["health"] = health_figure(layers, activations, broken)
    return check


def _non_finite_problems(broken: dict[str, Any] | None) -> list[Problem]:
    """A step whose loss or gradients were NaN or infinite: where, at which rate, and the first layer to overflow."""
    if broken is None:
        return []
    loss, layers, first = broken["loss"], broken["non_finite_gradients"], broken["first_non_finite_output"]
    parts = [] if math.isfinite(loss) else [f"the loss ({fmt(loss)})"]
    parts += [f"the gradients of {len(layers)} layers"] if layers else []
    what = f"{' and '.join(parts)} not finite at step {broken['step']} (lr {fmt(broken['lr'])})"
    if math.isfinite(loss):
        what += f", loss {fmt(loss)}"
    if first:
        what += f"; the first non-finite output: {first}"
    return [Problem(FAIL, what, non_finite_advice(broken["step"], broken["lr"]))]


def _gradient_problems(grad: dict[str, float]) -> list[Problem]:
    """Exploding, absent or vanishing gradients (of finite steps): the first that applies."""
    if not grad:
        return []
    low, high = min(grad, key=grad.get), max(grad, key=grad.get)
    if grad[high] > EXPLODING_NORM:
        advice = "clip the gradient norm (regularization.clip_grad_norm=1), lower the rate, add batch norm"
        return [Problem(FAIL, f"exploding gradients ({high}: {fmt(grad[high])})", advice)]
    if grad[high] == 0:
        advice = "look for a detach, requires_grad=False, or a layer that blocks everything (all ReLUs dead)"
        return [Problem(FAIL, "no gradient reaches any layer's weights", advice)]
    if grad[low] < VANISHING_RATIO * grad[high]:
        advice = "ReLU instead of sigmoid/tanh in hidden layers, Kaiming or Xavier init, batch norm, residual connections"
        return [Problem(FAIL, f"vanishing gradients ({low}: {fmt(grad[low])} vs {high}: {fmt(grad[high])})", advice)]
    return []


def _activation_problems(activations: list[ActivationStats]) -> list[Problem]:
    """The worst layer for dead ReLUs and the worst for saturated sigmoid/tanh units."""
    problems = []
    for kind, warn_at, fail_at, what, advice in (
        ("relu", DEAD_WARN, DEAD_FAIL, "dead ReLUs",
         "lower the learning rate, use Kaiming init, or LeakyReLU/ELU; check the input normalisation"),
        ("squashing", SATURATED_WARN, SATURATED_FAIL, "saturated sigmoid/tanh units",
         "ReLU in hidden layers, a smaller init scale (Xavier), normalised inputs, or batch norm before the activation"),
    ):  # fmt: skip
        layer = max((s for s in activations if s.kind == kind), key=lambda s: s.share, default=None)
        if layer is not None and layer.share >= warn_at:
            status = FAIL if layer.share >= fail_at else WARN
            problems.append(Problem(status, f"{layer.share:.0%} {what} in {layer.name}", advice))
    return problems


def _update_problems(update: dict[str, float]) -> list[Problem]:
    """The layer whose update-to-weight ratio lies farthest outside UPDATE_RATIO_BAND, if any does."""
    low, high = UPDATE_RATIO_BAND
    outside = {name: r for name, r in update.items() if not low <= r <= high}
    if not outside:
        return []
    name = max(outside, key=lambda n: abs(math.log10(max(outside[n], 1e-30)) + 3))  # the farthest from 1e-3
    direction = "too large: lower the learning rate" if outside[name] > high else "too small: raise the learning rate"
    return [Problem(WARN, f"update/weight {fmt(outside[name])} in {name}", f"per step, about 1e-3 is healthy; {direction}")]


def health_figure(
    layers: list[LayerStats], activations: list[ActivationStats], broken: dict[str, Any] | None = None
) -> Figure:  # fmt: skip
    """One panel per metric, one bar per layer: gradient norm, update-to-weight ratio, dead or saturated share.

    The bars are the means over the finite steps; a layer without any is left out, and a title says where it broke."""
    fig = new_figure(12, 4)
    grad_ax, update_ax, act_ax = fig.subplots(1, 3)
    measured = [s for s in layers if s.grad_norms]
    names = [s.name for s in measured]
    grads = [float(np.mean(s.grad_norms)) for s in measured]
    updates = [float(np.mean(s.update_ratios)) for s in measured]
    updates = [v if math.isfinite(v) else math.nan for v in updates]  # an overflowing step: no bar (no infinite limit)
    if broken is not None:
        before = broken["step"] - 1
        shown = f"means of the {before} step{'s' * (before != 1)} before it" if measured else "no finite step to show"
        fig.suptitle(f"not finite at step {broken['step']} (loss {fmt(broken['loss'])}): {shown}", color="tab:red")
    grad_ax.barh(names, grads, color="tab:blue")
    grad_ax.set_title("gradient norm per layer")
    update_ax.barh(names, updates, color="tab:purple")
    update_ax.axvline(1e-3, color="tab:green", linestyle="--", label="1e-3 (healthy)")
    update_ax.axvspan(*UPDATE_RATIO_BAND, color="tab:green", alpha=0.08)
    update_ax.set_title("update / weight per step")
    update_ax.legend(fontsize=8)
    for ax, values in ((grad_ax, grads), (update_ax, [*updates, *UPDATE_RATIO_BAND])):
        log_scale(ax, "x", values)  # on the finite positive values; linear without any
        if layers and not measured:
            ax.text(0.5, 0.5, "no finite step", transform=ax.transAxes, ha="center", color="tab:red")
        ax.invert_yaxis()  # the first layer on top
        ax.grid(alpha=0.3, axis="x")
    act_names = [s.name for s in activations]
    colors = ["tab:orange" if s.kind == "relu" else "tab:red" for s in activations]
    act_ax.barh(act_names, [s.share for s in activations], color=colors)
    act_ax.axvline(DEAD_WARN, color="tab:orange", linestyle=":", linewidth=1, label=f"dead: warn at {DEAD_WARN:.0%}")
    act_ax.axvline(SATURATED_WARN, color="tab:red", linestyle=":", linewidth=1,
                   label=f"saturated: warn at {SATURATED_WARN:.0%}")  # fmt: skip
    act_ax.set_xlim(0, 1)
    act_ax.invert_yaxis()
    act_ax.set_title("dead ReLU / saturated share")
    act_ax.legend(fontsize=8)
    act_ax.grid(alpha=0.3, axis="x")
    for ax in (grad_ax, update_ax, act_ax):
        ax.tick_params(axis="y", labelsize=8)
    return fig
