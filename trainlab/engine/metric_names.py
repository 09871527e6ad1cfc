"""One spelling per metric, wherever it appears: a metrics.csv column, a run.json key, a TensorBoard tag,
a compare column and `--sort` key.

A metric is `<split>_<measure>` (`train_loss`, `val_acc`, `test_macro_f1`), and a summary of one over
epochs puts its word in front (`best_val_acc`, run.json's `final_val_acc`). TensorBoard tags put the
x-axis in front of the name: `step/train_loss` is the loss of each optimizer step's batch,
`epoch/train_loss` the epoch's value as metrics.csv has it. compare shows percentages with their unit,
`test_acc (%)`. Configs name the monitored metric `val/acc`, `val/loss` or `val/macro_f1`: that is `val_acc`, `val_loss`, `val_macro_f1`.
"""

from __future__ import annotations

# metrics.csv, one row per epoch
EPOCH = "epoch"
TRAIN_LOSS, TRAIN_ACC = "train_loss", "train_acc"
VAL_LOSS, VAL_ACC = "val_loss", "val_acc"
VAL_MACRO_F1 = "val_macro_f1"  # the unweighted mean over all classes of each class's F1 (sklearn's macro average)
VAL_F1, VAL_AUC = "val_f1", "val_auc"  # binary tasks: the positive class's F1 at 0.5, the ROC curve's area
TRAIN_MAE = "train_mae"  # regression tasks: mean absolute error, in the targets' units
VAL_MAE, VAL_RMSE, VAL_R2 = "val_mae", "val_rmse", "val_r2"
LR = "lr"  # the first parameter group's rate at the end of the epoch
SECONDS = "seconds"  # the epoch's wall time
SAMPLES_PER_S = "samples_per_s"  # training examples (images, texts) per second
THREADS = "threads"  # torch's CPU threads at the end of the epoch
METRIC_COLUMNS = [EPOCH, TRAIN_LOSS, TRAIN_ACC, VAL_LOSS, VAL_ACC, VAL_MACRO_F1, LR, SECONDS, SAMPLES_PER_S, THREADS]
TASK_COLUMNS = {  # the columns between epoch and lr, by task (engine/tasks.py)
    "classification": [TRAIN_LOSS, TRAIN_ACC, VAL_LOSS, VAL_ACC, VAL_MACRO_F1],
    "binary": [TRAIN_LOSS, TRAIN_ACC, VAL_LOSS, VAL_ACC, VAL_F1, VAL_AUC],
    "regression": [TRAIN_LOSS, TRAIN_MAE, VAL_LOSS, VAL_MAE, VAL_RMSE, VAL_R2],
}


def metric_columns(task: str = "classification") -> list[str]:
    """metrics.csv's columns for a task."""
    return [EPOCH, *TASK_COLUMNS[task], LR, SECONDS, SAMPLES_PER_S, THREADS]


# run.json and compare, one value per run
EPOCHS_COMPLETED = "epochs_completed"
BEST_VAL_ACC = "best_val_acc"  # the highest val_acc of any epoch
TEST_ACC, TEST_MACRO_F1 = "test_acc", "test_macro_f1"
TRAIN_SECONDS = "train_seconds"

def epoch_metrics(task: str = "classification") -> tuple[str, ...]:
    """What TensorBoard logs every epoch for a task; the training score and LR also every step."""
    return (*TASK_COLUMNS[task], LR, SAMPLES_PER_S)


def step_tag(metric: str) -> str:
    return f"step/{metric}"


def epoch_tag(metric: str) -> str:
    return f"epoch/{metric}"
