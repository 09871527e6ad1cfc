"""From a config to its parts: the prepared data and the model built for it.

The runner, the doctor, `trainlab summary` and the Predictor build through here, so a model is made
the same way for training and for loading from a run folder.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch import nn

from trainlab.config import ExperimentConfig
from trainlab.data import DATASETS, PreparedData, prepare
from trainlab.data.augment import build_augment
from trainlab.engine.device import Placement, resolve_placement
from trainlab.engine.optim import OPTIMIZERS, parameter_groups, scale_learning_rates
from trainlab.errors import ConfigError
from trainlab.models import MODELS, fits, model_normalisation, model_tokenizer, models_for
from trainlab.models.transfer import is_transfer_model, transfer_model_names
from trainlab.models.init import initialize


def load_data(config: ExperimentConfig, placement: Placement | None = None) -> PreparedData:
    """The config's dataset, split, normalised and batched on the placement's device; tokenized by the model's
    tokenizer when the model brings one (a pretrained transformer)."""
    placement = placement or resolve_placement(config.device, config.precision, config.channels_last)
    tokenizer = model_tokenizer(config.model.name, config.model.args)  # a pretrained model's own word pieces
    normalisation = model_normalisation(config.model.name, config.model.args)  # what its pretrained weights expect
    dataset = DATASETS.build(config.data.name, **config.data.args)
    split_seed = config.seed if config.data.split_seed is None else config.data.split_seed
    return prepare(
        dataset, batch_size=config.data.batch_size, eval_batch_size=config.data.eval_batch_size,
        val_size=config.data.val_size, split_seed=split_seed, seed=config.seed, device=placement.device,
        channels_last=placement.channels_last, augment=build_augment(**config.augment), name=config.data.name,
        tokenizer=tokenizer, normalisation=normalisation,
    )  # fmt: skip


def build_model(config: ExperimentConfig, inputs: Mapping[str, Any], placement: Placement | None = None) -> nn.Module:
    """The config's model, given exactly the injected `inputs` its builder names (PreparedData.model_inputs, or a
    run's Preprocess.model_inputs), initialised from the global generators as config.init says, and placed."""
    name = config.model.name
    if not fits(name, inputs):
        missing = ", ".join(sorted(set(MODELS.injected(name)) - set(inputs)))
        fitting = ", ".join(models_for(inputs)) or "none"
        raise ConfigError(
            f"model '{name}' is built from {missing}, which dataset '{config.data.name}' does not give; "
            f"models for this data: {fitting}"
        )
    with as_config_error("model", name):
        model = MODELS.build(name, **{key: inputs[key] for key in MODELS.injected(name)}, **config.model.args)
    model = initialize(model, config.init)
    apply_transfer(model, config)
    if placement is not None:
        memory_format = torch.channels_last if placement.channels_last else torch.preserve_format
        model = model.to(placement.device, memory_format=memory_format)
    return model


def apply_transfer(model: nn.Module, config: ExperimentConfig) -> None:
    """transfer.freeze on a model with a pretrained backbone; a ConfigError for a model that has none."""
    transfer = config.transfer
    if (transfer.freeze, transfer.unfreeze_at_epoch, transfer.backbone_lr_factor) == ("none", None, 1.0):
        return  # cache_features and compile_backbone only act on a frozen backbone: harmless on any model
    if not is_transfer_model(model):
        with_backbone = ", ".join(transfer_model_names())
        raise ConfigError(f"transfer.*: model '{config.model.name}' has no backbone and head to train apart; "
                          f"models with one: {with_backbone}")  # fmt: skip
    model.freeze_backbone(transfer.freeze == "backbone")


def build_optimizer(config: ExperimentConfig, model: nn.Module) -> torch.optim.Optimizer:
    """The config's optimizer over the model's parameters, grouped as optimizer.no_decay, optimizer.layer_decay
    and transfer.backbone_lr_factor say (one group of all parameters when none is set). A backbone that
    transfer.unfreeze_at_epoch will unfreeze is in the optimizer from the start, without gradients until then."""
    settings, transfer = config.optimizer, config.transfer
    backbone = model.backbone_parameters() if is_transfer_model(model) else []
    with as_config_error("optimizer", settings.name):
        if not settings.no_decay and settings.layer_decay == 1.0 and transfer.backbone_lr_factor == 1.0:
            return OPTIMIZERS.build(settings.name, model.parameters(), **settings.args)
        groups = parameter_groups(model, no_decay=settings.no_decay, layer_decay=settings.layer_decay,
                                  backbone=backbone, backbone_lr_factor=transfer.backbone_lr_factor)  # fmt: skip
        return scale_learning_rates(OPTIMIZERS.build(settings.name, groups, **settings.args))


@contextlib.contextmanager
def as_config_error(section: str, name: str) -> Iterator[None]:
    """A builder's ValueError is a mistake in its config section: exit 2, naming the section."""
    try:
        yield
    except ValueError as e:
        raise ConfigError(f"{section} '{name}': {e}") from None
