"""From a config to its parts: the prepared data and the model built for it.

The runner, the doctor, `trainlab summary` and the Predictor build through here, so a model is made
the same way for training and for loading from a run folder.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch import nn

from trainlab.config import ExperimentConfig, LossConfig
from trainlab.data import DATASETS, PreparedData, Preprocess, prepare
from trainlab.data.augment import build_augment
from trainlab.engine.device import Placement, resolve_placement
from trainlab.engine.losses import LOSSES
from trainlab.engine.optim import OPTIMIZERS, parameter_groups, scale_learning_rates
from trainlab.engine.tasks import Task, build_task, default_task, output_width
from trainlab.errors import ConfigError, ConfigNote
from trainlab.models import MODELS, fits, model_normalisation, model_tokenizer, models_for
from trainlab.models.transfer import is_transfer_model, transfer_model_names
from trainlab.models.init import initialize
from trainlab.models.tuning import add_test_time_augmentation, configure_batchnorm
from trainlab.models.user import is_user_model


def load_data(config: ExperimentConfig, placement: Placement | None = None) -> PreparedData:
    """The config's dataset, split, normalised and batched on the placement's device; tokenized by the model's
    tokenizer when the model brings one (a pretrained transformer)."""
    placement = placement or resolve_placement(config.device, config.precision, config.channels_last)
    tokenizer = model_tokenizer(config.model.name, config.model.args)  # a pretrained model's own word pieces
    normalisation = model_normalisation(config.model.name, config.model.args)  # what its pretrained weights expect
    dataset = DATASETS.build(config.data.name, **config.data.args)
    split_seed = config.seed if config.data.split_seed is None else config.data.split_seed
    return prepare(
        dataset, batch_size=config.data.batch_size, eval_batch_size=eval_batch_size(config, dataset),
        val_size=config.data.val_size, split_seed=split_seed, seed=config.seed, device=placement.device,
        channels_last=placement.channels_last, augment=build_augment(**config.augment), name=config.data.name,
        tokenizer=tokenizer, normalisation=normalisation,
    )  # fmt: skip


EVAL_BATCH_SIZE, EVAL_BATCH_PIXELS = 512, 512 * 32 * 32


def eval_batch_size(config: ExperimentConfig, dataset: Any = None) -> int:
    """data.eval_batch_size, or by default 512 examples, fewer for a model that sees images larger than 32x32 (the
    dataset's, or resized to `model.input_size`): as many as hold the pixels of 512 images of 32x32. At 128x128,
    batches of 512 evaluate 3x slower on a CPU than batches of 32, their activations out of the caches."""
    if config.data.eval_batch_size is not None:
        return config.data.eval_batch_size
    shape, size = getattr(dataset, "image_shape", None), config.model.args.get("input_size")
    if shape is None:  # texts and tables (where a model's input_size is no square of pixels)
        return EVAL_BATCH_SIZE
    pixels = size * size if isinstance(size, int) else shape[-2] * shape[-1]
    return max(8, min(EVAL_BATCH_SIZE, EVAL_BATCH_PIXELS // max(pixels, 1)))


def resolve_task(config: ExperimentConfig, preprocess: Preprocess) -> Task:
    """The config's task for this data (auto: regression for numeric targets, else classification). The config is
    made to say it: `task`, and the loss and monitor when the config left them out, become the task's."""
    name = default_task(preprocess) if config.task == "auto" else config.task
    with as_config_error("task", name):
        task = build_task(name, preprocess)
        task.outputs(preprocess.model_inputs()["num_classes"])
    config.task = name
    if "loss" not in config.model_fields_set and config.loss.name != task.default_loss:
        config.loss = LossConfig(name=task.default_loss)  # a classification's loss section stays as validated
    if "monitor" not in config.model_fields_set:
        config.monitor = task.default_monitor
    for field, monitor in (("monitor", config.monitor), ("early_stopping.monitor", config.early_stopping.monitor)):
        if monitor.name not in task.monitors:
            raise ConfigError(f"{field}: {monitor.name} is not a metric of a {name} task; expected one of: {', '.join(task.monitors)}")
    return task


def build_loss(config: ExperimentConfig, task: Task) -> nn.Module:
    """The config's loss, fed as the task needs (one logit, standardised targets)."""
    with as_config_error("loss", config.loss.name):
        return task.loss(LOSSES.build(config.loss.name, task=task.name, **config.loss.args))


def build_model(
    config: ExperimentConfig, inputs: Mapping[str, Any], placement: Placement | None = None, example: torch.Tensor | None = None,
) -> nn.Module:
    """The config's model, given exactly the injected `inputs` its builder names (PreparedData.model_inputs, or a
    run's Preprocess.model_inputs), initialised from the global generators as config.init says, and placed.

    A user's model (their file's or object) is first run on two copies of `example`, one input of the data: an output
    that does not fit the task is refused before training, and lazy layers take their shapes."""
    name = config.model.name
    if "num_classes" in inputs:  # a binary task's model gives one logit for its two classes
        with as_config_error("task", config.task):
            inputs = {**inputs, "num_classes": output_width(config.task, inputs["num_classes"])}
    if not fits(name, inputs):
        missing = ", ".join(sorted(set(MODELS.injected(name)) - set(inputs)))
        fitting = ", ".join(models_for(inputs)) or "none"
        raise ConfigError(
            f"model '{name}' is built from {missing}, which dataset '{config.data.name}' does not give; "
            f"models for this data: {fitting}"
        )
    if config.tta != "none" and "image_size" not in inputs:
        raise ConfigError(
            f"tta: {config.tta} averages over mirrored and shifted images, but dataset '{config.data.name}' gives no "
            "images; set tta: none"
        )
    with as_config_error("model", name):
        model = MODELS.build(name, **{key: inputs[key] for key in MODELS.injected(name)}, **config.model.args)
    if is_user_model(name) and example is not None:
        check_outputs(model, example, inputs["num_classes"], name, config.task)
    model = initialize(model, config.init)
    apply_transfer(model, config)
    if not config.batchnorm.is_default():
        configure_batchnorm(model, **config.batchnorm.model_dump())
    with as_config_error("tta", config.tta):
        add_test_time_augmentation(model, config.tta)
    if placement is not None:
        memory_format = torch.channels_last if placement.channels_last else torch.preserve_format
        model = model.to(placement.device, memory_format=memory_format)
    return model


OUTPUTS_MEANING = {"binary": "one logit, the positive class's", "regression": "one value per target column"}


def check_outputs(model: nn.Module, example: torch.Tensor, expected: int, name: str, task: str = "classification") -> None:
    """Refuse a model whose output for a batch of two examples is not (2, `expected`)."""
    batch = torch.stack([example, example])
    training = model.training
    model.eval()
    try:
        with torch.no_grad():
            output = model(batch)
    except Exception as e:  # the user's forward: show its error, as a config mistake
        raise ConfigError(f"model '{name}' fails on a batch of the data's inputs {tuple(batch.shape)}: "
                          f"{type(e).__name__}: {e}") from None  # fmt: skip
    finally:
        model.train(training)
    if not isinstance(output, torch.Tensor) or tuple(output.shape) != (2, expected):
        got = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__
        raise ConfigError(f"model '{name}' gives outputs of shape {got} for a batch of 2 inputs {tuple(batch.shape[1:])}; "
                          f"the task needs (2, {expected}): {OUTPUTS_MEANING.get(task, 'one score per class')}")  # fmt: skip


def apply_transfer(model: nn.Module, config: ExperimentConfig) -> None:
    """transfer.freeze and transfer.frozen_stages on a model with a pretrained backbone; a ConfigError for a model
    that has none (or lists no stages, for frozen_stages)."""
    transfer = config.transfer
    settings = (transfer.freeze, transfer.unfreeze_at_epoch, transfer.backbone_lr_factor, transfer.frozen_stages)
    if settings == ("none", None, 1.0, 0):
        return  # cache_features and compile_backbone only act on a frozen backbone: harmless on any model
    if not is_transfer_model(model):
        with_backbone = ", ".join(transfer_model_names())
        raise ConfigError(f"transfer.*: model '{config.model.name}' has no backbone and head to train apart; "
                          f"models with one: {with_backbone}")  # fmt: skip
    if transfer.frozen_stages:
        if not model.backbone_stages():
            raise ConfigError(f"transfer.frozen_stages: model '{config.model.name}' does not list its backbone's stages; "
                              "transfer.freeze=backbone freezes the whole backbone")  # fmt: skip
        try:
            model.freeze_stages(transfer.frozen_stages)
        except ValueError as e:
            raise ConfigError(f"transfer.frozen_stages: model '{config.model.name}': {e}") from None
    model.freeze_backbone(transfer.freeze == "backbone")


def build_optimizer(config: ExperimentConfig, model: nn.Module) -> torch.optim.Optimizer:
    """The config's optimizer over the model's parameters, grouped as optimizer.no_decay, optimizer.layer_decay
    and transfer.backbone_lr_factor say (one group of all parameters when none is set). A backbone that
    transfer.unfreeze_at_epoch will unfreeze is in the optimizer from the start, without gradients until then."""
    settings, transfer = config.optimizer, config.transfer
    backbone = model.backbone_parameters() if is_transfer_model(model) else []
    with as_config_error("optimizer", settings.name):
        grouped = settings.no_decay or settings.layer_decay != 1.0 or settings.norm_lr_factor != 1.0
        if not grouped and transfer.backbone_lr_factor == 1.0:
            optimizer = OPTIMIZERS.build(settings.name, model.parameters(), **settings.args)
        else:
            groups = parameter_groups(model, no_decay=settings.no_decay, layer_decay=settings.layer_decay,
                                      backbone=backbone, backbone_lr_factor=transfer.backbone_lr_factor,
                                      norm_lr_factor=settings.norm_lr_factor)  # fmt: skip
            optimizer = scale_learning_rates(OPTIMIZERS.build(settings.name, groups, **settings.args))
    if settings.lr_scaling == "linear":
        factor = config.data.batch_size / settings.base_batch_size
        for group in optimizer.param_groups:
            group["lr"] *= factor
        warnings.warn(ConfigNote(
            f"optimizer.lr_scaling=linear: learning rate {optimizer.defaults['lr']:g} x {config.data.batch_size}/"
            f"{settings.base_batch_size} = {optimizer.defaults['lr'] * factor:g} (data.batch_size/optimizer.base_batch_size)"
        ))  # fmt: skip
    return optimizer


@contextlib.contextmanager
def as_config_error(section: str, name: str) -> Iterator[None]:
    """A builder's ValueError is a mistake in its config section: exit 2, naming the section."""
    try:
        yield
    except ValueError as e:
        raise ConfigError(f"{section} '{name}': {e}") from None
