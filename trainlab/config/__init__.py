"""Experiment configs: typed schema, YAML files, presets and `key=value` overrides.

The schema's defaults are the embedded default experiment: `trainlab run` with no
argument trains the workshop CNN on scikit-learn's digits, offline. A config file
(or a preset under `experiments/`) states only what differs from these defaults.

Sections that name a registered builder (`model`, `optimizer`, `scheduler`, `loss`,
`data`) take that builder's keyword arguments beside `name`; they are checked against
the builder's signature, so `optimizer.lrr` is refused at load, before any data is read.
"""

from trainlab.config.loading import (
    DATA_PATH_FIELDS,
    apply_overrides,
    load_config,
    load_raw_config,
    parse_override,
    validate_config,
)
from trainlab.config.schema import (
    SEED_MAX,
    SEED_MIN,
    BuilderSection,
    DataConfig,
    EarlyStoppingConfig,
    ExperimentConfig,
    LossConfig,
    ModelConfig,
    OptimizerConfig,
    RegularizationConfig,
    SchedulerConfig,
    Section,
    TransferConfig,
    section_registries,
)
from trainlab.config.sources import (
    RUN_FOLDER_STAMP,
    ConfigSource,
    list_presets,
    preset_dirs,
    resolve_source,
    run_name_of,
)

__all__ = [
    "DATA_PATH_FIELDS", "RUN_FOLDER_STAMP", "SEED_MAX", "SEED_MIN", "BuilderSection", "ConfigSource", "DataConfig",
    "EarlyStoppingConfig", "ExperimentConfig", "LossConfig", "ModelConfig", "OptimizerConfig", "RegularizationConfig",
    "SchedulerConfig", "Section", "TransferConfig", "apply_overrides", "list_presets", "load_config", "load_raw_config",
    "parse_override", "preset_dirs", "resolve_source", "run_name_of", "section_registries", "validate_config",
]  # fmt: skip
