"""Data handed over from Python (`trainlab.fit(model, data=(X, y))`): arrays or tensors held by this process,
registered under a key and read back by the dataset `in_memory`, so that the run goes through the same
config, split, preparation and run folder as any dataset. Another process cannot read them: a run folder of
such data predicts and tests on new inputs, not on its training arrays."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from trainlab.data.base import DATASETS, SPLIT_INPUTS, ImageArrays, ImageDataset
from trainlab.data.table_files import numbered
from trainlab.data.tables import TableDataset, build_table
from trainlab.errors import UsageError

TEST_SIZE = 0.2  # of the arrays, held out as the test split when no test arrays are given
TEST_SPLIT_SEED = 0  # fixed: every run on the same arrays tests on the same examples

_DATASETS: dict[str, ImageDataset | TableDataset] = {}


@DATASETS.register(injected=SPLIT_INPUTS)
def in_memory(*, key: str, test_only: bool = False) -> ImageDataset | TableDataset:
    """Arrays or tensors handed to trainlab.fit in this process, under `key`."""
    if key not in _DATASETS:
        raise UsageError(
            f"data 'in_memory' ({key}) was handed to trainlab.fit as arrays in another process; this one cannot read "
            "them: test the run on files (trainlab eval RUN --data ...) or predict on new inputs"
        )
    return _DATASETS[key]


def register_arrays(
    inputs: Any, targets: Any, *, test: tuple[Any, Any] | None = None, classes: list[str] | None = None,
) -> str:  # fmt: skip
    """Register images (N, H, W), (N, H, W, C) or (N, C, H, W), uint8 or floats in [0, 1], and their integer labels,
    or a table of features (N, F) and its targets: integer labels (N,) or float values (N,) or (N, T) to regress;
    returns the `key` of `in_memory`. Without `test`, a seeded fifth of the arrays (stratified) is the test split."""
    key = f"arrays-{len(_DATASETS) + 1}"
    if _array(inputs, "X").ndim == 2:
        _DATASETS[key] = _table(inputs, targets, test, classes)
        return key
    images, labels = _images(inputs, "X"), _labels(targets, "y")
    if len(images) != len(labels):
        raise UsageError(f"data: {len(images)} inputs (X) but {len(labels)} targets (y); give one target per input")
    if test is None:
        stratify = labels if np.bincount(labels).min() >= 2 else None
        train_index, test_index = train_test_split(np.arange(len(labels)), test_size=TEST_SIZE,
                                                   random_state=TEST_SPLIT_SEED, stratify=stratify)  # fmt: skip
        train = ImageArrays(images[np.sort(train_index)], labels[np.sort(train_index)])
        held_out = ImageArrays(images[np.sort(test_index)], labels[np.sort(test_index)])
        source = f"arrays from Python ({len(labels):,} examples, {TEST_SIZE:.0%} held out for testing)"
    else:
        train = ImageArrays(images, labels)
        held_out = ImageArrays(_images(test[0], "test X"), _labels(test[1], "test y"))
        if held_out.images.shape[1:] != images.shape[1:]:
            raise UsageError(f"data: test inputs of shape {held_out.images.shape[1:]}, training inputs {images.shape[1:]}")
        source = f"arrays from Python ({len(labels):,} training, {len(held_out):,} test examples)"
    count = int(max(labels.max(), held_out.labels.max())) + 1
    names = classes or [str(i) for i in range(count)]
    if len(names) < count:
        raise UsageError(f"data: {len(names)} class names for labels up to {count - 1}")
    _DATASETS[key] = ImageDataset(train, held_out, list(names), source)
    return key


def _table(inputs: Any, targets: Any, test: tuple[Any, Any] | None, classes: list[str] | None) -> TableDataset:
    """Features (N, F) as columns x0, x1, ... and targets as y (y0, y1, ... for several): float targets are values
    to regress, integer ones class labels (named by `classes`); the features are standardised as a table's are."""
    def frame(features: Any, values: Any, name: str) -> pd.DataFrame:
        features, values = _array(features, f"{name}X").astype(np.float64, copy=False), _array(values, f"{name}y")
        if len(features) != len(values):
            raise UsageError(f"data: {len(features)} {name}inputs (X) but {len(values)} {name}targets (y); give one target per input")
        columns = {f"x{i}": features[:, i] for i in range(features.shape[1])}
        if np.issubdtype(values.dtype, np.floating):
            columns |= {name: values.reshape(len(values), -1)[:, i] for i, name in enumerate(target_names(values))}
        else:
            labels = _labels(values, f"{name}y")
            if classes is not None and labels.max() >= len(classes):
                raise UsageError(f"data: {len(classes)} class names for labels up to {labels.max()}")
            columns["y"] = [classes[i] if classes else str(i) for i in labels]
        return numbered(pd.DataFrame(columns))

    def target_names(values: np.ndarray) -> list[str]:
        return ["y"] if values.ndim == 1 or values.shape[1] == 1 else [f"y{i}" for i in range(values.shape[1])]

    train = frame(inputs, targets, "")
    held_out = frame(*test, "test ") if test is not None else None
    features = [name for name in train.columns if name.startswith("x")]
    target = [name for name in train.columns if name.startswith("y")]
    values = pd.api.types.is_float_dtype(train[target[0]])
    source = f"a table from Python ({len(train):,} rows, {len(features)} features)"
    files = {"train": "the arrays (X, y)", "test": "the test arrays" if test is not None else "the arrays (X, y)"}
    dataset = build_table(train, held_out, files=files, target=target, features=features, categorical=[], missing="error",
                          test_size=TEST_SIZE, test_split_seed=TEST_SPLIT_SEED, test_only=False, source=source)  # fmt: skip
    if values and dataset.kind == "classes":  # whole numbers of few values: the float dtype says they are values
        def numeric(rows: pd.DataFrame) -> pd.DataFrame:
            return rows.assign(**{name: pd.to_numeric(rows[name]) for name in target})

        dataset = dataclasses.replace(dataset, classes=None, train=numeric(dataset.train), test=numeric(dataset.test))
    return dataset


def _array(values: Any, name: str) -> np.ndarray:
    if hasattr(values, "detach"):  # a torch tensor, on any device
        values = values.detach().cpu().numpy()
    try:
        return np.asarray(values)
    except (TypeError, ValueError) as e:
        raise UsageError(f"data: {name} is not an array ({e})") from None


def _images(values: Any, name: str) -> np.ndarray:
    """(N, H, W, C) uint8 from (N, H, W), (N, H, W, C) or (N, C, H, W) images, uint8 or floats in [0, 1]."""
    images = _array(values, name)
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4:
        raise UsageError(f"data: {name} has shape {images.shape}; expected a table (N, F) or images (N, H, W), (N, H, W, C) "
                         "or (N, C, H, W)")  # fmt: skip
    if images.shape[-1] not in (1, 3) and images.shape[1] in (1, 3):
        images = images.transpose(0, 2, 3, 1)  # channels first, as torch keeps them
    if images.dtype != np.uint8:
        if not np.issubdtype(images.dtype, np.number) or images.min() < 0 or images.max() > 1:
            raise UsageError(f"data: {name} holds {images.dtype} values from {images.min()} to {images.max()}; "
                             "expected uint8 pixels (0..255) or floats in [0, 1]")  # fmt: skip
        images = np.rint(images * 255).astype(np.uint8)
    return np.ascontiguousarray(images)


def _labels(values: Any, name: str) -> np.ndarray:
    labels = _array(values, name).reshape(-1)
    if not np.issubdtype(labels.dtype, np.integer) or (len(labels) and labels.min() < 0):
        raise UsageError(f"data: {name} holds {labels.dtype} values; expected class indices 0, 1, 2, ... "
                         "(images take class labels; a table (N, F) takes float values to regress too)")  # fmt: skip
    return labels.astype(np.int64)
