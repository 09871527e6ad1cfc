"""Tiny data and models for the doctor's tests: each check meets a healthy model and one made to fail it."""

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
