"""Checks 4 and 5, overfit one example and one batch: a model that can learn at all fits a little data.

Both train a copy of the model from its initial weights with the config's optimizer, dropout
off (it would fight the very thing tested) and batch norm in training mode.

One example must reach a loss of about 0 within EXAMPLE_STEPS steps. A forward that ignores
its input fits one example with its biases alone, so the check first feeds a few different
examples and fails when the output is the same for all of them. Failing here points at the
model definition: the output does not depend on the input, a softmax or sigmoid squashes the
logits, a layer gets no gradient; or, when the loss rose, at a learning rate far too high. A loss that
turns NaN or infinite ends the fit and fails it, naming the step and the rate: at the first
step, before any update, the forward or the loss overflows; later, the rate is too high.

One fixed batch must see its loss fall steadily, to a tenth of its start within BATCH_STEPS.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from trainlab.engine.device import Placement
from trainlab.engine.step import training_step
from trainlab.tools.doctor.checks import (
    FAIL, PASS, WARN, Batch, Check, LossFn, OptimizerFactory, base_lr, fmt, fresh_copy, loss_curve_figure,
    non_finite_advice, without_dropout,
)  # fmt: skip

EXAMPLE_STEPS = 200  # most steps for one example; Adam at 1e-3 takes 6 (workshop CNN, CIFAR) to 65 (a 4-channel one, digits)
EXAMPLE_TARGET_LOSS = 0.05  # "about 0": cross-entropy 0.05 puts 95 % of the probability on the right class
BATCH_STEPS = 100  # most steps on one batch
BATCH_TARGET_FRACTION = 0.1  # one batch passes once its loss is below a tenth of where it started
STUCK_FRACTION = 0.9  # ending above 90 % of its start, the loss has not moved: stuck (between that and the target: slow)
SPIKE_FACTOR = 2.0  # a step whose loss is twice the lowest so far is a spike: the rate is on the high side
INPUT_PROBE = 16  # different examples fed together to see whether the output depends on the input


def check_overfit_example(
    model: nn.Module, make_optimizer: OptimizerFactory, loss_fn: LossFn, batch: Batch, placement: Placement
) -> Check:
    """Fit the first example of `batch`; the batch's first INPUT_PROBE examples probe the input dependence."""
    inputs, targets = batch
    model, optimizer = fresh_copy(model, make_optimizer)
    without_dropout(model)
    spread = _output_spread(model, inputs[:INPUT_PROBE], placement)
    evidence = {"output_spread_across_inputs": spread}
    if spread == 0.0:
        advice = ("the forward ignores its input: pass x through the layers (not a constant, a stored tensor or x * 0), "
                  "and look for a layer that blocks everything (all ReLUs dead, a zeroed weight)")  # fmt: skip
        summary = f"the output is the same for {min(len(inputs), INPUT_PROBE)} different inputs"
        return Check("overfit_example", FAIL, summary, advice, evidence)
    repeat = (2, *[1] * (inputs.ndim - 1))  # the example twice: batch norm needs two values per channel in training mode
    example = inputs[:1].repeat(repeat), targets[:1].repeat((2, *[1] * (targets.ndim - 1)))  # a regression's (1, T) too
    losses = _fit(model, optimizer, loss_fn, example, placement, EXAMPLE_STEPS, EXAMPLE_TARGET_LOSS)
    reached = next((step for step, loss in enumerate(losses, 1) if loss < EXAMPLE_TARGET_LOSS), None)
    evidence |= {"losses": losses, "steps": len(losses), "first_loss": losses[0], "final_loss": losses[-1],
                 "target_loss": EXAMPLE_TARGET_LOSS, "steps_to_target": reached, **_non_finite(losses, optimizer)}  # fmt: skip
    outcome = _outcome(losses, reached is not None)
    advice = {
        "reached": "the model can fit one example: forward, loss and gradients are connected",
        "slow": "the loss falls, not to about 0: raise the learning rate, or look for a sigmoid or softmax squashing the logits",
        "diverged": non_finite_advice(len(losses), evidence.get("lr")),
        "rose": "the loss rose on a single example: the learning rate is too high",
        "stuck": "the model cannot fit one example: look for a layer without gradient (a detach, requires_grad=False), "
                 "a softmax or sigmoid squashing the logits, or fewer outputs than classes",
    }[outcome]  # fmt: skip
    summary = _summary(losses, evidence) + ("" if reached or outcome == "diverged" else ", not near 0")
    figures = {"overfit_example": loss_curve_figure(losses, "one example (seen twice per step)", EXAMPLE_TARGET_LOSS)}
    return Check("overfit_example", OUTCOME_STATUS[outcome], summary, advice, evidence, figures)


def check_overfit_batch(
    model: nn.Module, make_optimizer: OptimizerFactory, loss_fn: LossFn, batch: Batch, placement: Placement
) -> Check:
    """Train on one fixed `batch` until its loss is a tenth of its start, for at most BATCH_STEPS steps."""
    model, optimizer = fresh_copy(model, make_optimizer)
    without_dropout(model)
    first = training_step(model, optimizer, loss_fn, *batch, placement).loss.item()
    target = BATCH_TARGET_FRACTION * first
    losses = [first]
    if math.isfinite(first):  # else the first step left NaN weights: nothing more to see
        losses += _fit(model, optimizer, loss_fn, batch, placement, BATCH_STEPS - 1, target)
    spikes = sum(loss > SPIKE_FACTOR * min(losses[:i]) for i, loss in enumerate(losses[1:], 1))
    evidence = {"batch_size": len(batch[1]), "losses": losses, "steps": len(losses), "first_loss": first,
                "final_loss": losses[-1], "target_loss": target, "spikes": spikes, **_non_finite(losses, optimizer)}  # fmt: skip
    outcome = _outcome(losses, losses[-1] < target)
    status = OUTCOME_STATUS[outcome]
    advice = {
        "reached": "the loss falls steadily on one batch: model, loss and optimizer can learn",
        "slow": "the loss falls, slowly: raise the learning rate (the lr check), or look for dead or saturated units (health)",
        "diverged": non_finite_advice(len(losses), evidence.get("lr")),
        "rose": "the loss rose on a batch it sees again and again: the learning rate is too high",
        "stuck": "the loss does not fall on a batch it sees again and again: see the one-example and health checks",
    }[outcome]  # fmt: skip
    summary = _summary(losses, evidence)
    if outcome == "reached" and spikes:
        status, summary = WARN, summary + f", {spikes} spikes on the way"
        advice = "the loss falls, but jumps up on the way: the learning rate is on the high side"
    figures = {"overfit_batch": loss_curve_figure(losses, f"one batch of {len(batch[1])}", target)}
    return Check("overfit_batch", status, summary, advice, evidence, figures)


OUTCOME_STATUS = {"reached": PASS, "slow": WARN, "diverged": FAIL, "rose": FAIL, "stuck": FAIL}


def _non_finite(losses: list[float], optimizer: torch.optim.Optimizer) -> dict[str, float]:
    """The step (1-based) and value of a NaN or infinite loss (the last: the fit stops there), with the rate."""
    if math.isfinite(losses[-1]):
        return {}
    return {"non_finite_step": len(losses), "non_finite_loss": losses[-1], "lr": base_lr(optimizer)}


def _summary(losses: list[float], evidence: dict) -> str:
    """"loss 2.3 -> 0.01 in 40 steps", or where it stopped being finite: "loss 2.3 -> nan at step 7 (lr 10)"."""
    if "non_finite_step" not in evidence:
        return f"loss {fmt(losses[0])} -> {fmt(losses[-1])} in {len(losses)} steps"
    if len(losses) == 1:
        return f"loss {fmt(losses[0])} at the first step, before any update (lr {fmt(evidence['lr'])})"
    return f"loss {fmt(losses[0])} -> {fmt(losses[-1])} at step {len(losses)} (lr {fmt(evidence['lr'])})"


def _outcome(losses: list[float], reached: bool) -> str:
    """What a loss curve on fixed data did: reached its target, fell slowly, diverged, rose, or stayed stuck."""
    first, last = losses[0], losses[-1]
    if not math.isfinite(last):
        return "diverged"
    if reached:
        return "reached"
    if last < STUCK_FRACTION * first:
        return "slow"
    return "rose" if last > first else "stuck"


def _fit(
    model: nn.Module, optimizer: torch.optim.Optimizer, loss_fn: LossFn, batch: Batch, placement: Placement,
    steps: int, stop_below: float,
) -> list[float]:  # fmt: skip
    """The loss of each step on the same batch, until it is below `stop_below` or not finite."""
    losses = []
    for _ in range(steps):
        losses.append(training_step(model, optimizer, loss_fn, *batch, placement).loss.item())
        if losses[-1] < stop_below or not math.isfinite(losses[-1]):
            break
    return losses


@torch.no_grad()
def _output_spread(model: nn.Module, inputs: torch.Tensor, placement: Placement) -> float | None:
    """Largest std of an output across different inputs (0: the output ignores the input); None if they are all alike."""
    if len(inputs) < 2 or inputs.flatten(1).float().std(0).max().item() == 0:
        return None
    with placement.autocast():
        return model(inputs).float().std(0).max().item()
