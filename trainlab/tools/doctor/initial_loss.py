"""Check 1, the initial loss: an untrained model should score what a guess scores.

Small random weights give logits close to one another, so cross-entropy starts near ln C for
C classes, whatever the class balance; a model whose last bias starts at the log class prior
starts near the prior's entropy instead, the best any constant guess can do. Both references
are computed by the loss function itself on the same targets (zero logits; log-prior logits),
so the check holds for every registered loss: bce starts near ln 2, mse on the softmax near
(C - 1) / C². A loss far above the references means logits that start large (an init scale,
unnormalised inputs); far below, a task the untrained model already solves (labels leaking
into the inputs). Outputs that are already probabilities (rows >= 0 summing to 1) mean a
softmax before a loss that takes its own: the loss starts right but can never get small.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from trainlab.engine.device import Placement
from trainlab.tools.doctor.checks import FAIL, PASS, WARN, Batch, Check, LossFn, fmt

INITIAL_BATCHES = 4  # training batches measured: ~500 CIFAR images, the mean loss settles within a few %
WARN_RATIO = 1.25  # 25 % beyond the guesses: the logits start larger than "small" (or the model is already learning)
FAIL_RATIO = 2.0  # twice the uniform guess, or half the prior guess: not an untrained model's loss
PROBABILITY_TOLERANCE = 1e-3  # rows >= 0 that sum to 1 within this are probabilities, not logits


@torch.no_grad()
def check_initial_loss(
    model: nn.Module, loss_fn: LossFn, batches: list[Batch], num_classes: int, placement: Placement,
    class_counts: torch.Tensor | None = None, task: str = "classification",
) -> Check:  # fmt: skip
    """The untrained model's loss on `batches` against the loss of a uniform and of a class-prior guess.

    `num_classes` is the model's output width (a binary task's one logit, a regression's target columns);
    `class_counts` (C,) are the training labels per class; by default they are counted in `batches`.
    A binary task's references are the even logit (ln 2 for bce) and the logit of the positive class's prior
    (the prior's entropy); a regression's, the guess of the training mean: for mse on the standardised
    targets, their variance (1)."""
    model = copy.deepcopy(model).train()  # as the first step sees it (batch statistics); the model's own buffers stay
    logits, targets = [], []
    for inputs, batch_targets in batches:
        with placement.autocast():
            logits.append(model(inputs).float())  # (B, C)
        targets.append(batch_targets)
    logits, targets = torch.cat(logits), torch.cat(targets)
    outputs = logits.shape[1] if logits.ndim == 2 else None
    if outputs != num_classes:
        shape = list(logits.shape[1:])
        what = {"binary": "one logit (binary task)", "regression": f"{num_classes} outputs, one per target"}.get(task, f"{num_classes} outputs, one logit per class")
        return Check("initial_loss", FAIL, f"the model gives outputs of shape {tuple(shape)}; the task needs {num_classes}",
                     f"end the model with a layer of {what}",
                     {"output_shape": shape, "num_classes": num_classes})  # fmt: skip
    try:
        loss = loss_fn(logits, targets).item()
    except (IndexError, RuntimeError) as e:  # a label outside [0, C) fails inside the loss
        return Check("initial_loss", FAIL, f"the loss cannot be computed: {str(e).splitlines()[0]}",
                     f"labels must be integers 0..{num_classes - 1}; check the dataset's labels and the number of classes",
                     {"error": str(e), "label_min": int(targets.min()), "label_max": int(targets.max())})  # fmt: skip

    uniform_guess = loss_fn(torch.zeros_like(logits), targets).item()  # a regression: the standardised mean
    if task == "regression":
        prior_guess = uniform_guess
    else:
        counts = class_counts if class_counts is not None else torch.bincount(targets.cpu(), minlength=max(num_classes, 2))
        prior = counts.double() / counts.sum()
        if task == "binary":  # the positive class's log-odds
            prior_logits = (prior[1].clamp(1e-12, 1 - 1e-12).logit()).float().to(logits.device).expand_as(logits)
        else:
            prior_logits = prior.clamp_min(1e-12).log().float().to(logits.device).expand_as(logits)  # (C,) -> (B, C)
        prior_guess = min(loss_fn(prior_logits, targets).item(), uniform_guess)
    probabilities = task == "classification" and bool((logits >= 0).all() and ((logits.sum(1) - 1).abs() <= PROBABILITY_TOLERANCE).all())
    ratio = _off_by(loss, prior_guess, uniform_guess)
    non_finite = int((~logits.isfinite()).sum())
    evidence = {
        "loss": loss, "uniform_guess": uniform_guess, "prior_guess": prior_guess, "off_by": ratio,
        "logit_std": logits.std().item(), "outputs_are_probabilities": probabilities, "examples": len(targets),
        "non_finite_outputs": non_finite, "outputs": logits.numel(),
    }  # fmt: skip
    summary = f"loss {fmt(loss)}, expected {fmt(uniform_guess)}"
    if task == "regression":
        summary += " (guessing the training mean)"
    elif prior_guess < uniform_guess * 0.99:
        summary += f" (class-prior guess {fmt(prior_guess)}{', the entropy of the prior' if task == 'binary' else ''})"

    if non_finite:
        return Check("initial_loss", FAIL, summary + f"; {non_finite:,} of {logits.numel():,} outputs are NaN or infinite",
                     "the untrained model's outputs are not finite: look in the forward for an overflow (an exp, a log "
                     "of 0, a division) and at the initialisation scale; the data check says whether the inputs are "
                     "finite", evidence)  # fmt: skip
    if not math.isfinite(loss):
        return Check("initial_loss", FAIL, summary, "the loss is not finite before any training: look for NaN or infinite "
                     "inputs (the data check) and for a layer that overflows (a huge init scale)", evidence)  # fmt: skip
    if probabilities:
        return Check("initial_loss", FAIL, summary + "; the outputs are probabilities",
                     "the model ends in a softmax, but the loss applies its own: return the logits (drop the last softmax), "
                     "or the loss can never get small", evidence)  # fmt: skip
    status = FAIL if ratio >= FAIL_RATIO else WARN if ratio >= WARN_RATIO else PASS
    if status == PASS:
        advice = "the untrained model guesses evenly, as it should"
    elif loss > uniform_guess:
        advice = (f"the untrained model is confidently wrong (logit std {fmt(evidence['logit_std'])}): scale the last "
                  "layer's init down (init=xavier_uniform, or zero the last layer), check the input normalisation and "
                  "that the labels match the classes")  # fmt: skip
    else:
        advice = ("the untrained model scores better than any guess: check that the labels cannot leak into the inputs "
                  "and that the model is not already trained")  # fmt: skip
    return Check("initial_loss", status, summary, advice, evidence)


def _off_by(loss: float, low: float, high: float) -> float:
    """How far `loss` lies outside [low, high], as a factor >= 1 (1 inside; inf for a zero or non-finite loss)."""
    if not math.isfinite(loss):
        return math.inf
    if loss > high:
        return loss / high
    if loss < low:
        return low / loss if loss > 0 else math.inf
    return 1.0
