import math

import numpy as np
import pytest
from PIL import Image

from trainlab.evaluation.plots import confusion_matrix_figure, curves_figure, save_figure


def history(epochs: int, val: bool = True) -> list[dict]:
    return [
        {
            "epoch": e,
            "train_loss": 1 / e,
            "train_acc": 1 - 1 / (e + 1),
            "val_loss": 1.2 / e if val else None,
            "val_acc": 0.9 - 1 / (e + 1) if val else math.nan,
        }
        for e in range(1, epochs + 1)
    ]


def line_labels(ax) -> list[str]:
    return [line.get_label() for line in ax.lines]


def test_curves_figure_has_loss_and_accuracy_panels_with_train_and_validation():
    loss_ax, acc_ax = curves_figure(history(5)).axes
    assert (loss_ax.get_title(), acc_ax.get_title()) == ("loss", "accuracy")
    for ax in (loss_ax, acc_ax):
        assert line_labels(ax) == ["train", "validation"]
        assert ax.get_legend() is not None
        assert ax.get_xlabel() == "epoch"


def test_curves_figure_marks_a_single_epoch_so_it_is_visible():
    loss_ax, _ = curves_figure(history(1)).axes
    assert all(line.get_marker() == "o" for line in loss_ax.lines)
    low, high = loss_ax.get_xlim()
    assert [t for t in loss_ax.get_xticks() if low <= t <= high] == [1]  # whole epochs only


def test_curves_figure_leaves_out_validation_with_no_values():
    loss_ax, acc_ax = curves_figure(history(3, val=False)).axes
    assert line_labels(loss_ax) == line_labels(acc_ax) == ["train"]


def test_curves_figure_accepts_rows_read_from_csv_with_gaps():
    rows = [{"epoch": "1", "train_loss": "0.9", "train_acc": "0.5", "val_loss": "", "val_acc": ""}]
    rows.append({"epoch": "2", "train_loss": "0.7", "train_acc": "0.6", "val_loss": "0.8", "val_acc": "0.55"})
    loss_ax, _ = curves_figure(rows).axes
    assert line_labels(loss_ax) == ["train", "validation"]


def test_confusion_matrix_figure_has_titled_panels_named_axes_and_colour_bars():
    classes = ["ant", "bee", "cow"]
    fig = confusion_matrix_figure(np.array([[5, 1, 0], [0, 0, 0], [2, 0, 3]]), classes)
    count_ax, rate_ax, *colour_bars = fig.axes
    assert count_ax.get_title() == "counts"
    assert rate_ax.get_title() == "row-normalised (recall on the diagonal)"
    assert [t.get_text() for t in count_ax.get_xticklabels()] == classes
    assert [t.get_text() for t in count_ax.get_yticklabels()] == classes
    assert len(colour_bars) == 2
    assert "5" in {t.get_text() for t in count_ax.texts}
    assert {"0.83", "0.00"} <= {t.get_text() for t in rate_ax.texts}


@pytest.mark.parametrize(("n", "annotated"), [(20, True), (21, False)])
def test_confusion_matrix_figure_annotates_cells_only_up_to_20_classes(n, annotated):
    fig = confusion_matrix_figure(np.eye(n, dtype=int), [f"c{i}" for i in range(n)])
    assert bool(fig.axes[0].texts) is annotated


def test_save_figure_writes_a_png_and_no_temp_file(tmp_path):
    save_figure(curves_figure(history(3)), tmp_path / "run" / "curves.png")
    assert [p.name for p in (tmp_path / "run").iterdir()] == ["curves.png"]
    with Image.open(tmp_path / "run" / "curves.png") as image:
        assert image.format == "PNG"
        assert image.size == (1100, 440)  # 10 x 4 in at 110 dpi
