"""A run's config and final metrics in TensorBoard's HParams dashboard: `tensorboard --logdir runs` then
lists the runs side by side, as `trainlab compare` does.

    write_hparams(run / "tb", config.to_dict(), run_metrics(record))

Each run folder's tb/ holds one session: its hyperparameters (the config as dotted keys, `optimizer.lr`,
`model.name`) and its metrics, scalars tagged `hparams/test_acc`, `hparams/best_val_acc`, ... (run.json's
names). No Experiment summary is written: TensorBoard uses the first one it finds for every run, so a
run's summary would hide the config keys and metrics only other runs have; without one, the dashboard
gathers the columns of all runs (and lists every other scalar of tb/ too, at its last value).
"""

from __future__ import annotations

import math
import numbers
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainlab.engine import metric_names as names
from trainlab.engine.monitor import Monitor
from trainlab.utils.records import flatten

if TYPE_CHECKING:
    from torch.utils.tensorboard import SummaryWriter

METRIC_PREFIX = "hparams/"
IGNORED_FIELDS = ("name", "output_dir", "progress")  # as in compare: differ between runs without changing the result
IGNORED_SECTIONS = ("sweep.",)  # the search a run may be part of, not the run


def config_hparams(config: dict[str, Any]) -> dict[str, int | float | str]:
    """A config (`ExperimentConfig.to_dict()`) as the dashboard takes it: dotted keys, numbers and strings;
    bools, null and lists as YAML writes them ("true", "null", "[32, 64]")."""
    hparams: dict[str, int | float | str] = {}
    for key, value in flatten(config).items():
        if key in IGNORED_FIELDS or key.startswith(IGNORED_SECTIONS):
            continue
        # bools too: torch's summary.hparams tests int before bool, so a bool would arrive as the number 1.0
        hparams[key] = value if isinstance(value, (int, float, str)) and not isinstance(value, bool) else _yaml(value)
    return hparams


def _yaml(value: Any) -> str:
    import yaml

    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


def run_metrics(record: dict[str, Any]) -> dict[str, float]:
    """The final numbers of a run's run.json, by their names there: every `test_*` metric (`test_acc`,
    `test_macro_f1`, a regression task's own), every `final_*` one, `train_seconds`, and the best
    validation value of the monitored metric as `best_val_acc`, `best_val_loss` or `best_val_macro_f1`."""
    metrics = {key: value for key, value in record.items() if key.startswith(("test_", "final_"))}
    metrics[names.TRAIN_SECONDS] = record.get(names.TRAIN_SECONDS)
    try:
        metrics[f"best_{Monitor.parse(record.get('monitor')).column}"] = record.get("best_val")
    except ValueError:
        pass  # a run.json without a known monitor: no best value to name
    return {key: number for key, value in metrics.items() if (number := _finite(value)) is not None}


def _finite(value: Any) -> float | None:
    """`value` as a float when it is a finite number (bools are not), else None."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        return None
    return float(value)


def write_hparams(
    log_dir_or_writer: str | Path | SummaryWriter, config: dict[str, Any], metrics: dict[str, float], step: int = 0
) -> None:
    """One HParams session in the run's own TensorBoard folder (not in a timestamped subfolder, as
    `SummaryWriter.add_hparams` writes it): `config` as hyperparameters (see `config_hparams`), each of
    `metrics` as the scalar `hparams/<name>` at `step`; None and NaN values are left out."""
    from torch.utils.tensorboard import SummaryWriter  # imported here: it costs about a second
    from torch.utils.tensorboard.summary import hparams

    metric_dict = {f"{METRIC_PREFIX}{key}": value for key, value in metrics.items() if _finite(value) is not None}
    _, session_start, session_end = hparams(config_hparams(config), metric_dict)  # the Experiment: see the module
    owned = not isinstance(log_dir_or_writer, SummaryWriter)
    writer = SummaryWriter(str(log_dir_or_writer)) if owned else log_dir_or_writer
    try:
        writer.file_writer.add_summary(session_start, step)
        for tag, value in metric_dict.items():
            writer.add_scalar(tag, value, step)  # the dashboard shows each metric's last scalar under its tag
        writer.file_writer.add_summary(session_end, step)
        writer.flush()
    finally:
        if owned:
            writer.close()
