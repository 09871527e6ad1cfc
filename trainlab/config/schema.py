"""The typed schema of an experiment: its sections and fields, their defaults (the embedded default experiment)
and the checks that span several fields. Sections that name a registered builder take its arguments beside `name`."""

from __future__ import annotations

from typing import Any, Literal

import pydantic
import yaml
from pydantic import BaseModel, ConfigDict, Field

from trainlab.config.recipe import BatchNormConfig, EMAConfig, LookaheadConfig
from trainlab.config.sweep import SweepConfig
from trainlab.engine.monitor import MonitorField
from trainlab.registry import Registry, did_you_mean

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
