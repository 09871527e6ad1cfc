"""What every image dataset builder returns, and where datasets and caches live."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trainlab.errors import DataWarning, UsageError
from trainlab.registry import Registry

DATASETS = Registry("datasets")

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
# What Windows, macOS and NAS file managers leave among images (lower case), skipped like hidden files.
SYSTEM_NAMES = frozenset({"thumbs.db", "ehthumbs.db", "ehthumbs_vista.db", "desktop.ini", "__macosx", "@eadir"})

DATA_ENV = "TRAINLAB_DATA"
CACHE_ENV = "TRAINLAB_CACHE"


def warn(message: str) -> None:
    warnings.warn(message, DataWarning, stacklevel=3)  # the builder or loader that found it


@dataclass
class ImageArrays:
    images: np.ndarray  # (N, H, W, C) uint8; may be a read-only memory map
    labels: np.ndarray  # (N,) int64, values in [0, num_classes)

    def __len__(self) -> int:
        return len(self.labels)


# The argument every dataset builder gets from trainlab: True when only the test split is wanted (`trainlab eval`
# of a run, which brings its own statistics), so that the training split need not be there.
SPLIT_INPUTS = ("test_only",)


@dataclass
class ImageDataset:
    train: ImageArrays | None  # None: built with test_only
    test: ImageArrays
    classes: list[str]
    source: str  # where the pixels came from, in words: "image folder /data/cifar10-jpeg"

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one image, as a model sees it."""
        _, h, w, c = (self.train or self.test).images.shape
        return c, h, w


# (C, H, W) and class count of the datasets whose shape never changes, so that their model can be
# built (`trainlab summary`) without reading, decoding or downloading the data.
FIXED_SHAPES: dict[str, tuple[tuple[int, int, int], int]] = {
    "digits": ((1, 8, 8), 10),
    "mnist": ((1, 28, 28), 10),
    "cifar10": ((3, 32, 32), 10),
}


def dataset_shape(name: str, args: dict) -> tuple[tuple[int, int, int], int]:
    """(C, H, W) of one image and the number of classes of a configured dataset.

    Fixed for the datasets in FIXED_SHAPES; any other (an image folder) is loaded, which decodes it
    once into the cache and memory-maps it afterwards.
    """
    if name in FIXED_SHAPES:
        return FIXED_SHAPES[name]
    dataset = DATASETS.build(name, **args)
    return dataset.image_shape, len(dataset.classes)


def data_root() -> Path:
    """The folder that holds datasets by name (`cifar10-jpeg/`, `mnist/`, ...): $TRAINLAB_DATA."""
    return Path(os.environ.get(DATA_ENV) or Path.home() / ".cache" / "trainlab" / "data").expanduser()


def cache_root() -> Path:
    """Where decoded arrays are cached: $TRAINLAB_CACHE, default ~/.cache/trainlab/arrays."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "trainlab" / "arrays").expanduser()


def dataset_folder(root: str) -> Path:
    """A dataset's `root` as given (relative to the working directory), else under `data_root()`: the one rule for
    where a dataset folder is."""
    path = Path(root).expanduser()
    candidates = [path] if path.is_absolute() else [Path.cwd() / path, data_root() / path]
    for candidate in candidates:
        if candidate.exists():
            return candidate.resolve()
    raise UsageError(f"dataset folder '{root}' not found: looked for {' and '.join(map(str, candidates))}")
