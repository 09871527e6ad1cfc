"""The HParams dashboard: each run folder's tb/ holds one session, its config as hyperparameters and its final
metrics as `hparams/<name>` scalars, read back here as TensorBoard reads them."""

import math
from pathlib import Path

import pytest
from rich.console import Console
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
from tensorboard.plugins.hparams import api_pb2, metadata

import trainlab
from trainlab.config import load_config
from trainlab.engine.loop import Callback
from trainlab.evaluation.hparams import run_metrics, write_hparams
from trainlab.experiment import run_experiment

CONFIG = {
    "name": "lr-sweep", "seed": 3, "output_dir": "runs", "progress": False, "channels_last": True,
    "data": {"name": "digits", "batch_size": 64, "split_seed": None},
    "model": {"name": "workshop_cnn", "channels": [4, 4, 8, 8]},
    "optimizer": {"name": "adam", "lr": 0.003},
    "augment": {},
    "sweep": {"trials": 20},
}  # fmt: skip
TINY = dict(model={"channels": [4, 4, 8, 8], "hidden": [16, 16]}, progress=False)


def hparams_of(log_dir: Path) -> dict:
    """The session's hyperparameters, as plain values."""
    content = EventAccumulator(str(log_dir)).Reload().PluginTagToContent(metadata.PLUGIN_NAME)
    start = metadata.parse_session_start_info_plugin_data(content[metadata.SESSION_START_INFO_TAG])
    return {key: getattr(value, value.WhichOneof("kind")) for key, value in start.hparams.items()}


def session_starts(log_dir: Path) -> int:
    """Session-start summaries in all of the folder's events files (a resumed run adds a file)."""
    events = [event for path in sorted(log_dir.iterdir()) for event in EventFileLoader(str(path)).Load()]
    return sum(value.tag == metadata.SESSION_START_INFO_TAG for event in events for value in event.summary.value)


def last_scalars(log_dir: Path) -> dict[str, float]:
    events = EventAccumulator(str(log_dir)).Reload()
    return {tag: events.Scalars(tag)[-1].value for tag in events.Tags()["scalars"] if tag.startswith("hparams/")}


def test_the_session_holds_the_config_as_dotted_keys_and_the_metrics_as_scalars_in_the_folder_itself(tmp_path):
    log_dir = tmp_path / "tb"
    write_hparams(log_dir, CONFIG, {"test_acc": 0.75, "test_macro_f1": 0.5, "test_r2": None, "test_mae": math.nan}, step=9)

    assert [path.parent for path in log_dir.rglob("*")] == [log_dir], "one events file, no timestamped subfolder"
    # name, output_dir, progress and the sweep left out; bools, null and lists as YAML writes them
    assert hparams_of(log_dir) == {
        "seed": 3, "channels_last": "true", "data.name": "digits", "data.batch_size": 64, "data.split_seed": "null",
        "model.name": "workshop_cnn", "model.channels": "[4, 4, 8, 8]", "optimizer.name": "adam", "optimizer.lr": 0.003,
    }  # fmt: skip
    assert last_scalars(log_dir) == {"hparams/test_acc": 0.75, "hparams/test_macro_f1": 0.5}  # None and NaN left out
    content = EventAccumulator(str(log_dir)).Reload().PluginTagToContent(metadata.PLUGIN_NAME)
    end = metadata.parse_session_end_info_plugin_data(content[metadata.SESSION_END_INFO_TAG])
    assert end.status == api_pb2.STATUS_SUCCESS
    assert metadata.EXPERIMENT_TAG not in content  # see test_the_dashboard_shows_every_run_s_keys_and_metrics


def test_the_dashboard_shows_every_run_s_keys_and_metrics(tmp_path):
    # TensorBoard takes the first Experiment summary it finds for all runs; with none, it gathers every run's columns
    from tensorboard import context
    from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
    from tensorboard.plugins import base_plugin
    from tensorboard.plugins.hparams import backend_context

    write_hparams(tmp_path / "cnn" / "tb", {"model": {"name": "workshop_cnn", "channels": [4, 8]}}, {"test_acc": 0.9})
    write_hparams(tmp_path / "mlp" / "tb", {"model": {"name": "mnist_mlp", "hidden": 16}}, {"test_r2": 0.5})

    runs = plugin_event_multiplexer.EventMultiplexer()
    runs.AddRunsFromDirectory(str(tmp_path)).Reload()
    provider = data_provider.MultiplexerDataProvider(runs, str(tmp_path))
    dashboard = backend_context.Context(base_plugin.TBContext(logdir=str(tmp_path), multiplexer=runs, data_provider=provider))
    request = context.RequestContext()
    experiment = dashboard.experiment_from_metadata(
        request, "", True, dashboard.hparams_metadata(request, ""), dashboard.hparams_from_data_provider(request, "", None)
    )
    assert {info.name for info in experiment.hparam_infos} == {"model.name", "model.channels", "model.hidden"}
    assert {info.name.tag for info in experiment.metric_infos} == {"hparams/test_acc", "hparams/test_r2"}


def test_the_metrics_are_run_json_s_final_numbers_under_their_names_there():
    record = {
        "status": "finished", "monitor": "val/loss", "best_val": 0.25, "best_epoch": 4, "epochs_completed": 5,
        "tested_checkpoint": "best", "tested_epoch": 4, "test_acc": None, "test_r2": 0.875, "test_mae": 0.5,
        "final_train_loss": 0.125, "final_val_acc": math.nan, "train_seconds": 12.5, "num_classes": 10,
    }  # fmt: skip
    assert run_metrics(record) == {
        "test_r2": 0.875, "test_mae": 0.5, "final_train_loss": 0.125, "train_seconds": 12.5, "best_val_loss": 0.25,
    }  # fmt: skip


def test_a_finished_run_writes_its_session_with_its_recorded_results(tmp_path):
    run = trainlab.run(None, epochs=1, output_dir=str(tmp_path / "runs"), quiet=True, optimizer={"lr": 0.003}, **TINY)

    hparams = hparams_of(run.path / "tb")
    assert hparams["optimizer.lr"] == 0.003 and hparams["model.name"] == "workshop_cnn" and hparams["epochs"] == 1
    record = run.record
    assert last_scalars(run.path / "tb") == pytest.approx({
        "hparams/test_acc": record["test_acc"], "hparams/test_macro_f1": record["test_macro_f1"],
        "hparams/best_val_acc": record["best_val"], "hparams/final_train_loss": record["final_train_loss"],
        "hparams/final_val_acc": record["final_val_acc"], "hparams/train_seconds": record["train_seconds"],
    })  # fmt: skip


class InterruptAfterFirstEpoch(Callback):
    def on_epoch_end(self, trainer):
        raise KeyboardInterrupt


def test_a_resumed_run_has_one_session(tmp_path):
    config, source = load_config(None, ["epochs=2", "progress=false", "model.channels=[4,4,8,8]", "model.hidden=[16,16]",
                                        f"output_dir={tmp_path / 'runs'}"])  # fmt: skip
    with pytest.raises(KeyboardInterrupt):
        run_experiment(config, source, console=Console(quiet=True), extra_callbacks=[InterruptAfterFirstEpoch()])
    (folder,) = (tmp_path / "runs").iterdir()
    assert session_starts(folder / "tb") == 0  # written once the run is tested

    run_experiment(config, source, console=Console(quiet=True), resume=folder)
    assert session_starts(folder / "tb") == 1
    assert last_scalars(folder / "tb")["hparams/test_acc"] == pytest.approx(trainlab.load_run(folder).record["test_acc"])
