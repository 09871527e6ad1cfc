from __future__ import annotations

from collections.abc import Iterable

from trainlab.registry import Registry

# Every model builder receives what it needs to know about the data from trainlab, never from the config.
IMAGE_MODEL_INPUTS = ("in_channels", "num_classes", "image_size")
TEXT_MODEL_INPUTS = ("vocabulary", "num_classes")  # builders that train word vectors also take "corpus" and "pretrained"
MODELS = Registry("models")


def fits(name: str, inputs: Iterable[str]) -> bool:
    """Whether data that gives `inputs` (PreparedData.model_inputs' keys) has everything model `name` is built from."""
    return set(MODELS.injected(name)) <= set(inputs)


def models_for(inputs: Iterable[str]) -> list[str]:
    """The registered models that data giving `inputs` can build."""
    given = set(inputs)
    return [name for name in MODELS.names() if fits(name, given)]
