"""`trainlab summary SPEC`: which model a spec names (a preset, a config file, a run folder, a registered
model, FILE.py:NAME), built for its input; the table itself is trainlab.evaluation.model_summary."""

from __future__ import annotations

import importlib.util
import inspect
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from torch import Tensor, nn

from trainlab.errors import UsageError
from trainlab.evaluation.model_summary import ModelSummary, summarize
from trainlab.models import MODELS
from trainlab.models.registry import IMAGE_MODEL_INPUTS, reads_text
from trainlab.registry import did_you_mean

if TYPE_CHECKING:
    from trainlab.config import ExperimentConfig



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
    if not set(IMAGE_MODEL_INPUTS) <= set(inspect.signature(MODELS.get(name)).parameters):
        raise UsageError(
            f"'{name}' is not an image model: a text model is built from its data's vocabulary, so give a config "
            f"that names it (trainlab summary emotion/lstm_learned, or data.name=emotion model.name={name}); in Python, "
            "trainlab.tools.summary.summarize(model, example) summarises any model on an example input"
        )


def _configured_model(spec: str | None, overrides: list[str], shapes: list[tuple[int, ...]]) -> tuple[nn.Module, tuple | Tensor, str]:
    """The model of a preset, config file or run folder, for its data's shape (or the one --input gives)."""
    from trainlab.config import list_presets, load_config
    from trainlab.data import dataset_shape
    from trainlab.experiment import build_configured_model
    from trainlab.run_folder import RunFolder

    path = Path(spec or "")
    if spec is not None and not path.exists() and path.suffix not in (".yaml", ".yml") and spec not in list_presets():
        raise UsageError(
            f"'{spec}' is neither a registered model, a preset, a config file nor a run folder"
            f"{did_you_mean(spec, [*MODELS.names(), *list_presets()])}; models: {', '.join(MODELS.names())}; "
            "presets: trainlab list presets"
        )
    config, source = load_config(spec, overrides)
    if reads_text(config.model.name):
        return _configured_text_model(config, shapes)
    _image_model(config.model.name)
    record = RunFolder(source.path.parent).read_run() if source.path is not None else {}
    if record.get("data_shape") and record.get("num_classes"):  # a run folder knows its data's shape
        image_shape, num_classes = tuple(record["data_shape"]), record["num_classes"]
    else:
        image_shape, num_classes = dataset_shape(config.data.name, config.data.args)
    if shapes:
        image_shape = _one_image(shapes, config.model.name)
    return build_configured_model(config, image_shape, num_classes), image_shape, config.model.name


def _configured_text_model(config: ExperimentConfig, shapes: list[tuple[int, ...]]) -> tuple[nn.Module, Tensor, str]:
    """A text model is built from its data (the vocabulary, the vectors): read it, and show one training text."""
    from trainlab.experiment import build_text_model, load_data

    if shapes:
        raise UsageError(f"'{config.model.name}' reads token ids from its dataset: leave --input out")
    data = load_data(config)
    return build_text_model(config, data), data.example(), config.model.name


def _registered_model(name: str, overrides: list[str], shapes: list[tuple[int, ...]]) -> tuple[nn.Module, tuple]:
    """A registered model for --input CxHxW; key=value are its arguments, and num_classes (default 10)."""
    from trainlab.config import ConfigSource, apply_overrides, parse_override, validate_config
    from trainlab.experiment import build_configured_model

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
    return build_configured_model(config, image_shape, num_classes), image_shape


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
