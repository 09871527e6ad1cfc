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

_CELL_INCHES = 1.0  # width of one image's cell: a 32x32 image is drawn ~3x
_GAP, _TITLE_BAND = 0.12, 0.35  # the space between images, and above each for its title, in image widths / heights


def sample_grid_figure(
    images: np.ndarray | torch.Tensor, labels: Sequence[int], classes: Sequence[str], columns: int = 8
) -> Figure:
    """Images in rows of `columns`, each titled with its class name; greyscale drawn in grey.

    `images` are uint8 (N, H, W, C), as decoded, or floats in [0, 1] (N, C, H, W), as
    augmented batches are (before normalisation); C is 1 or 3. The images are tiled into one
    picture drawn by one `imshow` (an axes per image costs ~25 ms each), titled by text.
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
    height, width, channels = pixels.shape[1:]
    cell_height, cell_width = cell_size(height, width)
    mosaic = np.ones((rows * cell_height, columns * cell_width, channels), np.float32)  # white between the images
    fig = Figure(figsize=(_CELL_INCHES * columns, _CELL_INCHES * columns * mosaic.shape[0] / mosaic.shape[1]), dpi=DPI)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_axis_off()
    for i in range(n):
        top, left = cell_origin(i, height, width, columns)
        mosaic[top : top + height, left : left + width] = pixels[i]
        label = int(labels[i])
        name = classes[label] if 0 <= label < len(classes) else str(label)
        ax.text(left + width / 2 - 0.5, top - (cell_height - height) / 2 - 0.5, name, ha="center", va="center", fontsize=8)
    if channels == 1:
        ax.imshow(mosaic[:, :, 0], cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest", aspect="auto")
    else:
        ax.imshow(mosaic, interpolation="nearest", aspect="auto")
    return fig


def cell_size(height: int, width: int) -> tuple[int, int]:
    """(height, width) in pixels of one image's cell in the tiled picture: the image, its title band, a gap."""
    return height + round(_TITLE_BAND * height), width + max(1, round(_GAP * width))


def cell_origin(index: int, height: int, width: int, columns: int) -> tuple[int, int]:
    """(top, left) pixel of image `index` in the tiled picture."""
    cell_height, cell_width = cell_size(height, width)
    row, column = divmod(index, columns)
    return row * cell_height + (cell_height - height), column * cell_width + (cell_width - width) // 2


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
