"""One name per metric: metrics.csv's column is the TensorBoard tag behind its x-axis and compare's column."""

from types import SimpleNamespace

import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import pytest

from trainlab.engine.callbacks import TensorBoardLogger
from trainlab.engine.metric_names import METRIC_COLUMNS, metric_columns
from trainlab.engine.tasks import Binary, Classification, Regression


def test_tensorboard_tags_are_the_metrics_csv_names_behind_their_x_axis(tmp_path):
    logger = TensorBoardLogger(tmp_path / "tb")
    optimizer = SimpleNamespace(param_groups=[{"lr": 0.1}])
    trainer = SimpleNamespace(global_step=0, epoch=0, loss=torch.tensor(2.0), batch_score=torch.tensor(3),
                              targets=torch.zeros(4), optimizer=optimizer, history=[], task=Classification())  # fmt: skip
    logger.on_fit_start(trainer)
    trainer.global_step = 1
    logger.on_train_batch_end(trainer)
    trainer.epoch = 1
    trainer.history.append({name: 0.5 for name in METRIC_COLUMNS})
    logger.on_epoch_end(trainer)
    logger.close()

    events = EventAccumulator(str(tmp_path / "tb")).Reload()
    assert set(events.Tags()["scalars"]) == {
        "step/train_loss", "step/train_acc", "step/lr",
        "epoch/train_loss", "epoch/train_acc", "epoch/val_loss", "epoch/val_acc", "epoch/val_macro_f1", "epoch/lr", "epoch/samples_per_s",
    }  # fmt: skip
    assert [(e.step, e.value) for e in events.Scalars("step/train_acc")] == [(1, 0.75)]  # 3 of the batch's 4
    assert [(e.step, e.value) for e in events.Scalars("epoch/val_acc")] == [(1, 0.5)]


@pytest.mark.parametrize("task", ["binary", "regression"])
def test_each_task_logs_its_own_metrics_under_the_same_rule(tmp_path, task):
    logger = TensorBoardLogger(tmp_path / "tb")
    optimizer = SimpleNamespace(param_groups=[{"lr": 0.1}])
    chosen = Regression([0.0], [1.0]) if task == "regression" else Binary()
    trainer = SimpleNamespace(global_step=1, epoch=1, loss=torch.tensor(2.0), batch_score=torch.tensor(2.0),
                              targets=torch.zeros(4), optimizer=optimizer, task=chosen,
                              history=[{name: 0.5 for name in metric_columns(task)}])  # fmt: skip
    logger.on_fit_start(trainer)
    logger.on_train_batch_end(trainer)
    logger.on_epoch_end(trainer)
    logger.close()
    tags = set(EventAccumulator(str(tmp_path / "tb")).Reload().Tags()["scalars"])
    score = "mae" if task == "regression" else "acc"
    assert f"step/train_{score}" in tags
    assert {f"epoch/{name}" for name in metric_columns(task)[1:-3]} <= tags  # train_loss .. the last val metric
    assert ("epoch/val_r2" in tags) == (task == "regression") and ("epoch/val_auc" in tags) == (task == "binary")
