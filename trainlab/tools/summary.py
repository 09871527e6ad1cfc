"""`trainlab summary SPEC`: which model a spec names (a preset, a config file, a run folder, a registered
model, FILE.py:NAME), built for its input; the table itself is trainlab.evaluation.model_summary."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from trainlab.errors import UsageError
from trainlab.evaluation.model_summary import ModelSummary, summarize
from trainlab.models import MODELS, fits
from trainlab.registry import did_you_mean



def parse_shape(text: str) -> tuple[int, ...]:
    """'3x32x32' -> (3, 32, 32): the shape of one example, without the batch."""
    parts = [part.strip() for part in re.split(r"[x×,]", text.strip().lower())]
    if not all(part.isdigit() and int(part) > 0 for part in parts):
        raise UsageError(
            f"--input '{text}': expected the sizes of one example without the batch, separated by 'x': "
            "3x32x32 for an image, 16 for 16 features"
        )
    return tuple(int(part) for part in parts)


def summarize_spec(
    spec: str | None, overrides: list[str], input_shapes: list[str], *, depth: int | None = None,
    batch_size: int | None = None,
) -> ModelSummary:  # fmt: skip
    """`trainlab summary SPEC [key=value ...] [--input SHAPE ...]`.

    SPEC is what `trainlab run` takes (a preset, a config file, a run folder; none: the embedded
    default), a registered model name with its --input, or FILE.py:NAME (an nn.Module, or a class
    or function that makes one, called with the key=value arguments) with one --input per input.
    """
    shapes = [parse_shape(text) for text in input_shapes]
    if spec is not None and re.search(r"\.py:\w+$", spec):
        model, name = _python_model(spec, overrides, shapes)
        return summarize(model, *shapes, depth=depth, batch_size=batch_size, name=name)
    if spec is not None and spec in MODELS and not Path(spec).exists():
        model, image_shape = _registered_model(spec, overrides, shapes)
        return summarize(model, image_shape, depth=depth, batch_size=batch_size, name=spec)
    model, image_shape, name = _configured_model(spec, overrides, shapes)
    return summarize(model, image_shape, depth=depth, batch_size=batch_size, name=name)


def _one_image(shapes: list[tuple[int, ...]], name: str) -> tuple[int, int, int]:
    if len(shapes) != 1 or len(shapes[0]) != 3:
        given = " ".join("--input " + "x".join(map(str, shape)) for shape in shapes)
        raise UsageError(f"{name} takes one image: --input CxHxW, e.g. --input 3x32x32; got {given}")
    return shapes[0]  # type: ignore[return-value]


def _image_model(name: str) -> None:
    """Builders from a name are given an image shape: refuse the others (text models take a vocabulary)."""
    if not fits(name, IMAGE_INPUTS):
        raise UsageError(
            f"'{name}' is not an image model: a text model is built from its data's vocabulary, so give a config "
            f"that names it (trainlab summary emotion/lstm_learned, or data.name=emotion model.name={name}); in Python, "
            "trainlab.evaluation.model_summary.summarize(model, example) summarises any model on an example input"
        )


def _image_inputs(image_shape: tuple[int, ...], num_classes: int) -> dict[str, Any]:
    channels, height, width = image_shape
    return {"in_channels": channels, "image_size": (height, width), "num_classes": num_classes, "load_pretrained": False}


IMAGE_INPUTS = tuple(_image_inputs((1, 1, 1), 1))


def _configured_model(spec: str | None, overrides: list[str], shapes: list[tuple[int, ...]]) -> tuple[nn.Module, tuple | Tensor, str]:
    """The model of a preset, config file or run folder, for its data (or the image shape --input gives).

    A run folder's model is built from its preprocess.json; a dataset of a fixed shape needs no reading;
    any other dataset is read for what its model is built from (the shape of its images, its vocabulary)."""
    from trainlab.build import build_model, load_data
    from trainlab.config import list_presets, load_config
    from trainlab.data import FIXED_SHAPES, load_preprocess
    from trainlab.data.preprocess import PREPROCESS_JSON

    path = Path(spec or "")
    if spec is not None and not path.exists() and path.suffix not in (".yaml", ".yml") and spec not in list_presets():
        raise UsageError(
            f"'{spec}' is neither a registered model, a preset, a config file nor a run folder"
            f"{did_you_mean(spec, [*MODELS.names(), *list_presets()])}; models: {', '.join(MODELS.names())}; "
            "presets: trainlab list presets"
        )
    config, source = load_config(spec, overrides)
    name = config.model.name
    if shapes and not fits(name, IMAGE_INPUTS):
        raise UsageError(f"'{name}' reads token ids from its dataset: leave --input out")
    run = source.path.parent if source.path is not None and source.path.name == "config.yaml" else None
    example: tuple | Tensor
    if run is not None and (run / PREPROCESS_JSON).is_file():
        preprocess = load_preprocess(run)
        inputs, example = {**preprocess.model_inputs(), "load_pretrained": False}, preprocess.example()
    elif config.data.name in FIXED_SHAPES and fits(name, IMAGE_INPUTS):
        image_shape, num_classes = FIXED_SHAPES[config.data.name]
        inputs, example = _image_inputs(image_shape, num_classes), image_shape
    else:
        data = load_data(config)
        inputs, example = {**data.model_inputs(), "load_pretrained": False}, data.example()
    if shapes:
        example = _one_image(shapes, name)
        inputs = _image_inputs(example, inputs["num_classes"])
    return build_model(config, inputs), example, name


def _registered_model(name: str, overrides: list[str], shapes: list[tuple[int, ...]]) -> tuple[nn.Module, tuple]:
    """A registered model for --input CxHxW; key=value are its arguments, and num_classes (default 10)."""
    from trainlab.build import build_model
    from trainlab.config import ConfigSource, apply_overrides, parse_override, validate_config

    if not shapes:
        raise UsageError(f"'{name}' is a model: give the shape of its input, e.g. trainlab summary {name} --input 3x32x32")
    _image_model(name)
    image_shape = _one_image(shapes, name)
    num_classes, arguments = 10, []
    for text in overrides:
        key, value = parse_override(text)
        if key != ("num_classes",):
            arguments.append(f"model.{text}")
        elif isinstance(value, int) and not isinstance(value, bool) and value > 0:
            num_classes = value
        else:
            raise UsageError(f"override '{text}': num_classes must be a whole number of at least 1")
    raw, origin = apply_overrides({"model": {"name": name}}, arguments)
    origin = {key: text.removeprefix("model.") for key, text in origin.items()}  # as the user wrote them
    config = validate_config(raw, ConfigSource(label=f"model {name}", run_name=name), origin)
    return build_model(config, _image_inputs(image_shape, num_classes)), image_shape


def _python_model(spec: str, overrides: list[str], shapes: list[tuple[int, ...]]) -> tuple[nn.Module, str]:
    """FILE.py:NAME: the module NAME of the file, or what NAME returns when called with the key=value arguments."""
    from trainlab.config import parse_override

    file, _, attribute = spec.rpartition(":")
    path = Path(file).expanduser()
    if not path.is_file():
        raise UsageError(f"{spec}: no such file {path}")
    if not shapes:
        raise UsageError(f"{spec}: give the shape of each input of the model, e.g. --input 3x32x32 (once per input)")
    module_spec = importlib.util.spec_from_file_location(path.stem, path)
    source = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(source)
    if not hasattr(source, attribute):
        raise UsageError(f"{path} defines no '{attribute}'{did_you_mean(attribute, vars(source))}")
    found: Any = getattr(source, attribute)
    arguments = {".".join(key): value for key, value in map(parse_override, overrides)}
    model = found if isinstance(found, nn.Module) else found(**arguments) if callable(found) else found
    if not isinstance(model, nn.Module):
        raise UsageError(f"{spec} is a {type(model).__name__}, not a torch.nn.Module nor a class or function that makes one")
    return model, attribute
