"""The test split's mistakes: the class pairs a model confuses most, and the examples with the highest loss.

Written beside the other test files: mistakes.json (both tables; a text's sentence in its row) and, for images,
mistakes.png (the examples in a grid, each titled "true → predicted (p=0.93)"). report.html shows both.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sklearn.metrics import confusion_matrix

from trainlab.evaluation.plots import DPI, save_figure
from trainlab.run_records import MISTAKES_JSON, MISTAKES_PNG
from trainlab.utils.io import write_json

if TYPE_CHECKING:
    from trainlab.data.prepared import Loader

TOP_PAIRS = 10  # confused class pairs listed
TOP_EXAMPLES = 16  # highest-loss examples shown
_COLUMNS = 4  # images per row of mistakes.png
_IMAGE_INCHES, _CELL_INCHES = 1.2, 1.9  # width of an image and of its cell, wide enough for a title of two class names
_TITLE_INCHES = 0.4  # the band above each image for its title: two lines
_TITLE_WIDTH = 26  # characters of a title line, wrapped beyond
_TINY = float(np.finfo(np.float32).tiny)  # p(true) below this (underflowed) counts as this: a finite loss of ~87.3


def confused_pairs(y_true: np.ndarray, y_pred: np.ndarray, classes: Sequence[str], top: int = TOP_PAIRS) -> list[dict[str, Any]]:
    """The `top` largest off-diagonal cells of the confusion matrix with a count, largest first (ties in label
    order): true and predicted class, count, and share of the true class's examples."""
    counts = confusion_matrix(y_true, y_pred, labels=list(range(len(classes))))  # (C, C), row = true class
    support = counts.sum(1)
    off = counts * (1 - np.eye(len(classes), dtype=counts.dtype))
    cells = np.argsort(-off, axis=None, kind="stable")[:top]  # flat indices of the (C, C) matrix
    pairs = []
    for true, predicted in zip(*np.unravel_index(cells, counts.shape)):
        if off[true, predicted] == 0:
            break
        pairs.append({
            "true": int(true), "predicted": int(predicted), "true_name": classes[true], "predicted_name": classes[predicted],
            "count": int(counts[true, predicted]), "share": round(float(counts[true, predicted] / support[true]), 6),
        })  # fmt: skip
    return pairs


def highest_loss(probabilities: np.ndarray, labels: np.ndarray, classes: Sequence[str], top: int = TOP_EXAMPLES) -> list[dict[str, Any]]:
    """The `top` examples with the highest cross-entropy −log p(true), highest first (ties in split order), from
    probabilities (N, C) and labels (N,); `index` is the example's split position."""
    probabilities, labels = np.asarray(probabilities, dtype=np.float64), np.asarray(labels, dtype=np.int64)
    p_true = probabilities[np.arange(len(labels)), labels]  # (N,)
    predicted = probabilities.argmax(1)  # (N,) the first of equal maxima, as torch's max gives it
    rows = []
    for i in np.argsort(p_true, kind="stable")[:top]:
        rows.append({
            "index": int(i), "true": int(labels[i]), "predicted": int(predicted[i]), "true_name": classes[labels[i]],
            "predicted_name": classes[predicted[i]], "p_predicted": round(float(probabilities[i, predicted[i]]), 6),
            "p_true": round(float(p_true[i]), 6), "loss": round(-math.log(max(float(p_true[i]), _TINY)), 6),
        })  # fmt: skip
    return rows


def write_mistakes(folder: Path, probabilities: np.ndarray, labels: np.ndarray, classes: Sequence[str], loader: Loader) -> dict[str, Any]:
    """Write mistakes.json (and for images mistakes.png) of a test split's probabilities (N, C) and labels (N,),
    in the split's order; `loader` gives the raw examples. Returns what mistakes.json holds."""
    probabilities, labels = np.asarray(probabilities), np.asarray(labels)
    examples = highest_loss(probabilities, labels, classes)
    raw = loader.examples([row["index"] for row in examples])  # uint8 images (H, W, C) or texts
    texts = bool(raw) and isinstance(raw[0], str)
    if texts:
        examples = [{**row, "text": text} for row, text in zip(examples, raw)]
    record = {"test_size": len(labels), "pairs": confused_pairs(labels, probabilities.argmax(1), classes), "examples": examples}
    write_json(Path(folder) / MISTAKES_JSON, record)
    if raw and not texts:
        save_figure(mistakes_figure(raw, [_title(row) for row in examples]), Path(folder) / MISTAKES_PNG)
    return record


def mistakes_figure(images: Sequence[np.ndarray], titles: Sequence[str], columns: int = _COLUMNS) -> Figure:
    """uint8 images (H, W, C) of one shape, C = 1 (drawn grey) or 3, in rows of `columns`, each under its title.

    Tiled into one picture drawn by one `imshow` (an axes per image costs ~25 ms each), titled by text."""
    if not images or len(images) != len(titles):
        raise ValueError(f"mistakes_figure needs images and one title each, got {len(images)} images, {len(titles)} titles")
    height, width, channels = images[0].shape
    columns = min(columns, len(images))
    rows = math.ceil(len(images) / columns)
    scale = width / _IMAGE_INCHES  # pixels per inch
    cell_height, cell_width = height + round(_TITLE_INCHES * scale), max(width + 1, round(_CELL_INCHES * scale))
    mosaic = np.full((rows * cell_height, columns * cell_width, channels), 255, np.uint8)  # white between the images
    fig = Figure(figsize=(mosaic.shape[1] / scale, mosaic.shape[0] / scale), dpi=DPI)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_axis_off()
    for i, (image, title) in enumerate(zip(images, titles)):
        row, column = divmod(i, columns)
        top, left = row * cell_height + cell_height - height, column * cell_width + (cell_width - width) // 2
        mosaic[top : top + height, left : left + width] = image
        ax.text(left + width / 2 - 0.5, top - (cell_height - height) / 2 - 0.5, textwrap.fill(title, _TITLE_WIDTH),
                ha="center", va="center", fontsize=8)  # fmt: skip
    if channels == 1:
        ax.imshow(mosaic[:, :, 0], cmap="gray", vmin=0, vmax=255, interpolation="nearest", aspect="auto")
    else:
        ax.imshow(mosaic, interpolation="nearest", aspect="auto")
    return fig


def _title(row: dict[str, Any]) -> str:
    return f"{row['true_name']} → {row['predicted_name']} (p={row['p_predicted']:.2f})"
