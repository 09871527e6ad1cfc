"""Figures for a run folder and TensorBoard: training curves and confusion matrices.

Figures are built with matplotlib's object API on an Agg canvas, never pyplot, so plotting
holds no global state and works in threads and on machines without a display.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from trainlab.utils.records import to_float
from trainlab.utils.io import atomic_path

DPI = 110
_MARKERS_UP_TO = 30  # epochs; beyond this, markers hide the line
_ANNOTATE_UP_TO = 20  # classes; beyond this, cell text is too small to read
_TRAIN_COLOR, _VAL_COLOR = "tab:blue", "tab:orange"


def curves_figure(history: Sequence[Mapping[str, Any]]) -> Figure:
    """Loss and accuracy (a regression's mean absolute error) against epoch, train and validation, from rows
    shaped like metrics.csv.

    Values may be numbers, numeric strings, None, "" or NaN; a series with no value is not drawn.
    """
    epochs = [to_float(row.get("epoch", i + 1)) for i, row in enumerate(history)]
    marker = "o" if len(history) <= _MARKERS_UP_TO else None
    fig = _new_figure(figsize=(10, 4))
    loss_ax, acc_ax = fig.subplots(1, 2)
    score, score_title = ("mae", "mean absolute error") if history and "train_mae" in history[0] else ("acc", "accuracy")
    for ax, metric, title in ((loss_ax, "loss", "loss"), (acc_ax, score, score_title)):
        for split, color, label in (("train", _TRAIN_COLOR, "train"), ("val", _VAL_COLOR, "validation")):
            values = [to_float(row.get(f"{split}_{metric}")) for row in history]
            if any(not math.isnan(v) for v in values):
                ax.plot(epochs, values, marker=marker, color=color, label=label)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.set_ylabel(title)
        ax.grid(alpha=0.3)
        # Whole epochs only, even when a single epoch leaves nothing for the default locator to span.
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        if ax.lines:
            ax.legend()
    return fig


def confusion_matrix_figure(counts: np.ndarray, classes: Sequence[str]) -> Figure:
    """Counts beside row-normalised rates (recall on the diagonal); rows are true classes."""
    counts = np.asarray(counts)
    n = len(classes)
    rates = _row_normalize(counts)
    # Sized so that 10 classes get ~0.5 in per cell; capped so 100 classes still fit a screen.
    panel = min(max(4.0, 0.5 * n + 2.0), 10.0)
    fig = _new_figure(figsize=(2 * panel + 1.5, panel))
    count_ax, rate_ax = fig.subplots(1, 2)
    _matrix_panel(count_ax, counts, classes, "counts", lambda v: f"{int(v)}", vmax=max(int(counts.max(initial=0)), 1))
    _matrix_panel(rate_ax, rates, classes, "row-normalised (recall on the diagonal)", lambda v: f"{v:.2f}", vmax=1.0)
    return fig


def save_figure(fig: Figure, path: str | os.PathLike) -> None:
    """Write `fig` as a PNG, atomically, then clear it: the figure is spent afterwards."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI)
    fig.clear()


def _new_figure(figsize: tuple[float, float]) -> Figure:
    fig = Figure(figsize=figsize, dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _matrix_panel(
    ax: Axes, values: np.ndarray, classes: Sequence[str], title: str, fmt: Callable[[float], str], vmax: float
) -> None:
    n = len(classes)
    image = ax.imshow(values, cmap="Blues", vmin=0, vmax=vmax, interpolation="nearest")
    ax.figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    tick_size = 9 if n <= 20 else max(4, 9 - n // 20)
    ax.set_xticks(range(n), labels=classes, rotation=45, ha="right", rotation_mode="anchor", fontsize=tick_size)
    ax.set_yticks(range(n), labels=classes, fontsize=tick_size)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    if n > _ANNOTATE_UP_TO:
        return
    text_size = 9 if n <= 12 else 7
    for (i, j), v in np.ndenumerate(values):
        # White on the darker half of the colour map, black on the lighter.
        color = "white" if v > vmax / 2 else "black"
        ax.text(j, i, fmt(v), ha="center", va="center", color=color, fontsize=text_size)


def _row_normalize(counts: np.ndarray) -> np.ndarray:
    rows = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, rows, out=np.zeros(counts.shape, dtype=float), where=rows > 0)
