"""Scores of each input position for a model's prediction, by five methods.

Attention methods read the attention weights (B, heads, S, S) of models whose forward takes
`return_attention=True`; they look at one query: the [CLS] position (`attention_query == "first"`) or
the mean of the non-padding positions ("mean", for mean-pooled models):

    cls       the last layer's attention from the query, averaged over heads
    rollout   Abnar & Zuidema (2020): per layer 0.5·A + 0.5·I (A averaged over heads), rows renormalised,
              multiplied from the first layer up; the query's row
    gradient  Chefer et al. (2021): per layer Ā = mean over heads of (∂logit/∂A ⊙ A)⁺, R ← R + Ā·R from
              R = I; the query's row of R - I (class-specific)

Gradient methods attribute to the output (B, T, E) of the model's `token_embedding` layer (Captum):

    grad_input  gradient × input, summed over the embedding
    ig          integrated gradients from the padding embedding (the baseline) in `ig_steps` steps

All give (B, T) scores aligned with the ids, 0 at padding; gradients are taken for the class `targets`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from trainlab.errors import UsageError

ATTENTION_METHODS = ("cls", "rollout", "gradient")
GRADIENT_METHODS = ("grad_input", "ig")
METHODS = ATTENTION_METHODS + GRADIENT_METHODS
IG_STEPS = 32


def methods_for(model: nn.Module) -> list[str]:
    """The methods a model supports: attention ones when it returns attention, gradient ones when it has a token embedding."""
    found = []
    if hasattr(model, "attention_query"):
        found += ATTENTION_METHODS
    if hasattr(model, "token_embedding"):
        found += GRADIENT_METHODS
    return found


def check_method(model: nn.Module, method: str, name: str) -> None:
    """A UsageError (exit 2) when `model` (called `name`) cannot be explained by `method`."""
    available = methods_for(model)
    if not available:
        raise UsageError(f"model {name} has neither attention weights nor a token embedding: explain has no path into it")
    if method not in available:
        raise UsageError(f"method {method!r} does not apply to model {name}; it supports: {', '.join(available)}")


def attribute(model: nn.Module, method: str, ids: Tensor, targets: Tensor, pad_id: int, *, ig_steps: int = IG_STEPS) -> Tensor:
    """(B, T) float32 scores of each position of `ids` (B, T) for the class `targets` (B,), in fp32, model in eval mode."""
    model.eval()
    padding = ids == pad_id  # (B, T)
    if method in ATTENTION_METHODS:
        scores = _ATTENTION[method](model, ids, targets, padding)
    elif method == "grad_input":
        scores = _captum_layer("LayerGradientXActivation", model)(ids, target=targets).sum(-1)  # (B, T, E) -> (B, T)
    elif method == "ig":
        baseline = torch.full_like(ids, pad_id)
        ig = _captum_layer("LayerIntegratedGradients", model)
        scores = ig.attribute(ids, baselines=baseline, target=targets, n_steps=ig_steps, internal_batch_size=len(ids) * 8).sum(-1)
    else:
        raise UsageError(f"unknown method {method!r}; expected one of: {', '.join(METHODS)}")
    return scores.detach().float().masked_fill(padding, 0.0)


def _captum_layer(kind: str, model: nn.Module):
    """A Captum layer attribution of the class logits on the model's token embedding."""
    try:
        import captum.attr
    except ImportError:
        raise UsageError('gradient x input and integrated gradients need Captum: pip install -e ".[explain]"') from None
    method = getattr(captum.attr, kind)(lambda ids: model(ids).float(), model.token_embedding)
    return method.attribute if kind == "LayerGradientXActivation" else method


def _query_row(matrix: Tensor, model: nn.Module, padding: Tensor) -> Tensor:
    """(B, S, S) -> (B, T): the query's row (the first position, or the mean over non-padding queries),
    at the positions of the ids."""
    offset = model.attention_offset
    keep = torch.cat([padding.new_zeros(len(padding), offset), ~padding], 1).to(matrix.dtype)  # (B, S), 1 at real positions
    if model.attention_query == "first":
        row = matrix[:, 0]
    else:
        row = (matrix * keep.unsqueeze(-1)).sum(1) / keep.sum(1, keepdim=True)  # mean over the real query rows
    return row[:, offset:]


def _attentions(model: nn.Module, ids: Tensor) -> tuple[Tensor, list[Tensor]]:
    logits, attentions = model(ids, return_attention=True)
    return logits.float(), [a.float() for a in attentions]


@torch.no_grad()
def _last_layer(model: nn.Module, ids: Tensor, targets: Tensor, padding: Tensor) -> Tensor:
    _, attentions = _attentions(model, ids)
    return _query_row(attentions[-1].mean(1), model, padding)


@torch.no_grad()
def _rollout(model: nn.Module, ids: Tensor, targets: Tensor, padding: Tensor) -> Tensor:
    _, attentions = _attentions(model, ids)
    return _query_row(rollout(attentions), model, padding)


def rollout(attentions: list[Tensor]) -> Tensor:
    """(B, S, S) attention rollout of each layer's weights (B, heads, S, S); every row sums to one."""
    eye = torch.eye(attentions[0].shape[-1], device=attentions[0].device)
    flow = None
    for weights in attentions:
        mixed = 0.5 * weights.mean(1) + 0.5 * eye  # (B, S, S): attention plus the residual connection
        mixed = mixed / mixed.sum(-1, keepdim=True)
        flow = mixed if flow is None else mixed @ flow
    return flow


def _attention_gradient(model: nn.Module, ids: Tensor, targets: Tensor, padding: Tensor) -> Tensor:
    with torch.enable_grad():
        logits, attentions = model(ids, return_attention=True)
        for weights in attentions:
            weights.retain_grad()
        logits.float().gather(1, targets[:, None]).sum().backward()
    eye = torch.eye(attentions[0].shape[-1], device=ids.device)
    relevance = eye.expand(len(ids), -1, -1).clone()  # (B, S, S)
    for weights in attentions:
        weighted = (weights.grad * weights).clamp(min=0).mean(1).detach().float()  # (B, S, S)
        relevance = relevance + weighted @ relevance
    model.zero_grad(set_to_none=True)
    return _query_row(relevance - eye, model, padding)


_ATTENTION: dict[str, Callable[[nn.Module, Tensor, Tensor, Tensor], Tensor]] = {
    "cls": _last_layer, "rollout": _rollout, "gradient": _attention_gradient,
}  # fmt: skip
