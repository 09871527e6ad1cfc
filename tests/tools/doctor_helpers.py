"""Tiny data and models for the doctor's tests: each check meets a healthy model and one made to fail it."""

import io
import json

import torch
from torch import nn

from trainlab.engine.device import resolve_placement

FP32_CPU = resolve_placement("cpu", "fp32", False)
CLASSES, FEATURES = 4, 16


def blobs(n=256, classes=CLASSES, features=FEATURES, seed=0):
    """Gaussian blobs around well-separated centres, standardised per feature: an easy problem."""
    g = torch.Generator().manual_seed(seed)
    centres = 2 * torch.randn(classes, features, generator=g)
    targets = torch.randperm(n, generator=g) % classes
    inputs = centres[targets] + torch.randn(n, features, generator=g)
    return (inputs - inputs.mean(0)) / inputs.std(0), targets


def batched(inputs, targets, size=32):
    return [(inputs[i : i + size], targets[i : i + size]) for i in range(0, len(targets), size)]


def mlp(depth=1, width=32, activation=nn.ReLU, features=FEATURES, classes=CLASSES, seed=0):
    """Linear-activation pairs, then a linear layer to the classes; the weights depend on `seed` only."""
    torch.manual_seed(seed)
    layers, size = [], features
    for _ in range(depth):
        layers += [nn.Linear(size, width), activation()]
        size = width
    return nn.Sequential(*layers, nn.Linear(size, classes))


def adam(lr=1e-2):
    return lambda params: torch.optim.Adam(params, lr=lr)


def sgd(lr=0.1):
    return lambda params: torch.optim.SGD(params, lr=lr)


def inf_mlp(**kwargs):
    """An mlp whose last bias is +inf: every output is infinite from the first forward, so every loss is NaN."""
    model = mlp(**kwargs)
    with torch.no_grad():
        model[-1].bias.fill_(float("inf"))
    return model


class NaNAfter(nn.Module):
    """`model`, whose outputs turn NaN after `steps` forwards in training mode: a loss that diverges late."""

    def __init__(self, model, steps):
        super().__init__()
        self.model, self.steps = model, steps
        self.register_buffer("forwards", torch.zeros((), dtype=torch.long))

    def forward(self, x):
        out = self.model(x)
        if self.training:
            self.forwards += 1
            if self.forwards > self.steps:
                out = out * float("nan")
        return out


def drawn(figure):
    """Whether `figure` renders to a PNG (matplotlib checks axis limits and data only then); it raises if not."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.tell() > 0


def strict_json(text):
    """json.loads that refuses the NaN, Infinity and -Infinity tokens Python's json accepts by default."""
    def refuse(token):
        raise ValueError(f"{token} is not JSON")

    return json.loads(text, parse_constant=refuse)
