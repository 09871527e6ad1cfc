"""Reading a config: its source, `key=value` overrides, data paths made absolute, then validation against the
schema and each builder's arguments; every problem a ConfigError that names the file and line or the override."""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path
from typing import Any

import pydantic
import yaml
from pydantic import BaseModel

from trainlab.config.schema import BuilderSection, ExperimentConfig, section_registries
from trainlab.config.sources import ConfigSource, resolve_source
from trainlab.errors import ConfigError
from trainlab.registry import arguments_schema, configurable_arguments, did_you_mean


def parse_override(text: str) -> tuple[tuple[str, ...], Any]:
    """'optimizer.lr=3e-4' -> (('optimizer', 'lr'), '3e-4'); the value is parsed as YAML, then typed by the schema."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override '{text}': expected key=value, for example optimizer.lr=3e-4")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return tuple(key.split(".")), value


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> tuple[dict[str, Any], dict[tuple[str, ...], str]]:
    """Set each dotted key in a copy of `raw`; returns it and the override text of each key."""
    raw = copy.deepcopy(raw)
    origin: dict[tuple[str, ...], str] = {}
    for text in overrides:
        path, value = parse_override(text)
        node = raw
        for i, part in enumerate(path[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif not isinstance(child, dict):
                raise ConfigError(f"override '{text}': '{'.'.join(path[: i + 1])}' is not a section")
            node = child
        node[path[-1]] = value
        origin[path] = text
    return raw, origin


# ---------------------------------------------------------------------------------------- loading


def load_config(spec: str | None = None, overrides: list[str] | None = None) -> tuple[ExperimentConfig, ConfigSource]:
    """Read, override and validate a config. Every problem is a ConfigError naming file, line and field."""
    raw, source, origin = load_raw_config(spec, overrides)
    return validate_config(raw, source, origin), source


def load_raw_config(
    spec: str | None = None, overrides: list[str] | None = None
) -> tuple[dict[str, Any], ConfigSource, dict[tuple[str, ...], str]]:
    """The config as written, overrides applied, not yet validated; with its source and each override's text."""
    source = resolve_source(spec)
    raw: Any = copy.deepcopy(source.document)
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{source.path}: expected a mapping of config fields at the top level, got {type(raw).__name__}")
    raw, origin = apply_overrides(raw, overrides or [])
    _resolve_paths(raw, source, origin)
    return raw, source, origin


# Fields that name a file or folder: made absolute at load, so the run folder's config.yaml finds them from anywhere.
DATA_PATH_FIELDS = ("root", "path", "train", "val", "test")


def _resolve_paths(raw: dict[str, Any], source: ConfigSource, origin: dict[tuple[str, ...], str]) -> None:
    """Make the data's relative paths (`data.root`, `data.path`, `data.train`, ...) and a model file
    (`model.name: my_nets.py:Net`) absolute: relative to the config file's folder when written in it, to the
    current folder when given as an override; a data path that exists in neither but under $TRAINLAB_DATA
    is taken from there (`data.root=cifar10-jpeg`); `~` expanded; URLs left alone."""
    from trainlab.data.base import data_root

    def base(key: tuple[str, ...]) -> Path:
        written_in_file = all(key[:n] not in origin for n in (1, 2)) and source.path is not None
        return source.path.resolve().parent if written_in_file else Path.cwd()  # type: ignore[union-attr]

    data = raw.get("data")
    for name in DATA_PATH_FIELDS if isinstance(data, dict) else ():
        value = data.get(name)
        if not isinstance(value, str) or not value.strip() or re.match(r"^[a-z][a-z0-9+.-]*://", value):
            continue
        path = Path(value).expanduser()
        if not path.is_absolute():
            candidates = [base(("data", name)) / path, data_root() / path]
            path = next((c for c in candidates if c.exists()), candidates[0])
        data[name] = os.path.normpath(path)
    model = raw.get("model")
    spec = model.get("name") if isinstance(model, dict) else None
    match = re.match(r"^(?P<file>.+\.py):(?P<attribute>\w+)$", spec) if isinstance(spec, str) else None
    if match:
        path = Path(match["file"]).expanduser()
        path = path if path.is_absolute() else base(("model", "name")) / path
        model["name"] = f"{os.path.normpath(path)}:{match['attribute']}"


def validate_config(
    raw: dict[str, Any], source: ConfigSource, origin: dict[tuple[str, ...], str] | None = None
) -> ExperimentConfig:
    origin = origin or {}
    try:
        config = ExperimentConfig.model_validate(raw)
    except pydantic.ValidationError as e:
        raise _config_error(e, (), source, origin, ExperimentConfig) from None
    from trainlab.data.augment import build_augment

    try:
        config.augment = arguments_schema(build_augment)(**config.augment).model_dump()
    except pydantic.ValidationError as e:
        raise _config_error(e, ("augment",), source, origin, None, sorted(configurable_arguments(build_augment))) from None
    for section, registry in section_registries().items():
        part: BuilderSection = getattr(config, section)
        try:
            parsed = registry.validate(part.name, part.args)
        except ConfigError as e:
            raise ConfigError(f"{_where(source, origin, (section, 'name'))}: {e}") from None
        except pydantic.ValidationError as e:
            allowed = sorted(set(registry.arguments(part.name)) | set(type(part).model_fields))
            raise _config_error(e, (section,), source, origin, None, allowed) from None
        for key, value in parsed.items():
            setattr(part, key, value)
    warmup = config.scheduler.args
    if warmup.get("warmup_epochs") and warmup.get("warmup_steps"):  # which one was meant cannot be guessed
        raise ConfigError(
            f"{_where(source, origin, ('scheduler', 'warmup_steps'))}: scheduler.warmup_epochs={warmup['warmup_epochs']:g} "
            f"and scheduler.warmup_steps={warmup['warmup_steps']} both set the warmup; set one of them to 0"
        )
    return config


def _where(source: ConfigSource, origin: dict[tuple[str, ...], str], path: tuple[str, ...]) -> str:
    """'override optimizer.lr=x' or 'my.yaml, line 4' or 'preset workshop/task1' for a field."""
    for n in range(len(path), 0, -1):
        if path[:n] in origin:
            return f"override '{origin[path[:n]]}'"
        if path[:n] in source.lines:
            return f"{source.path}, line {source.lines[path[:n]]}"
    return str(source.path) if source.path else source.label


def _config_error(
    error: pydantic.ValidationError,
    prefix: tuple[str, ...],
    source: ConfigSource,
    origin: dict[tuple[str, ...], str],
    schema: type[BaseModel] | None,
    allowed: list[str] | None = None,
) -> ConfigError:
    messages = []
    for item in error.errors():
        path = prefix + tuple(str(p) for p in item["loc"])
        dotted = ".".join(path)
        where = _where(source, origin, path)
        if item["type"] == "extra_forbidden":
            choices = allowed if allowed is not None else _fields_at(schema, path[len(prefix) : -1])
            messages.append(
                f"{where}: unknown field '{dotted}'{did_you_mean(path[-1], choices)}; expected one of: {', '.join(choices)}"
            )
        elif item["type"] == "missing":
            messages.append(f"{where}: field '{dotted}' is required")
        elif item["type"] == "value_error":
            field = f"field '{dotted}': " if dotted else ""  # a check of several fields has no one field
            messages.append(f"{where}: {field}{item['ctx']['error']}")
        elif item["type"] == "literal_error":
            choices = re.findall(r"'([^']*)'", item["ctx"]["expected"])
            suggestion = did_you_mean(str(item["input"]), choices)
            messages.append(f"{where}: field '{dotted}': got {item['input']!r}{suggestion}; expected one of: {', '.join(choices)}")
        else:
            messages.append(f"{where}: field '{dotted}': {item['msg'].lower()}, got {item['input']!r}")
    return ConfigError("\n".join(messages))


def _fields_at(schema: type[BaseModel] | None, path: tuple[str, ...]) -> list[str]:
    for part in path:
        if schema is None or part not in schema.model_fields:
            return []
        schema = schema.model_fields[part].annotation  # type: ignore[assignment]
    return sorted(schema.model_fields) if isinstance(schema, type) and issubclass(schema, BaseModel) else []
