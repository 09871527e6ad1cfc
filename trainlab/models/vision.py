"""Image classifiers."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field
from torch import nn

from trainlab.models.registry import IMAGE_MODEL_INPUTS, MODELS



@MODELS.register(injected=IMAGE_MODEL_INPUTS)
def workshop_cnn(
    *,
    in_channels: int,
    num_classes: int,
    image_size: tuple[int, int],
    channels: Annotated[list[Annotated[int, Field(gt=0)]], Field(min_length=4, max_length=4)] = [32, 32, 64, 64],  # noqa: B006
    hidden: Annotated[list[Annotated[int, Field(gt=0)]], Field(min_length=2, max_length=2)] = [256, 128],  # noqa: B006
) -> nn.Sequential:
    """The workshop's CNN (architecture 1): two blocks of conv-ReLU, conv-ReLU, max-pool, then FC-ReLU, FC-ReLU, FC.

    Convolutions are 3x3 with padding 1; the softmax is taken by the loss.
    """
    c1, c2, c3, c4 = channels
    h, w = image_size[0] // 4, image_size[1] // 4  # two 2x2 max-pools
    if h < 1 or w < 1:
        raise ValueError(f"workshop_cnn needs images of at least 4x4 pixels, got {image_size[0]}x{image_size[1]}")
    return nn.Sequential(
        nn.Conv2d(in_channels, c1, 3, padding=1), nn.ReLU(),
        nn.Conv2d(c1, c2, 3, padding=1), nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(c2, c3, 3, padding=1), nn.ReLU(),
        nn.Conv2d(c3, c4, 3, padding=1), nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),  # (B, c4, H/4, W/4) -> (B, c4*H/4*W/4)
        nn.Linear(c4 * h * w, hidden[0]), nn.ReLU(),
        nn.Linear(hidden[0], hidden[1]), nn.ReLU(),
        nn.Linear(hidden[1], num_classes),
    )  # fmt: skip
