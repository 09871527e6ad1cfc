"""Where a config comes from: a YAML file, a run folder's config.yaml or a preset under experiments/, read with the
line of every key (for error messages)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from trainlab.errors import ConfigError
from trainlab.registry import did_you_mean


@dataclass
class ConfigSource:
    """Where a config came from: used in error messages and for the default run name."""

    label: str  # "default", "preset workshop/task1", "file my.yaml"
    run_name: str
    path: Path | None = None
    text: str = ""
    lines: dict[tuple[str, ...], int] = field(default_factory=dict)  # dotted path -> line in `path`
    document: Any = None  # `text` parsed


def preset_dirs() -> list[Path]:
    """Folders searched for presets: ./experiments, then the ones shipped with trainlab."""
    package = Path(__file__).resolve().parent.parent
    candidates = [Path.cwd() / "experiments", package / "_experiments", package.parent / "experiments"]
    seen, dirs = set(), []
    for d in candidates:
        if d.is_dir() and d.resolve() not in seen:
            seen.add(d.resolve())
            dirs.append(d)
    return dirs


def list_presets(pattern: str = "*") -> dict[str, Path]:
    import fnmatch

    presets: dict[str, Path] = {}
    for d in reversed(preset_dirs()):  # earlier folders win
        for p in sorted(d.rglob("*.yaml")):
            presets[p.relative_to(d).with_suffix("").as_posix()] = p
    return {k: v for k, v in sorted(presets.items()) if fnmatch.fnmatch(k, pattern)}


# A run folder is named <name>-<YYYYmmdd-HHMMSS>, with -2, -3, ... for runs started in the same second.
RUN_FOLDER_STAMP = re.compile(r"-\d{8}-\d{6}(-\d+)?$")


def resolve_source(spec: str | None) -> ConfigSource:
    """A config file, a run folder (its config.yaml), or a preset name; None is the embedded default."""
    if spec is None:
        return ConfigSource(label="embedded default", run_name="default")
    path = Path(spec).expanduser()
    if path.is_dir() and (path / "config.yaml").is_file():
        return _read_source(path / "config.yaml", f"run folder {path}", run_name_of(path))
    if path.is_file():
        return _read_source(path, f"file {path}", _file_run_name(path))
    presets = list_presets()
    name = spec.removesuffix(".yaml")
    if name in presets:
        return _read_source(presets[name], f"preset {name}", Path(name).name)
    if path.suffix in (".yaml", ".yml") or "/" in spec and path.parent.exists():
        raise ConfigError(f"config file not found: {path}")
    raise ConfigError(
        f"'{spec}' is neither a config file, a run folder nor a preset{did_you_mean(name, presets)}; "
        f"presets: {', '.join(presets) or 'none'}"
    )


def run_name_of(folder: Path) -> str:
    """The name a run folder was made with: runs/task1-20261123-101500 -> task1."""
    name = folder.resolve().name
    return RUN_FOLDER_STAMP.sub("", name) or name


def _file_run_name(path: Path) -> str:
    """A file's stem, except a run folder's config.yaml: that run's name, so a re-run keeps it."""
    folder = path.resolve().parent
    is_run = RUN_FOLDER_STAMP.search(folder.name) or (folder / "run.json").is_file()
    return run_name_of(folder) if path.name == "config.yaml" and is_run else path.stem


def _read_source(path: Path, label: str, run_name: str) -> ConfigSource:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read config ({e})") from None
    document, lines = _parse_yaml(path, text)
    return ConfigSource(label=label, run_name=run_name, path=path, text=text, lines=lines, document=document)


def _parse_yaml(path: Path, text: str) -> tuple[Any, dict[tuple[str, ...], int]]:
    """A YAML text's document and the line of every key, by dotted path (for error messages).
    A key written twice in one mapping is refused: YAML would silently keep the last."""
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        lines = _key_lines(path, root)
        return (loader.construct_document(root) if root is not None else None), lines
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f", line {mark.line + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e)
        raise ConfigError(f"{path}{where}: not valid YAML ({problem})") from None
    finally:
        loader.dispose()


def _key_lines(path: Path, root: yaml.Node | None) -> dict[tuple[str, ...], int]:
    lines: dict[tuple[str, ...], int] = {}
    seen: set[int] = set()  # an anchored node is walked once, however many aliases name it

    def walk(node: yaml.Node, prefix: tuple[str, ...]) -> None:
        if id(node) in seen:
            return
        seen.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                walk(item, (*prefix, str(i)))
        elif isinstance(node, yaml.MappingNode):
            first: dict[tuple[str, str], int] = {}
            for key, value in node.value:
                if key.tag == "tag:yaml.org,2002:merge":  # `<<: *base` may repeat keys: that is its purpose
                    continue
                here = (*prefix, str(key.value))
                line = key.start_mark.line + 1
                if isinstance(key, yaml.ScalarNode):
                    if (key.tag, key.value) in first:
                        raise ConfigError(
                            f"{path}: key '{'.'.join(here)}' is written twice, on lines {first[key.tag, key.value]} "
                            f"and {line}; YAML would keep only the last: delete one"
                        )
                    first[key.tag, key.value] = line
                lines[here] = line
                walk(value, here)

    if root is not None:
        walk(root, ())
    return lines
