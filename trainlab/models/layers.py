"""Shared layer vocabulary, and `sequential`: a Keras-style model written in the config as a list of layer strings.

    model:
      name: sequential
      layers: ["conv 32 3", "relu", "maxpool 2", "conv 64 3", "relu", "globalavgpool", "linear 64", "relu"]

Input channels and features are inferred from the shape flowing through; the
classifier head (a flatten if needed, then `linear num_classes`) is appended.
"""

from __future__ import annotations

from typing import Annotated, Literal, get_args

import torch
from pydantic import Field
from torch import nn

from trainlab.models.registry import IMAGE_MODEL_INPUTS, MODELS
from trainlab.registry import did_you_mean

Activation = Literal["relu", "sigmoid", "tanh", "leaky_relu", "elu", "gelu"]
ACTIVATIONS: dict[str, type[nn.Module]] = dict(
    zip(get_args(Activation), (nn.ReLU, nn.Sigmoid, nn.Tanh, nn.LeakyReLU, nn.ELU, nn.GELU), strict=True)
)
Probability = Annotated[float, Field(ge=0, lt=1)]

# The form of each layer string, as shown in error messages.
LAYER_FORMS: dict[str, str] = {
    "conv": "conv OUT K [stride S] [pad P]",
    "maxpool": "maxpool K",
    "avgpool": "avgpool K",
    "globalavgpool": "globalavgpool",
    "flatten": "flatten",
    "linear": "linear OUT",
    "dropout": "dropout P",
    "batchnorm": "batchnorm",
    **{name: name for name in ACTIVATIONS},
}

Shape = tuple[int, ...]  # one example's shape: (C, H, W) or (features,)


def dense_layers(fan_in: int, fan_out: int, activation: str, *, batchnorm: bool = False, dropout: float = 0.0) -> list[nn.Module]:
    """A fully connected layer as the lab's MLPs stack them: Linear, BatchNorm1d (optional), activation, Dropout (when > 0)."""
    layers: list[nn.Module] = [nn.Linear(fan_in, fan_out)]
    if batchnorm:
        layers.append(nn.BatchNorm1d(fan_out))
    layers.append(ACTIVATIONS[activation]())
    if dropout > 0:
        layers.append(nn.Dropout(dropout))
    return layers


@MODELS.register(injected=IMAGE_MODEL_INPUTS)
def sequential(
    *,
    in_channels: int,
    num_classes: int,
    image_size: tuple[int, int],
    layers: Annotated[list[str], Field(min_length=1)] = ["conv 16 3", "relu", "maxpool 2", "flatten", "linear 32", "relu"],  # noqa: B006
) -> nn.Sequential:
    """A stack of layers written as strings ("conv 32 3", "relu", "maxpool 2", "flatten", "linear 64"); the head is added.

    Each layer's input size comes from the shape before it, so the list is checked at build time:
    a typo, a wrong argument or a shape that does not fit raises a ValueError naming the layer (1-based).
    """
    shape: Shape = (in_channels, *image_size)
    modules: list[nn.Module] = []
    for index, text in enumerate(layers, start=1):
        built = _layer(index, text, shape)
        shape = _run(index, text, built, shape)
        modules += built
    if len(shape) == 3:
        modules.append(nn.Flatten())  # (B, C, H, W) -> (B, C*H*W)
        shape = (shape[0] * shape[1] * shape[2],)
    modules.append(nn.Linear(shape[0], num_classes))
    return nn.Sequential(*modules)


def _layer(index: int, text: str, shape: Shape) -> list[nn.Module]:
    """The modules for one layer string, given the shape it receives."""
    where = f"layer {index} ('{text}')"
    name, *args = text.split() or [""]
    if name == "softmax":
        raise ValueError(f"{where}: leave softmax out; the loss (cross-entropy) takes the softmax of the logits itself")
    if name not in LAYER_FORMS:
        raise ValueError(
            f"{where}: unknown layer '{name}'{did_you_mean(name, LAYER_FORMS)}; known layers: {', '.join(LAYER_FORMS)}"
        )
    form = LAYER_FORMS[name]

    def wrong_form(problem: str) -> ValueError:
        return ValueError(f"{where}: {problem}; expected the form '{form}'")

    def count(n: int) -> None:
        if len(args) != n:
            raise wrong_form(f"takes {n} argument{'s' * (n != 1)}, got {len(args)}")

    def integer(token: str, what: str, least: int = 1) -> int:
        try:
            value = int(token)
        except ValueError:
            raise wrong_form(f"{what} must be a whole number, got '{token}'") from None
        if value < least:
            raise wrong_form(f"{what} must be at least {least}, got {value}")
        return value

    def expect_image() -> tuple[int, int, int]:
        if len(shape) != 3:
            raise ValueError(f"{where} expects an image of shape (channels, height, width) but receives shape {shape}")
        return shape  # type: ignore[return-value]

    if name == "conv":
        if len(args) not in (2, 4, 6):
            raise wrong_form(f"takes OUT and K, then optionally 'stride S' and 'pad P'; got {len(args)} arguments")
        out, k = integer(args[0], "OUT"), integer(args[1], "K")
        options = {"stride": 1, "pad": k // 2}  # pad K//2 keeps the size ("same") at stride 1
        for key, value in zip(args[2::2], args[3::2], strict=True):
            if key not in options:
                raise wrong_form(f"unknown option '{key}'{did_you_mean(key, options)}")
            options[key] = integer(value, key, least=0 if key == "pad" else 1)
        channels, height, width = expect_image()
        least = k - 2 * options["pad"]
        if min(height, width) < least:
            raise ValueError(
                f"{where} expects an image of at least {least}x{least} (kernel {k}, pad {options['pad']})"
                f" but receives shape {shape}"
            )
        return [nn.Conv2d(channels, out, k, stride=options["stride"], padding=options["pad"])]
    if name in ("maxpool", "avgpool"):
        count(1)
        k = integer(args[0], "K")
        _, height, width = expect_image()
        if min(height, width) < k:
            raise ValueError(f"{where} expects an image of at least {k}x{k} but receives shape {shape}")
        return [nn.MaxPool2d(k) if name == "maxpool" else nn.AvgPool2d(k)]
    if name == "linear":
        count(1)
        out = integer(args[0], "OUT")
        if len(shape) != 1:
            raise ValueError(
                f"{where} expects a flat input of shape (features,) but receives shape {shape}; put 'flatten' before it"
            )
        return [nn.Linear(shape[0], out)]
    if name == "dropout":
        count(1)
        try:
            p = float(args[0])
        except ValueError:
            raise wrong_form(f"P must be a number, got '{args[0]}'") from None
        if not 0 <= p < 1:
            raise wrong_form(f"P is a probability in [0, 1), got {p}")
        return [nn.Dropout(p)]
    count(0)
    if name == "globalavgpool":
        expect_image()
        return [nn.AdaptiveAvgPool2d(1), nn.Flatten()]  # (B, C, H, W) -> (B, C, 1, 1) -> (B, C)
    if name == "flatten":
        return [nn.Flatten()]  # (B, ...) -> (B, prod(...))
    if name == "batchnorm":
        return [nn.BatchNorm2d(shape[0]) if len(shape) == 3 else nn.BatchNorm1d(shape[0])]
    return [ACTIVATIONS[name]()]


def _run(index: int, text: str, modules: list[nn.Module], shape: Shape) -> Shape:
    """The shape after `modules`, found by passing a batch of zeros (eval mode, so batch-norm statistics stay untouched)."""
    block = nn.Sequential(*modules).eval()
    try:
        with torch.no_grad():
            out = block(torch.zeros(2, *shape))
    except RuntimeError as e:
        raise ValueError(f"layer {index} ('{text}') cannot take shape {shape}: {e}") from None
    finally:
        block.train()
    result = tuple(out.shape[1:])
    if 0 in result:
        raise ValueError(f"layer {index} ('{text}') receives shape {shape} and would give an empty shape {result}")
    return result
