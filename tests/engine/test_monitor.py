import math

import pytest
import yaml

from trainlab.config import ExperimentConfig, load_config
from trainlab.engine.monitor import MONITORS, Monitor
from trainlab.errors import ConfigError


def test_accuracy_is_maximized_and_loss_minimized_under_their_history_columns():
    acc, loss = Monitor.parse("val/acc"), Monitor.parse("val/loss")
    assert (acc.column, acc.maximize, acc.direction) == ("val_acc", True, "maximize")
    assert (loss.column, loss.maximize, loss.direction) == ("val_loss", False, "minimize")
    assert Monitor.parse(acc) is acc and str(loss) == "val/loss"
    f1 = Monitor.parse("val/macro_f1")
    assert (f1.column, f1.direction) == ("val_macro_f1", "maximize")


def test_an_unknown_name_is_refused_with_the_closest_one_and_the_choices():
    with pytest.raises(ValueError, match=r"unknown monitor 'val/ac' \(did you mean 'val/acc'\?\); expected one of: val/acc, val/loss"):
        Monitor.parse("val/ac")
    with pytest.raises(ValueError, match="unknown monitor None"):
        Monitor.parse(None)


def test_improves_goes_the_metrics_way_by_more_than_min_delta():
    acc, loss = MONITORS["val/acc"], MONITORS["val/loss"]
    assert acc.improves(0.9, None) and acc.improves(0.9, 0.8) and not acc.improves(0.8, 0.9)
    assert loss.improves(0.5, 0.6) and not loss.improves(0.6, 0.5)
    assert not loss.improves(0.55, 0.6, min_delta=0.1) and loss.improves(0.45, 0.6, min_delta=0.1)
    assert not acc.improves(math.nan, None), "NaN is never an improvement"


def test_best_and_sort_key_put_the_best_value_first():
    acc, loss = MONITORS["val/acc"], MONITORS["val/loss"]
    values = [0.3, 0.9, 0.5]
    assert acc.best(values) == 0.9 and loss.best(values) == 0.3
    assert min(values, key=acc.sort_key) == 0.9 and min(values, key=loss.sort_key) == 0.3


def test_configs_read_and_write_the_monitor_by_its_name():
    config, _ = load_config(None, ["monitor=val/loss", "early_stopping.monitor=val/acc"])
    assert config.monitor is MONITORS["val/loss"] and config.early_stopping.monitor is MONITORS["val/acc"]
    written = yaml.safe_load(config.to_yaml())
    assert written["monitor"] == "val/loss" and written["early_stopping"]["monitor"] == "val/acc"
    defaults = ExperimentConfig().to_dict()
    assert (defaults["monitor"], defaults["early_stopping"]["monitor"]) == ("val/acc", "val/loss")


def test_a_config_with_an_unknown_monitor_names_the_override_and_the_choices():
    with pytest.raises(ConfigError, match=r"override 'monitor=val/los': field 'monitor': unknown monitor 'val/los' "
                                          r"\(did you mean 'val/loss'\?\); expected one of: val/acc, val/loss"):  # fmt: skip
        load_config(None, ["monitor=val/los"])


def test_a_sweep_direction_against_the_configs_monitor_is_refused(tmp_path):
    from trainlab.tools.sweep.folder import Sweep

    (tmp_path / "s.yaml").write_text("monitor: val/acc\nsweep: {direction: minimize, space: {optimizer.lr: [0.1]}}\n")
    with pytest.raises(ConfigError, match="'sweep.direction': val/acc .* is maximized, not minimized"):
        Sweep.prepare(str(tmp_path / "s.yaml"), [], [], None, None)
    sweep = Sweep.prepare(str(tmp_path / "s.yaml"), [], ["sweep.direction=maximize"], None, None)
    assert sweep.monitor is MONITORS["val/acc"] and sweep.metric == "val/acc"
