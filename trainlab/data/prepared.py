"""The contract between data and model: what every prepared dataset gives the runner, the model builders
and the tools. A new kind of data (word pieces for a pretrained transformer, a frozen backbone's
features) is a new subclass with its own `Preprocess`; nothing outside the data layer asks which kind it is.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from trainlab.data.preprocess import Preprocess


class Loader(Protocol):
    """Batches of (inputs, labels) on the training device.

    `order` is None when batches come in the split's order, else the split position of each example as
    the batches give them (an evaluation loader that sorts texts by length)."""

    batch_size: int
    labels: torch.Tensor  # (N,) of the whole split
    order: torch.Tensor | None

    def set_epoch(self, epoch: int) -> None: ...
    def __len__(self) -> int: ...
    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]: ...

    def examples(self, indices: Sequence[int]) -> list[np.ndarray] | list[str]:
        """The raw examples at split positions `indices`, as a person should see them: uint8 (H, W, C) images
        (C = 1 or 3), or the original texts."""
        ...


class PreparedData(ABC):
    """Loaders of the three splits, their sizes, where the data came from, and its `preprocess` record.

    Subclasses set the attributes below and implement the abstract methods."""

    train: Loader
    val: Loader
    test: Loader
    preprocess: Preprocess
    source: str  # in words: "image folder /data/cifar10-jpeg"
    sizes: dict[str, int]  # examples per split

    @property
    def classes(self) -> list[str]:
        return self.preprocess.classes

    @property
    def unit(self) -> str:
        """What one example is called in a throughput: "img" in img/s."""
        return self.preprocess.unit

    def model_inputs(self) -> dict[str, Any]:
        """The arguments a model builder may name (`injected=`): the preprocess record's, and `load_pretrained`,
        True here (pretrained vectors or weights are loaded; built from a run folder they come from the checkpoint)."""
        return {**self.preprocess.model_inputs(), **self.training_inputs(), "load_pretrained": True}

    def training_inputs(self) -> dict[str, Any]:
        """Inputs only the training data has (a corpus to train word vectors on)."""
        return {}

    @abstractmethod
    def example(self) -> torch.Tensor:
        """One typical training input, without the batch dimension, as the model gets it."""

    @abstractmethod
    def write_records(self, folder: Path, model: nn.Module) -> list[str]:
        """Write what a run folder shows about the data (a picture of samples, data.json) and return the lines
        to print at the start of a run."""

    @abstractmethod
    def show(self, count: int, output: Path) -> list[str]:
        """`trainlab show-data`: the first `count` training examples as the model gets them, drawn into `output`
        or returned as lines."""

