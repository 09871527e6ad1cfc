"""Experiment configs: typed schema, YAML files, presets and `key=value` overrides.

The schema's defaults are the embedded default experiment: `trainlab run` with no
argument trains the workshop CNN on scikit-learn's digits, offline. A config file
(or a preset under `experiments/`) states only what differs from these defaults.

Sections that name a registered builder (`model`, `optimizer`, `scheduler`, `loss`,
`data`) take that builder's keyword arguments beside `name`; they are checked against
the builder's signature, so `optimizer.lrr` is refused at load, before any data is read.
"""

from __future__ import annotations

import copy
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pydantic
import yaml
from pydantic import BaseModel, ConfigDict, Field

from trainlab.engine.monitor import MonitorField
from trainlab.errors import ConfigError
from trainlab.registry import Registry, arguments_schema, configurable_arguments, did_you_mean
from trainlab.recipe_config import BatchNormConfig, EMAConfig, LookaheadConfig
from trainlab.sweep_config import SweepConfig


# What torch.manual_seed takes: a 64-bit integer, signed or not.
SEED_MIN, SEED_MAX = -(2**63), 2**64 - 1


def _check_seed(value: int | None) -> int | None:
    if value is not None and not SEED_MIN <= value <= SEED_MAX:
        raise ValueError(f"got {value}; a seed must lie in {SEED_MIN}..{SEED_MAX} (-2**63..2**64-1, what torch.manual_seed takes)")
    return value


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True, validate_assignment=True)


class BuilderSection(Section):
    """A section whose `name` picks a registered builder; other keys are that builder's arguments."""

    model_config = ConfigDict(extra="allow", coerce_numbers_to_str=True)
    name: str

    @property
    def args(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class DataConfig(BuilderSection):
    name: str = Field("digits", description="registered dataset (`trainlab list datasets`)")
    batch_size: int = Field(64, gt=0, description="training examples per step")
    eval_batch_size: int | None = Field(
        None, gt=0, description="examples per batch when evaluating; default: 512 (fastest for small CNNs on a CPU), fewer "
        "for images larger than 32x32 (or resized by `model.input_size`): as many as hold the pixels of 512 of 32x32"
    )
    val_size: float = Field(
        0.1, gt=0, description="validation part of the training set: a fraction (< 1) or a count of images (>= 1)"
    )

    @pydantic.field_serializer("val_size")
    def _count_as_an_int(self, value: float) -> float | int:
        return int(value) if value >= 1 and value == int(value) else value  # "val_size: 5000", not 5000.0
    split_seed: int | None = Field(
        None, description="seed of the train/validation split, -2**63..2**64-1; default: the run's seed"
    )
    _split_seed_range = pydantic.field_validator("split_seed")(_check_seed)


class ModelConfig(BuilderSection):
    name: str = Field("workshop_cnn", description="registered model (`trainlab list models`)")


class OptimizerConfig(BuilderSection):
    name: str = Field("adam", description="registered optimizer (`trainlab list optimizers`)")
    no_decay: list[Literal["bias", "norm"]] = Field(
        default_factory=list, description="parameters without weight decay: bias (every bias), norm (LayerNorm/BatchNorm weights)"
    )
    layer_decay: float = Field(
        1.0, gt=0, le=1, description="layer-wise learning-rate decay: each layer below the top learns at this times the rate "
        "of the layer above (pretrained transformers; 1 = off)"
    )
    norm_lr_factor: float = Field(
        1.0, gt=0, description="normalisation layers' parameters learn at this times the rate, their weight decay divided "
        "by it (airbench: 64, for batch-norm shifts)"
    )
    lr_scaling: Literal["none", "linear"] = Field(
        "none", description="linear: train at lr x data.batch_size / base_batch_size, the linear-scaling rule for large "
        "(data-parallel) batches of Goyal et al. 2017; pair it with scheduler.warmup_epochs"
    )
    base_batch_size: int = Field(256, gt=0, description="the batch size that optimizer.lr was chosen for (lr_scaling: linear)")


class SchedulerConfig(BuilderSection):
    name: str = Field("constant", description="registered learning-rate schedule (`trainlab list schedulers`)")


class LossConfig(BuilderSection):
    name: str = Field("cross_entropy", description="registered loss (`trainlab list losses`)")


class RegularizationConfig(Section):
    l1: float = Field(0.0, ge=0, description="weight of the L1 penalty sum|w| added to the loss (layer weights, not biases)")
    l2: float = Field(0.0, ge=0, description="weight of the explicit L2 penalty sum w^2 added to the loss; with l1: elastic net")
    clip_grad_norm: float | None = Field(None, gt=0, description="clip the global gradient norm to this value")
    clip_grad_value: float | None = Field(None, gt=0, description="clip every gradient value to [-v, v]")


class EarlyStoppingConfig(Section):
    enabled: bool = Field(False, description="stop when `monitor` stops improving")
    monitor: MonitorField = Field("val/loss", validate_default=True, description="val/loss, val/acc or val/macro_f1")
    patience: int = Field(5, ge=1, description="epochs without improvement before stopping")
    min_delta: float = Field(0.0, ge=0, description="smallest change that counts as an improvement")
    restore_best_weights: bool = Field(True, description="end with the weights of the best epoch")


class TransferConfig(Section):
    """Training a pretrained backbone with a new head (models with a backbone: vgg16, efficientnet_lite0)."""

    freeze: Literal["none", "backbone"] = Field(
        "none", description="backbone: only the head trains; the backbone's weights and batch-norm statistics stay fixed"
    )
    unfreeze_at_epoch: int | None = Field(
        None, ge=2, description="with freeze: backbone, the epoch (1-based) from which the whole model trains"
    )
    backbone_lr_factor: float = Field(
        1.0, gt=0, le=1, description="the backbone's learning rate is the optimizer's times this (discriminative rates)"
    )
    frozen_stages: int = Field(
        0, ge=0, description="the backbone's first N stages stay frozen for the whole run (weights and batch-norm "
        "statistics fixed, no backward pass through them): cheaper steps. efficientnet_lite0 has 9 (the stem, 7 block "
        "stages, the head conv), vgg16 5 (its conv blocks)"
    )
    cache_features: bool = Field(
        True, description="a backbone frozen for the whole run, without augmentation: compute its outputs once"
    )
    compile_backbone: bool = Field(
        True, description="with cached features: compile the frozen backbone (torch.compile, batch norm folded) for "
        "the feature and test passes, in batches of 32; about 30 s first; efficientnet_frozen: 304 s instead of 446 s",
    )

    @pydantic.model_validator(mode="after")
    def _unfreeze_needs_freeze(self) -> TransferConfig:
        if self.unfreeze_at_epoch is not None and self.freeze != "backbone":
            raise ValueError("unfreeze_at_epoch needs freeze: backbone (the backbone trains from the start otherwise)")
        return self


class ExperimentConfig(Section):
    name: str | None = Field(None, description="run name, the prefix of the run folder; default: preset or file name")
    seed: int = Field(0, description="seeds Python, NumPy and torch, the split and the shuffling; -2**63..2**64-1")
    epochs: int = Field(15, gt=0, description="passes over the training split")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto: cuda when available, else cpu")
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto", description="auto: bf16 autocast on a GPU or on a CPU with native bf16, else fp32"
    )
    channels_last: Literal["auto"] | bool = Field(
        "auto", description="channels-last memory format for images; auto: on wherever it is faster (bf16 CPU, GPU)"
    )
    task: Literal["auto", "classification", "binary", "regression"] = Field(
        "auto", description="what the model learns; auto: regression for numeric targets (tables), else classification; "
        "binary: two classes, one logit (sigmoid, binary cross-entropy)"
    )
    monitor: MonitorField = Field(
        "val/acc", validate_default=True, description="metric that picks checkpoints/best.pt: val/loss, val/acc or val/macro_f1; "
        "binary: val/acc, val/f1, val/auc (its default); regression: val/mae (its default), val/rmse, val/r2"
    )
    test_checkpoint: Literal["best", "last"] = Field("best", description="weights evaluated on the test set")
    output_dir: str = Field("runs", description="folder that receives run folders")
    threads: Literal["auto"] | int = Field(
        "auto", description="CPU threads of torch; auto: all cores, fewer while other processes keep cores busy"
    )
    progress: bool = Field(True, description="show a progress bar in a terminal")
    compile: bool = Field(
        False, description="take the training steps through torch.compile: a slow first step (seconds to minutes), "
        "then faster steps on GPUs (on CPUs it rarely pays: measure it)"
    )
    init: str = Field("default", description="initialisation of conv and linear weights (biases zeroed): default, "
                      "xavier_uniform, xavier_normal, kaiming_uniform, kaiming_normal")
    patch_whitening: bool = Field(
        False, description="set the first conv from the training images so that it whitens their patches (airbench)"
    )
    whitening_bias_epochs: int | None = Field(
        None, ge=0, description="with patch_whitening: the whitening conv's bias trains for the first N epochs, then "
        "stays as it is (airbench: 3); unset: it trains every epoch"
    )
    tta: Literal["none", "flip", "flip_translate"] = Field(
        "none", description="evaluate with the logits averaged over mirrored (flip) and one-pixel-shifted copies"
    )
    validate_every: int = Field(
        1, ge=0, description="validate every N epochs and after the last; 0: after the last only (saves time)"
    )
    regularization: RegularizationConfig = Field(default_factory=RegularizationConfig)
    early_stopping: EarlyStoppingConfig = Field(default_factory=EarlyStoppingConfig)
    ema: EMAConfig = Field(default_factory=EMAConfig)
    lookahead: LookaheadConfig = Field(default_factory=LookaheadConfig)
    batchnorm: BatchNormConfig = Field(default_factory=BatchNormConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    augment: dict[str, Any] = Field(
        default_factory=dict, description="batched augmentation of training images (`trainlab list augment`)"
    )
    model: ModelConfig = Field(default_factory=ModelConfig)
    transfer: TransferConfig = Field(default_factory=TransferConfig)
    optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig)
    scheduler: SchedulerConfig = Field(default_factory=SchedulerConfig)
    loss: LossConfig = Field(default_factory=LossConfig)
    sweep: SweepConfig | None = Field(None, description="hyperparameter search for `trainlab sweep`; `trainlab run` ignores it")

    @pydantic.field_validator("threads")
    @classmethod
    def _positive_threads(cls, value: str | int) -> str | int:
        if value != "auto" and value < 1:
            raise ValueError(f"expected auto or a number of threads >= 1, got {value}")
        return value

    _seed_range = pydantic.field_validator("seed")(_check_seed)

    @pydantic.model_validator(mode="after")
    def _early_stopping_needs_validation(self) -> ExperimentConfig:
        if self.early_stopping.enabled and self.validate_every != 1:
            raise ValueError(f"early_stopping watches every epoch's validation, but validate_every is {self.validate_every}: "
                             "set validate_every: 1 or early_stopping.enabled: false")  # fmt: skip
        return self

    @pydantic.model_validator(mode="after")
    def _whitening_bias_needs_whitening(self) -> ExperimentConfig:
        if self.whitening_bias_epochs is not None and not self.patch_whitening:
            raise ValueError(f"whitening_bias_epochs={self.whitening_bias_epochs} sets the bias of the whitening conv, "
                             "which patch_whitening: true makes; set it or leave whitening_bias_epochs out")  # fmt: skip
        return self

    @pydantic.field_validator("init")
    @classmethod
    def _known_init(cls, value: str) -> str:
        from trainlab.models.init import INIT_SCHEMES

        if value not in INIT_SCHEMES:
            raise ValueError(f"unknown init '{value}'{did_you_mean(value, INIT_SCHEMES)}; expected one of: {', '.join(INIT_SCHEMES)}")
        return value

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude={"sweep"} if self.sweep is None else None)

    def to_yaml(self) -> str:
        return yaml.dump(self.to_dict(), Dumper=_ConfigDumper, sort_keys=False)


class _ConfigDumper(yaml.SafeDumper):
    """Sections as blocks, lists on one line: `channels: [32, 32, 64, 64]`."""


_ConfigDumper.add_representer(list, lambda dumper, data: dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=True))
_ConfigDumper.add_representer(tuple, lambda dumper, data: dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=True))


# Which registry checks the extra keys of each builder section; filled lazily to avoid import cycles.
def section_registries() -> dict[str, Registry]:
    from trainlab.data import DATASETS
    from trainlab.engine.losses import LOSSES
    from trainlab.engine.optim import OPTIMIZERS, SCHEDULERS
    from trainlab.models import MODELS

    return {"data": DATASETS, "model": MODELS, "optimizer": OPTIMIZERS, "scheduler": SCHEDULERS, "loss": LOSSES}


# ---------------------------------------------------------------------------------------- sources


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
    package = Path(__file__).resolve().parent
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


# ---------------------------------------------------------------------------------------- overrides


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
