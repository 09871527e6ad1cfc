"""Image datasets by name: CIFAR-10 (an image-folder copy, the python batches, or downloaded) and scikit-learn's
digits. Your own class folders: image_folders.py.

Every builder returns uint8 (N, H, W, C) images, C = 1 for greyscale and 3 for colour.
"""

from __future__ import annotations

import dataclasses
import pickle
from pathlib import Path

import numpy as np

from trainlab.data.base import (
    DATA_ENV,
    DATASETS,
    SPLIT_INPUTS,
    ImageArrays,
    ImageDataset,
    data_root,
    dataset_folder,
)
from trainlab.data.download import download, extract_tar
from trainlab.data.image_folders import image_folder
from trainlab.errors import DataError, UsageError

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR10_ARCHIVE = "cifar-10-python.tar.gz"
CIFAR10_BATCHES = "cifar-10-batches-py"


# ---------------------------------------------------------------- CIFAR-10


def _unpickle(path: Path) -> dict:
    # The official release is a set of pickles; these come from the MD5-checked archive or from the user.
    try:
        with open(path, "rb") as f:
            return pickle.load(f, encoding="bytes")
    except FileNotFoundError as e:
        raise DataError(
            f"missing {path}: the CIFAR-10 python release has data_batch_1..5, test_batch and batches.meta"
        ) from e
    except (OSError, pickle.UnpicklingError, EOFError, ValueError, TypeError) as e:
        raise DataError(f"{path} is not a CIFAR-10 python batch: {e}") from e


def _read_cifar_batch(path: Path, num_classes: int) -> ImageArrays:
    batch = _unpickle(path)
    try:
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
    except (KeyError, TypeError, ValueError) as e:
        raise DataError(f"{path} is not a CIFAR-10 python batch: no {e}") from e
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(labels) != len(data):
        raise DataError(f"{path}: expected (N, 3072) pixels and N labels, got {data.shape} and {len(labels)}")
    if len(labels) and not 0 <= labels.min() <= labels.max() < num_classes:
        raise DataError(f"{path}: labels must lie in [0, {num_classes}), got {labels.min()}..{labels.max()}")
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)  # (N, 3072) channel planes -> (N, 32, 32, 3)
    return ImageArrays(np.ascontiguousarray(images), labels)


def _read_cifar_batches(folder: Path, test_only: bool = False) -> ImageDataset:
    """The official python release: data_batch_1..5, test_batch and batches.meta, all pickles.

    Reading all of it takes about 0.3 s, so it is not cached.
    """
    meta = _unpickle(folder / "batches.meta")
    try:
        classes = [name.decode() for name in meta[b"label_names"]]
    except (KeyError, TypeError, AttributeError) as e:
        raise DataError(f"{folder / 'batches.meta'} has no list of label_names") from e
    train = None
    if not test_only:
        parts = [_read_cifar_batch(folder / f"data_batch_{i}", len(classes)) for i in range(1, 6)]
        train = ImageArrays(np.concatenate([p.images for p in parts]), np.concatenate([p.labels for p in parts]))
    test = _read_cifar_batch(folder / "test_batch", len(classes))
    return ImageDataset(train, test, classes, source=f"CIFAR-10 python batches {folder}")


def _download_cifar10(jpeg: Path, batches: Path) -> None:
    archive = batches.parent / CIFAR10_ARCHIVE
    try:
        download(CIFAR10_URL, archive, CIFAR10_MD5)
    except UsageError as e:
        raise UsageError(
            f"CIFAR-10 not found: neither {jpeg}/ nor {batches}/ exists, and downloading it failed.\n{e}\n"
            f"(the archive is extracted on the next run). Or put an image-folder copy at {jpeg}/ "
            "(train/<class>/*.jpg and test/<class>/*.jpg).\n"
            f"Both paths are under ${DATA_ENV} (now {data_root()}): "
            f"set {DATA_ENV} to the folder that holds cifar10-jpeg/ or cifar10/ if you keep them elsewhere."
        ) from e
    extract_tar(archive, batches.parent)
    if not batches.is_dir():
        raise DataError(f"{archive} did not contain {CIFAR10_BATCHES}/")


@DATASETS.register(injected=SPLIT_INPUTS)
def cifar10(root: str | None = None, *, test_only: bool = False) -> ImageDataset:
    """CIFAR-10: 50,000 + 10,000 colour 32x32 images in 10 classes; downloaded when not found."""
    if root is not None:
        folder = dataset_folder(root)
        if (folder / ("test" if test_only else "train")).is_dir():
            return dataclasses.replace(image_folder(str(folder), test_only=test_only), source=f"CIFAR-10 image folder {folder}")
        batches = folder if (folder / "batches.meta").is_file() else folder / CIFAR10_BATCHES
        if not batches.is_dir():
            raise UsageError(
                f"{folder} holds neither train/ and test/ class folders nor the CIFAR-10 python batches"
            )
        return _read_cifar_batches(batches, test_only)
    jpeg = data_root() / "cifar10-jpeg"
    if jpeg.is_dir():
        return dataclasses.replace(image_folder(str(jpeg), test_only=test_only), source=f"CIFAR-10 image folder {jpeg}")
    batches = data_root() / "cifar10" / CIFAR10_BATCHES
    if not batches.is_dir():
        _download_cifar10(jpeg, batches)
    return _read_cifar_batches(batches, test_only)


# ---------------------------------------------------------------- digits


@DATASETS.register(injected=SPLIT_INPUTS)
def digits(*, test_only: bool = False) -> ImageDataset:
    """scikit-learn's 1,797 greyscale 8x8 digits, embedded: nothing to download."""
    # Imported here: scikit-learn takes most of a second to import and only this builder needs it.
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    images = np.round(bunch.images * (255 / 16)).astype(np.uint8)[..., None]  # (1797, 8, 8) in 0..16 -> (1797, 8, 8, 1)
    labels = bunch.target.astype(np.int64)
    # A fixed seed, not the run's: every run is scored on the same test images.
    train, test = train_test_split(np.arange(len(labels)), test_size=0.2, stratify=labels, random_state=0)
    return ImageDataset(
        train=None if test_only else ImageArrays(images[train], labels[train]),
        test=ImageArrays(images[test], labels[test]),
        classes=[str(digit) for digit in range(10)],
        source="scikit-learn digits (embedded)",
    )
