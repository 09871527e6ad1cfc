"""Models the user brings: a class or function of their own file (`model.name: my_nets.py:ResNetV2`), or a
module object handed to `trainlab.fit` (`python:MyNet`, known to this process only).

A file's model is called with its config arguments, plus the data's shape for each of the parameters it
names among `DATA_INPUTS`. Its run records the file's hash (`model_file_record`), and a run whose file
changed or went away is refused when loaded (`check_model_file`), since the weights would not fit the code.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import importlib.util
import inspect
import re
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from trainlab.errors import ConfigError, UsageError
from trainlab.registry import did_you_mean

# What trainlab gives a user's model builder when one of its parameters has this name.
DATA_INPUTS = ("in_channels", "num_classes", "image_size", "vocabulary", "in_features", "num_outputs")
FILE_SPEC = re.compile(r"^(?P<file>.+\.py):(?P<attribute>[A-Za-z_]\w*)$")
OBJECT_PREFIX = "python:"
RUN_COPY = "model_file.py"  # the file as the run trained it, kept in the run folder


def is_file_spec(name: str) -> bool:
    return bool(FILE_SPEC.match(name))


def is_user_model(name: str) -> bool:
    return is_file_spec(name) or name.startswith(OBJECT_PREFIX)


@dataclass(frozen=True)
class ModelFile:
    path: Path
    attribute: str
    sha256: str


def model_file(spec: str) -> ModelFile:
    """The file, attribute and current hash of `file.py:NAME`; a UsageError when the file is not there."""
    match = FILE_SPEC.match(spec)
    if match is None:
        raise ConfigError(f"'{spec}' is not FILE.py:NAME")
    path = Path(match["file"]).expanduser()
    try:
        stat = path.stat()
        digest = _sha256(path.absolute(), stat.st_mtime_ns, stat.st_size)
    except FileNotFoundError:
        raise ConfigError(f"model file not found: {path} (model.name: {spec})") from None
    except OSError as e:
        raise ConfigError(f"cannot read model file {path}: {e.strerror or e}") from None
    return ModelFile(path.absolute(), match["attribute"], digest)


def model_file_record(spec: str) -> dict[str, str]:
    """What a run keeps of its model file: the path and the sha256 of its contents."""
    found = model_file(spec)
    return {"path": str(found.path), "sha256": found.sha256}


def check_model_file(spec: str, recorded: dict[str, str] | None, run: Path) -> None:
    """Refuse to rebuild a run's model (`spec`, its model.name) from a file that is gone or changed since the
    run trained (`recorded`: model_file_record then, from its checkpoint)."""
    if not is_file_spec(spec) or recorded is None:
        return  # a registered model, or a checkpoint written before runs recorded their file
    copy_hint = f"; the run's copy of it is {run / RUN_COPY}" if (run / RUN_COPY).is_file() else ""
    path = Path(recorded["path"])
    if not path.is_file():
        raise UsageError(f"{run} was trained with the model in {path}, which is gone: put it back{copy_hint}")
    stat = path.stat()
    current = _sha256(path.absolute(), stat.st_mtime_ns, stat.st_size)
    if current != recorded["sha256"]:
        raise UsageError(
            f"{path} changed since {run} was trained with it (sha256 {recorded['sha256'][:12]}… then, "
            f"{current[:12]}… now), so its weights may not fit the code: restore the file{copy_hint}, or train again"
        )


@functools.lru_cache(maxsize=64)
def _sha256(path: Path, mtime_ns: int, size: int) -> str:
    """The file's hash, once per version of it (the registry looks a model up several times per run)."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


@functools.lru_cache(maxsize=32)
def _load_module(path: Path, sha256: str) -> Any:
    """The user's file run as a module, once per contents; its folder is importable while it runs, so it may
    import its neighbours. A file that raises is a ConfigError that shows the error and its line."""
    stem = re.sub(r"\W", "_", path.stem)
    name = f"trainlab_user_{sha256[:16]}_{stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.parent))
    try:
        spec.loader.exec_module(module)
    except Exception as e:  # the user's code: any error is theirs to see, without trainlab's frames
        frames = [f for f in traceback.extract_tb(e.__traceback__) if f.filename == str(path)]
        line = f", line {frames[-1].lineno}" if frames else f", line {e.lineno}" if isinstance(e, SyntaxError) else ""
        raise ConfigError(f"model file {path}{line} does not import: {type(e).__name__}: {e}") from None
    finally:
        sys.path.remove(str(path.parent))
    return module


def file_builder(spec: str) -> Callable[..., nn.Module]:
    """The class or function NAME of `file.py:NAME`, wrapped to refuse anything but an nn.Module as its result."""
    found_file = model_file(spec)
    module = _load_module(found_file.path, found_file.sha256)
    attribute = found_file.attribute
    if not hasattr(module, attribute):
        defined = [n for n, v in vars(module).items() if not n.startswith("_") and (inspect.isclass(v) or inspect.isfunction(v))]
        raise ConfigError(f"{found_file.path} defines no '{attribute}'{did_you_mean(attribute, defined)}; "
                          f"it defines: {', '.join(defined) or 'no class or function'}")  # fmt: skip
    found = getattr(module, attribute)
    if isinstance(found, nn.Module):
        raise ConfigError(f"{spec} is a module object; name its class, or a function that builds it, so that each run "
                          "starts from fresh weights")  # fmt: skip
    if not callable(found):
        raise ConfigError(f"{spec} is a {type(found).__name__}, not a class or function that builds a torch.nn.Module")
    return _returning_a_module(found, spec)


def _returning_a_module(builder: Callable[..., Any], spec: str) -> Callable[..., nn.Module]:
    @functools.wraps(builder)  # keeps the signature, which the config is checked against
    def build(*args: Any, **kwargs: Any) -> nn.Module:
        model = builder(*args, **kwargs)
        if not isinstance(model, nn.Module):
            raise ConfigError(f"{spec} returned a {type(model).__name__}, not a torch.nn.Module")
        return model

    return build


def data_inputs(builder: Callable[..., Any]) -> tuple[str, ...]:
    """The parameters of a user's builder that trainlab fills from the data."""
    return tuple(name for name in inspect.signature(builder).parameters if name in DATA_INPUTS)


# ------------------------------------------------------------------------------------ objects from Python

_OBJECTS: dict[str, nn.Module] = {}


def register_object(model: nn.Module) -> str:
    """A name under which `model` (a module handed to trainlab.fit) builds in this process: `python:ClassName`
    (`python:ClassName-2`, ... for different objects of one class)."""
    base = f"{OBJECT_PREFIX}{type(model).__name__}"
    name, count = base, 1
    while name in _OBJECTS and _OBJECTS[name] is not model:
        count += 1
        name = f"{base}-{count}"
    _OBJECTS[name] = model
    return name


def object_builder(name: str) -> Callable[[], nn.Module]:
    """Builds a copy of the registered object (its weights as given to trainlab.fit, or as it trained)."""
    if name not in _OBJECTS:
        raise UsageError(
            f"model '{name}' was a Python object handed to trainlab.fit in another process; a run folder cannot rebuild "
            f"it: put its class in a file and name it as model.name: FILE.py:{name.removeprefix(OBJECT_PREFIX)}"
        )

    def build() -> nn.Module:
        return copy.deepcopy(_OBJECTS[name])

    build.__doc__ = f"the {type(_OBJECTS[name]).__name__} object handed to trainlab.fit"
    return build
