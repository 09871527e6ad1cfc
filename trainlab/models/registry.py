from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from trainlab.models import user
from trainlab.registry import Registry

# Every model builder receives what it needs to know about the data from trainlab, never from the config.
IMAGE_MODEL_INPUTS = ("in_channels", "num_classes", "image_size")
TEXT_MODEL_INPUTS = ("vocabulary", "num_classes")  # builders that train word vectors also take "corpus" and "load_pretrained"
# A pretrained text model reads texts with its own tokenizer: "pieces" (a PieceTokenizer) instead of "vocabulary".
PIECE_MODEL_INPUTS = ("pieces", "num_classes", "load_pretrained")
TABLE_MODEL_INPUTS = ("in_features", "num_classes")  # a table's encoded columns; num_classes is the target columns for values


class ModelRegistry(Registry):
    """Registered models, and the user's own: `file.py:NAME` (given the data inputs its parameters name) and
    `python:Name` (a module object handed to trainlab.fit)."""

    def __contains__(self, name: str) -> bool:
        return super().__contains__(name) or user.is_user_model(name)

    def get(self, name: str) -> Callable[..., Any]:
        if user.is_file_spec(name):
            return user.file_builder(name)
        if name.startswith(user.OBJECT_PREFIX):
            return user.object_builder(name)
        return super().get(name)

    def injected(self, name: str) -> tuple[str, ...]:
        if user.is_user_model(name):
            return user.data_inputs(self.get(name))
        return super().injected(name)


MODELS = ModelRegistry("models")
# model name -> the function that builds the tokenizer its data must be prepared with, from the model's config arguments
_TOKENIZERS: dict[str, Callable[[dict[str, Any]], Any]] = {}
# model name -> the (mean, std) per channel on the 0..255 scale its pretrained weights expect, from its config arguments
_NORMALISATIONS: dict[str, Callable[[dict[str, Any]], Normalisation | None]] = {}
Normalisation = tuple[tuple[float, ...], tuple[float, ...]]


def fits(name: str, inputs: Iterable[str]) -> bool:
    """Whether data that gives `inputs` (PreparedData.model_inputs' keys) has everything model `name` is built from."""
    return set(MODELS.injected(name)) <= set(inputs)


def models_for(inputs: Iterable[str]) -> list[str]:
    """The registered models that data giving `inputs` can build."""
    given = set(inputs)
    return [name for name in MODELS.names() if fits(name, given)]


ArgsHook = Callable[[dict[str, Any]], Any]


def _declares(table: dict[str, ArgsHook]) -> Callable[[str], Callable[[ArgsHook], ArgsHook]]:
    """A decorator factory: `@declare(model_name)` files `function(model_args)` in `table` under the model's name."""

    def declare(model_name: str) -> Callable[[ArgsHook], ArgsHook]:
        def decorator(function: ArgsHook) -> ArgsHook:
            table[model_name] = function
            return function

        return decorator

    return declare


def _asked(table: dict[str, ArgsHook], name: str, args: dict[str, Any]) -> Any | None:
    function = table.get(name)
    return function(args) if function is not None else None


# @reads_with(name): `function(model_args)` builds the tokenizer that the model reads its texts with.
reads_with = _declares(_TOKENIZERS)
# @normalises_with(name): `function(model_args)` gives the input normalisation the model's pretrained weights were
# trained with ((mean, std) per channel, 0..255 scale), or None when the data's own statistics apply.
normalises_with = _declares(_NORMALISATIONS)


def model_tokenizer(name: str, args: dict[str, Any]) -> Any | None:
    """The tokenizer model `name` brings for its data (built from its config arguments), or None when it has none."""
    return _asked(_TOKENIZERS, name, args)


def model_normalisation(name: str, args: dict[str, Any]) -> Normalisation | None:
    """The normalisation model `name` asks of its images (its pretrained weights'), or None: the training split's."""
    return _asked(_NORMALISATIONS, name, args)
