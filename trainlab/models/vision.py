"""Image classifiers."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field
from torch import Tensor, nn

from trainlab.models.layers import ACTIVATIONS, Activation, Probability
from trainlab.models.registry import IMAGE_MODEL_INPUTS, MODELS


@MODELS.register(injected=IMAGE_MODEL_INPUTS)
def workshop_cnn(
    *,
    in_channels: int,
    num_classes: int,
    image_size: tuple[int, int],
    channels: Annotated[list[Annotated[int, Field(gt=0)]], Field(min_length=4, max_length=4)] = [32, 32, 64, 64],  # noqa: B006
    hidden: Annotated[list[Annotated[int, Field(gt=0)]], Field(min_length=2, max_length=2)] = [256, 128],  # noqa: B006
    fc_activation: Activation = "relu",
    extra_conv: bool = False,
    fc_batchnorm: bool = False,
    dropout: Probability = 0.0,
) -> nn.Sequential:
    """The workshop's CNN: two blocks of conv-ReLU, conv-ReLU, max-pool, then FC-act, FC-act, FC.

    Convolutions are 3x3 with padding 1; the softmax is taken by the loss. The workshop's
    architectures: 1 = the defaults, 2 = fc_activation sigmoid, 3 = 2 + extra_conv (a fifth
    conv-ReLU before the flatten), 4 = 3 + fc_batchnorm (batch norm before each FC activation).
    `dropout` > 0 adds a dropout after each FC activation.
    """
    c1, c2, c3, c4 = channels
    h, w = image_size[0] // 4, image_size[1] // 4  # two 2x2 max-pools
    if h < 1 or w < 1:
        raise ValueError(f"workshop_cnn needs images of at least 4x4 pixels, got {image_size[0]}x{image_size[1]}")
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, c1, 3, padding=1), nn.ReLU(),
        nn.Conv2d(c1, c2, 3, padding=1), nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(c2, c3, 3, padding=1), nn.ReLU(),
        nn.Conv2d(c3, c4, 3, padding=1), nn.ReLU(),
        nn.MaxPool2d(2),
    ]  # fmt: skip
    if extra_conv:
        layers += [nn.Conv2d(c4, c4, 3, padding=1), nn.ReLU()]
    layers.append(nn.Flatten())  # (B, c4, H/4, W/4) -> (B, c4*H/4*W/4)
    for fan_in, fan_out in ((c4 * h * w, hidden[0]), (hidden[0], hidden[1])):
        layers.append(nn.Linear(fan_in, fan_out))
        if fc_batchnorm:
            layers.append(nn.BatchNorm1d(fan_out))
        layers.append(ACTIVATIONS[fc_activation]())
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(hidden[1], num_classes))
    return nn.Sequential(*layers)


@MODELS.register(injected=IMAGE_MODEL_INPUTS)
def mnist_mlp(
    *,
    in_channels: int,
    num_classes: int,
    image_size: tuple[int, int],
    hidden: list[Annotated[int, Field(gt=0)]] = [256, 128],  # noqa: B006
    activation: Activation = "relu",
    dropout: Probability = 0.0,
) -> nn.Sequential:
    """A multilayer perceptron on the flattened pixels: FC-act per hidden width, then FC to the classes.

    An empty `hidden` gives multinomial logistic regression.
    """
    layers: list[nn.Module] = [nn.Flatten()]  # (B, C, H, W) -> (B, C*H*W)
    width = in_channels * image_size[0] * image_size[1]
    for size in hidden:
        layers += [nn.Linear(width, size), ACTIVATIONS[activation]()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = size
    layers.append(nn.Linear(width, num_classes))
    return nn.Sequential(*layers)


class PreActBlock(nn.Module):
    """BN-ReLU-conv3x3-BN-ReLU-conv3x3 plus a shortcut: the identity, or a strided 1x1 conv when the shape changes."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.relu = nn.ReLU()
        changes_shape = stride != 1 or in_channels != out_channels
        self.shortcut = nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False) if changes_shape else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv1(self.relu(self.bn1(x)))
        out = self.conv2(self.relu(self.bn2(out)))
        return out + self.shortcut(x)


@MODELS.register(injected=IMAGE_MODEL_INPUTS)
def preact_resnet(
    *,
    in_channels: int,
    num_classes: int,
    image_size: tuple[int, int],
    widths: Annotated[list[Annotated[int, Field(gt=0)]], Field(min_length=1)] = [32, 64, 128],  # noqa: B006
) -> nn.Sequential:
    """The course's pre-activation ResNet (ResNet-V2, He et al. 2016): conv-BN stem, residual blocks, BN-ReLU, pool, FC.

    Stem conv3x3 to widths[0] with BN and a block widths[0] -> widths[0]; then per further width a
    block that halves the image (stride 2) into that width and one that keeps it. The defaults give
    the deck's blocks (32->32), (32->64, /2), (64->64), (64->128, /2), (128->128).
    """
    blocks = [PreActBlock(widths[0], widths[0])]
    for before, after in zip(widths, widths[1:]):
        blocks += [PreActBlock(before, after, stride=2), PreActBlock(after, after)]
    return nn.Sequential(
        nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=False), nn.BatchNorm2d(widths[0]),
        *blocks,
        nn.BatchNorm2d(widths[-1]), nn.ReLU(),  # blocks end with a conv, so V2 normalises once more
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),  # (B, C, 1, 1) -> (B, C)
        nn.Linear(widths[-1], num_classes),
    )  # fmt: skip
