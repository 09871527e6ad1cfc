from __future__ import annotations

from typing import Any

from torch import nn

from trainlab.registry import Registry

# Every model builder receives the shape of the data from trainlab, never from the config.
IMAGE_MODEL_INPUTS = ("in_channels", "num_classes", "image_size")
TEXT_MODEL_INPUTS = ("vocabulary", "num_classes")  # builders that train word vectors also take "corpus"
MODELS = Registry("models")


def reads_text(name: str) -> bool:
    """Whether the registered model `name` reads token ids (its builder takes a vocabulary), not images."""
    return "vocabulary" in MODELS.injected(name)


def build_model(name: str, *, in_channels: int, num_classes: int, image_size: tuple[int, int], **args: Any) -> nn.Module:
    return MODELS.build(name, in_channels=in_channels, num_classes=num_classes, image_size=image_size, **args)
