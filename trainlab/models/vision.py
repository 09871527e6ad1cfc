"""Image classifiers."""

from __future__ import annotations

from typing import Annotated

import torch
from pydantic import Field
from torch import Tensor, nn

from trainlab.models.layers import Activation, Probability, dense_layers
from trainlab.models.registry import IMAGE_MODEL_INPUTS, MODELS, Normalisation, normalises_with
from trainlab.models.transfer import TransferModel, resize_to
from trainlab.models.weight_files import find_weights
from trainlab.models.weights import load_imagenet_weights


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
        layers += dense_layers(fan_in, fan_out, fc_activation, batchnorm=fc_batchnorm, dropout=dropout)
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
        layers += dense_layers(width, size, activation, dropout=dropout)
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


# torchvision's configuration "D": output channels of each 3x3 conv, "M" a 2x2 max-pool.
_VGG16_LAYOUT = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]


class VGG(TransferModel):
    """torchvision's VGG: `features`, a 7x7 adaptive average pool, then the `classifier`, with its state-dict keys.

    For transfer learning the convolutions are the backbone and the classifier is the head; its last layer is
    the new one (the one that maps to the dataset's classes)."""

    def __init__(self, features: nn.Sequential, classifier: nn.Sequential, input_size: int | None = None):
        super().__init__()
        self.features = features
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = classifier
        self.input_size = input_size

    def extract(self, x: Tensor) -> Tensor:
        return self.features(resize_to(x, self.input_size))  # (B, 512, H/32, W/32)

    def classify(self, features: Tensor) -> Tensor:
        x = self.avgpool(features)  # (B, 512, 7, 7) whatever the image size
        return self.classifier(torch.flatten(x, 1))  # (B, 25088) -> (B, classes)

    def head_modules(self) -> list[nn.Module]:
        return [self.classifier]

    def new_layers(self) -> list[nn.Module]:
        return [self.classifier[-1]]

    def backbone_stages(self) -> list[nn.Module]:
        """The 5 conv blocks of `features`, each ending with its max-pool."""
        stages, current = [], []
        for layer in self.features:
            current.append(layer)
            if isinstance(layer, nn.MaxPool2d):
                stages.append(nn.ModuleList(current))
                current = []
        return stages + ([nn.ModuleList(current)] if current else [])


# torchvision's ImageNet statistics (0..1 scale), which its VGG weights were trained with.
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@normalises_with("vgg16")
def _vgg16_normalisation(args: dict) -> Normalisation | None:
    if args.get("weights") is None:
        return None  # from scratch: the data's own statistics
    return tuple(255 * m for m in IMAGENET_MEAN), tuple(255 * s for s in IMAGENET_STD)


@MODELS.register(injected=(*IMAGE_MODEL_INPUTS, "load_pretrained"))
def vgg16(
    *,
    in_channels: int,
    num_classes: int,
    image_size: tuple[int, int],
    load_pretrained: bool = True,
    hidden: Annotated[int, Field(gt=0)] = 4096,
    dropout: Probability = 0.5,
    batchnorm: bool = False,
    weights: str | None = None,
    input_size: Annotated[int, Field(ge=32)] | None = None,
) -> VGG:
    """VGG16 (Simonyan & Zisserman 2014) with torchvision's layout, state-dict keys and initialisation.

    Thirteen 3x3 convs in five blocks, each block ending in a 2x2 max-pool, then FC `hidden`,
    FC `hidden`, FC to the classes, each hidden FC followed by ReLU and dropout. With 3 channels,
    1000 classes and the defaults it is torchvision's `vgg16` (138,357,544 parameters), so its
    published weights load into it; `batchnorm: true` is `vgg16_bn`.

    `weights`: "imagenet" (torchvision's file, from $TRAINLAB_WEIGHTS, torch's hub cache or a download) or a
    file's path; the classifier's last layer is then new for the dataset's classes (kept with 1000 classes).
    `input_size` resizes the images to that square inside the model (ImageNet weights saw 224x224).
    """
    height, width = (input_size, input_size) if input_size else image_size
    if min(height, width) < 32:
        raise ValueError(f"vgg16 needs images of at least 32x32 pixels (five 2x2 max-pools), got {height}x{width}; "
                         "input_size resizes them")  # fmt: skip
    if weights is not None and in_channels != 3:
        raise ValueError(f"weights: ImageNet weights take colour images (3 channels), got {in_channels}")
    layers: list[nn.Module] = []
    channels = in_channels
    for step in _VGG16_LAYOUT:
        if step == "M":
            layers.append(nn.MaxPool2d(2, 2))
            continue
        layers.append(nn.Conv2d(channels, step, 3, padding=1))
        if batchnorm:
            layers.append(nn.BatchNorm2d(step))
        layers.append(nn.ReLU(inplace=True))
        channels = step
    classifier = nn.Sequential(
        nn.Linear(channels * 7 * 7, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout),
        nn.Linear(hidden, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout),
        nn.Linear(hidden, 1000 if weights is not None else num_classes),
    )  # fmt: skip
    model = VGG(nn.Sequential(*layers), classifier, input_size)
    for module in model.modules():  # torchvision's initialisation
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, 0, 0.01)
            nn.init.zeros_(module.bias)
    if weights is not None:
        if load_pretrained:  # built from a run folder, the checkpoint holds the weights
            load_imagenet_weights(model, find_weights(weights, "vgg16_bn" if batchnorm else "vgg16"))
        model.weights_loaded = True
        if num_classes != 1000:  # a new last layer for the dataset's classes, drawn as torchvision draws it
            model.classifier[-1] = nn.Linear(hidden, num_classes)
            nn.init.normal_(model.classifier[-1].weight, 0, 0.01)
            nn.init.zeros_(model.classifier[-1].bias)
        else:
            model.imagenet_head = True
    return model
