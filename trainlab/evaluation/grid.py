"""A grid of sample images titled with their class names, to see what a model is fed.

Built with matplotlib's object API on an Agg canvas (no pyplot); save it with
`trainlab.evaluation.plots.save_figure`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from trainlab.evaluation.plots import DPI

_CELL_INCHES = (1.0, 1.2)  # width, height per image: a 32x32 image is drawn ~3x, with room for a title


def sample_grid_figure(
    images: np.ndarray | torch.Tensor, labels: Sequence[int], classes: Sequence[str], columns: int = 8
) -> Figure:
    """Images in rows of `columns`, each titled with its class name; greyscale drawn in grey.

    `images` are uint8 (N, H, W, C), as decoded, or floats in [0, 1] (N, C, H, W), as
    augmented batches are (before normalisation); C is 1 or 3.
    """
    pixels = _to_hwc(images)  # (N, H, W, C), floats in [0, 1]
    n = len(pixels)
    if n == 0:
        raise ValueError("sample_grid_figure needs at least one image")
    if len(labels) != n:
        raise ValueError(f"sample_grid_figure got {n} images but {len(labels)} labels")
    if columns < 1:
        raise ValueError(f"columns must be at least 1, got {columns}")
    columns = min(columns, n)
    rows = math.ceil(n / columns)
    fig = Figure(figsize=(_CELL_INCHES[0] * columns, _CELL_INCHES[1] * rows), dpi=DPI)
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, columns, squeeze=False, gridspec_kw={"wspace": 0.1, "hspace": 0.35})
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=1 - 0.3 / (_CELL_INCHES[1] * rows))
    for i, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if i >= n:
            continue
        if pixels.shape[-1] == 1:
            ax.imshow(pixels[i, :, :, 0], cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
        else:
            ax.imshow(pixels[i], interpolation="nearest")
        label = int(labels[i])
        ax.set_title(classes[label] if 0 <= label < len(classes) else str(label), fontsize=8, pad=2)
    return fig


def _to_hwc(images: np.ndarray | torch.Tensor) -> np.ndarray:
    """(N, H, W, C) float in [0, 1] from uint8 (N, H, W, C) or float (N, C, H, W)."""
    if isinstance(images, torch.Tensor):
        images = images.detach().to("cpu", torch.float32 if images.is_floating_point() else images.dtype).numpy()
    images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError(
            f"sample_grid_figure wants (N, H, W, C) uint8 or (N, C, H, W) float images, got shape {images.shape}"
        )
    if images.dtype == np.uint8:
        pixels = images.astype(np.float32) / 255
    elif np.issubdtype(images.dtype, np.floating):
        pixels = np.clip(images.transpose(0, 2, 3, 1), 0.0, 1.0)  # (N, C, H, W) -> (N, H, W, C)
    else:
        raise ValueError(f"sample_grid_figure wants uint8 or float images, got {images.dtype}")
    if pixels.shape[-1] not in (1, 3):
        raise ValueError(f"sample_grid_figure shows 1- or 3-channel images, got {pixels.shape[-1]} channels")
    return pixels
