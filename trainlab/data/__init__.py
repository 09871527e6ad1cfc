"""Datasets (registered by name), and their preparation into the loaders a model trains on (`prepare`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np
import torch

from trainlab.data.base import DATASETS, FIXED_SHAPES, ImageArrays, ImageDataset, cache_root, data_root, dataset_shape
from trainlab.data import image_folders  # noqa: F401  (registers image_folder)
from trainlab.data import vision  # noqa: F401  (registers cifar10 and digits)
from trainlab.data import mnist  # noqa: F401  (registers mnist)
from trainlab.data import memory  # noqa: F401  (registers in_memory: arrays handed to trainlab.fit)
from trainlab.data import text  # noqa: F401  (registers emotion)
from trainlab.data import text_files  # noqa: F401  (registers text_files)
from trainlab.data import tables  # noqa: F401  (registers csv and sklearn_table)
from trainlab.data.loader import image_test_loader, prepare_data
from trainlab.data.prepared import Loader, PreparedData
from trainlab.data.preprocess import ImagePreprocess, Preprocess, TextPreprocess, load_preprocess
from trainlab.data.text import TextDataset, prepare_text_data, text_test_loader
from trainlab.data.pieces import PiecePreprocess, piece_test_loader, prepare_piece_data
from trainlab.data.table_encoding import TablePreprocess
from trainlab.data.table_loader import prepare_table_data, table_test_loader
from trainlab.data.tables import TableDataset
from trainlab.errors import ConfigError, DataError
from trainlab.text.pretrained import PieceTokenizer


def prepare(
    dataset: ImageDataset | TextDataset | TableDataset, *, batch_size: int, eval_batch_size: int, val_size: float, split_seed: int,
    seed: int, device: torch.device, channels_last: bool,
    augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None, name: str = "",
    tokenizer: PieceTokenizer | None = None, normalisation: tuple[Sequence[float], Sequence[float]] | None = None,
) -> PreparedData:  # fmt: skip
    """A built dataset's split, statistics and loaders, whatever its kind; `name` is the config's, for messages.

    `tokenizer` is the model's own (a pretrained transformer's word pieces): texts are then tokenized by it.
    `normalisation` is a pretrained image model's (mean, std) per channel: images are normalised with it."""
    splits = dict(batch_size=batch_size, eval_batch_size=eval_batch_size, val_size=val_size, split_seed=split_seed,
                  seed=seed, device=device)  # fmt: skip
    if tokenizer is not None and not isinstance(dataset, TextDataset):
        raise ConfigError(f"the model reads texts with the tokenizer of {tokenizer.name}; dataset '{name}' is not text")
    if isinstance(dataset, TextDataset):
        if augment is not None:
            raise ConfigError(f"augment.* transforms images; dataset '{name}' is text")
        if tokenizer is not None:
            return prepare_piece_data(dataset, tokenizer, **splits)
        return prepare_text_data(dataset, **splits)
    if isinstance(dataset, TableDataset):
        if augment is not None or normalisation is not None:
            what = "augment.* transforms images" if augment is not None else "the model's pretrained weights take images"
            raise ConfigError(f"{what}; dataset '{name}' is a table")
        return prepare_table_data(dataset, **splits)
    if normalisation is not None and len(normalisation[0]) != dataset.image_shape[0]:
        raise ConfigError(f"the model's pretrained weights take {len(normalisation[0])}-channel images; dataset '{name}' "
                          f"has {dataset.image_shape[0]}-channel images")  # fmt: skip
    return prepare_data(dataset, **splits, channels_last=channels_last, augment=augment, normalisation=normalisation)


def prepare_test(
    dataset: ImageDataset | TextDataset | TableDataset, preprocess: Preprocess, *, batch_size: int, device: torch.device,
    channels_last: bool,
) -> Loader:  # fmt: skip
    """The test split of a built dataset (`test_only` will do), prepared with a run's `preprocess` (its statistics,
    its vocabulary); its labels are the run's, also when the test split lacks some of the run's classes."""
    if isinstance(dataset, TableDataset) != isinstance(preprocess, TablePreprocess):
        raise DataError(f"{dataset.source} is {type(dataset).__name__}, but the run was trained on {preprocess.kind} inputs")
    if isinstance(dataset, TableDataset):  # labelled by the run's classes row by row: an unknown one names its row
        return table_test_loader(dataset, preprocess, batch_size, device=device)
    if not set(dataset.classes) <= set(preprocess.classes):
        raise DataError(
            f"{dataset.source} has the classes {', '.join(dataset.classes)}, but the run was trained on "
            f"{', '.join(preprocess.classes)}: is it the run's data?"
        )
    run_label = np.array([preprocess.classes.index(name) for name in dataset.classes], dtype=np.int64)
    dataset = dataclasses.replace(dataset, test=dataclasses.replace(dataset.test, labels=run_label[dataset.test.labels]))
    if isinstance(dataset, TextDataset) and isinstance(preprocess, TextPreprocess):
        return text_test_loader(dataset, preprocess, batch_size, device=device)
    if isinstance(dataset, TextDataset) and isinstance(preprocess, PiecePreprocess):
        return piece_test_loader(dataset, preprocess, batch_size, device=device)
    if isinstance(dataset, ImageDataset) and isinstance(preprocess, ImagePreprocess):
        return image_test_loader(dataset, preprocess, batch_size, device=device, channels_last=channels_last)
    raise DataError(f"{dataset.source} is {type(dataset).__name__}, but the run was trained on {preprocess.kind} inputs")


__all__ = [
    "DATASETS", "FIXED_SHAPES", "ImageArrays", "ImageDataset", "PreparedData", "Preprocess", "cache_root", "data_root", "dataset_shape",
    "load_preprocess", "prepare", "prepare_test",
]  # fmt: skip
