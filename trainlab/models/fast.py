"""A network for time to accuracy on CIFAR-10: the shape of airbench94 (Jordan 2024, arXiv 2404.00498).

A 2x2 patch-whitening conv (set from the training images by `patch_whitening: true`), then three groups
conv-pool-BN-GELU, conv-BN-GELU of 64, 256 and 256 channels, a max-pool to 1x1, and a linear layer whose
logits are scaled down (1/9 by default). Batch norm as airbench sets it goes through the config's `batchnorm:`
section, so any model can use the same settings.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field
from torch import Tensor, nn

from trainlab.models.registry import IMAGE_MODEL_INPUTS, MODELS


def dirac_conv(in_channels: int, out_channels: int) -> nn.Conv2d:
    """A 3x3 conv whose first `in_channels` filters start as the identity (airbench's partial Dirac init)."""
    conv = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
    nn.init.dirac_(conv.weight.data[: min(in_channels, out_channels)])
    return conv


class ConvGroup(nn.Sequential):
    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(
            dirac_conv(in_channels, out_channels), nn.MaxPool2d(2), nn.BatchNorm2d(out_channels), nn.GELU(),
            dirac_conv(out_channels, out_channels), nn.BatchNorm2d(out_channels), nn.GELU(),
        )  # fmt: skip


class Scale(nn.Module):
    def __init__(self, factor: float):
        super().__init__()
        self.factor = factor

    def forward(self, x: Tensor) -> Tensor:
        return x * self.factor

    def extra_repr(self) -> str:
        return f"factor={self.factor:g}"


@MODELS.register(injected=IMAGE_MODEL_INPUTS)
def airbench(
    *,
    in_channels: int,
    num_classes: int,
    image_size: tuple[int, int],
    widths: Annotated[list[Annotated[int, Field(gt=0)]], Field(min_length=3, max_length=3)] = [64, 256, 256],  # noqa: B006
    whiten_kernel: Annotated[int, Field(ge=1, le=4)] = 2,
    logit_scale: Annotated[float, Field(gt=0)] = 1 / 9,
) -> nn.Sequential:
    """airbench94's network: a whitening conv (whiten_kernel x whiten_kernel, 2 x in_channels x whiten_kernel²
    channels, no padding) and GELU, three conv groups of `widths` (3x3 convs starting partly as the identity),
    a max-pool over what is left, a linear layer without bias, logits times `logit_scale`. Images of 32x32
    (CIFAR-10) end as 3x3 before the last pool. `init:` other than default re-draws the convs."""
    whiten_width = 2 * in_channels * whiten_kernel**2
    size = min(image_size) - whiten_kernel + 1
    for _ in widths:
        size //= 2
    if size < 1:
        raise ValueError(f"airbench needs images of at least {whiten_kernel - 1 + 2 ** len(widths)} pixels a side, "
                         f"got {image_size[0]}x{image_size[1]}")  # fmt: skip
    w1, w2, w3 = widths
    return nn.Sequential(
        nn.Conv2d(in_channels, whiten_width, whiten_kernel, bias=True), nn.GELU(),
        ConvGroup(whiten_width, w1), ConvGroup(w1, w2), ConvGroup(w2, w3),
        nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(w3, num_classes, bias=False), Scale(logit_scale),
    )  # fmt: skip
