"""From a decoded dataset to batches: seeded split, normalisation statistics, array loader.

Batches are gathered from one uint8 tensor (on the training device), converted and
normalised per batch: no per-file reads, no loader workers, which on a small machine
would take CPU away from training.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from sklearn.model_selection import train_test_split
from torch import nn

from trainlab.data.base import ImageArrays, ImageDataset
from trainlab.data.prepared import PreparedData
from trainlab.data.preprocess import ImagePreprocess
from trainlab.errors import ConfigError, DataError


def split_indices(labels: np.ndarray, val_size: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded, stratified train/validation split. `val_size` < 1 is a fraction, >= 1 a count.

    Any int seed works (negative ones too): it is taken modulo 2**32, as NumPy's seed is in seed_everything.
    """
    n = len(labels)
    classes = len(np.unique(labels))
    count = round(val_size * n) if val_size < 1 else int(val_size)
    given = f"data.val_size={val_size:g}"
    if n <= classes:
        raise ConfigError(
            f"{given}: the {n} training examples of {classes} classes leave none to validate on "
            "(every class needs one for training); add training examples"
        )
    largest = n - classes  # every class keeps at least one training example
    fraction = int(largest / n * 100) / 100  # rounded down, so that it holds out at most `largest`
    advice = f"set data.val_size to a count from 1 to {largest}"
    if fraction:
        advice += f" or a fraction up to {fraction:g}"
    if count < 1:
        raise ConfigError(f"{given} holds out no example: {val_size:g} of the {n} training examples rounds to 0; {advice}")
    if count >= n:
        raise ConfigError(
            f"{given} holds out {count} examples, but the training split has {n} ({classes} classes), "
            f"leaving none to train on; {advice}"
        )
    if n - count < classes:
        raise ConfigError(
            f"{given} leaves {n - count} of the {n} training examples to train on, fewer than the {classes} classes "
            f"(each needs at least one); {advice}"
        )
    classes_ok = np.bincount(labels).min() >= 2 and count >= classes
    train, val = train_test_split(
        np.arange(n), test_size=count, random_state=seed % 2**32, shuffle=True, stratify=labels if classes_ok else None
    )
    return np.sort(train), np.sort(val)


def seeded_generator(seed: int, epoch: int = 0) -> torch.Generator:
    """A CPU generator that depends on (seed, epoch) alone; any int seed works, negative or past 64 bits.

    Modulo 2**64 is how torch itself reads a negative seed, so every seed that worked before gives the same numbers.
    """
    return torch.Generator().manual_seed((seed * 1_000_003 + epoch) % 2**64)


def channel_stats(images: np.ndarray, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std (0..255 scale) of (N, H, W, C) uint8 images, in float64."""
    channels = images.shape[-1]
    total, total_sq, count = np.zeros(channels), np.zeros(channels), 0
    for start in range(0, len(images), chunk):
        block = images[start : start + chunk].reshape(-1, channels).astype(np.float64)  # (pixels, C)
        total += block.sum(0)
        total_sq += np.square(block).sum(0)
        count += len(block)
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean**2, 0.0))
    return mean, np.where(std > 0, std, 1.0)


class ArrayLoader:
    """Batches of normalised float images (B, C, H, W) and int64 labels (B,) from a uint8 (N, H, W, C) tensor."""

    def __init__(
        self, images: torch.Tensor, labels: torch.Tensor, batch_size: int, *, preprocess: ImagePreprocess,
        shuffle: bool = False, seed: int = 0, channels_last: bool = False,
        augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None,
    ):  # fmt: skip
        self.images, self.labels, self.batch_size = images, labels, batch_size
        self.shuffle, self.seed, self.epoch, self.channels_last = shuffle, seed, 0, channels_last
        self.augment = augment  # on (B, C, H, W) floats in [0, 1], before normalisation
        self.preprocess = preprocess
        self.order = None  # batches keep the split's order (shuffled for training)

    def preview(self, count: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
        """The first `count` images of epoch 0 as the model gets them, but before normalisation: (B, C, H, W) in [0, 1]."""
        generator = seeded_generator(self.seed)
        order = torch.randperm(len(self.labels), generator=generator) if self.shuffle else torch.arange(len(self.labels))
        index = order[:count].to(self.images.device)
        x = self.images[index].permute(0, 3, 1, 2).float().div_(255)
        x = self.augment(x, generator, positions=index, epoch=0, seed=self.seed) if self.augment is not None else x
        return x, self.labels[index]

    def examples(self, indices: Sequence[int]) -> list[np.ndarray]:
        """The uint8 images (H, W, C) at split positions `indices`, as decoded."""
        index = torch.as_tensor(list(indices), dtype=torch.int64, device=self.images.device)
        return list(self.images[index].cpu().numpy())

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return -(-len(self.labels) // self.batch_size)

    def epoch_order(self, generator: torch.Generator) -> torch.Tensor:
        """The split's positions in this epoch's order (the first draw of the epoch's generator when shuffling)."""
        n = len(self.labels)
        if self.shuffle:
            return torch.randperm(n, generator=generator).to(self.images.device)
        return torch.arange(n, device=self.images.device)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for inputs, labels, _ in self.batches_of_rank(0, 1):
            yield inputs, labels

    def batches_of_rank(self, rank: int, world_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor, int]]:
        """Process `rank`'s part of each batch in data-parallel training (engine/distributed.py), and the number of
        examples in the whole batch: the batch's positions split into `world_size` contiguous parts, only this part
        gathered and augmented (rank 0 with the generator one process uses, the others with their own)."""
        n = len(self.labels)
        # Shuffling and augmentation depend on (seed, epoch) alone, so a resumed run replays them.
        generator = seeded_generator(self.seed, self.epoch)
        order = self.epoch_order(generator)
        if rank:
            generator = seeded_generator(self.seed + rank * 2**32, self.epoch)
        for start in range(0, n, self.batch_size):
            index = whole = order[start : start + self.batch_size]
            if world_size > 1:
                index = whole.tensor_split(world_size)[rank]
            x = self.images[index].permute(0, 3, 1, 2).float().div_(255)  # (B, H, W, C) -> (B, C, H, W) in [0, 1]
            if self.augment is not None and len(index):
                x = self.augment(x, generator, positions=index, epoch=self.epoch, seed=self.seed)
            x = self.preprocess.normalise(x)
            yield (x if self.channels_last else x.contiguous()), self.labels[index], len(whole)


@dataclass
class ImageData(PreparedData):
    """What an image run trains on: array loaders normalised by the training split's statistics."""

    train: ArrayLoader
    val: ArrayLoader
    test: ArrayLoader
    preprocess: ImagePreprocess
    source: str
    sizes: dict[str, int]

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W)"""
        return self.preprocess.shape

    def example(self) -> torch.Tensor:
        images, _ = self.train.preview(1)
        return self.preprocess.normalise(images)[0]

    def write_records(self, folder: Path, model: nn.Module) -> list[str]:
        self.write_sample_grid(folder / "samples.png")
        return []

    def show(self, count: int, output: Path) -> list[str]:
        self.write_sample_grid(output, count)
        return [f"{count} training samples: {output}"]

    def write_sample_grid(self, path: Path, count: int = 64) -> None:
        """A picture of the first training batch as the model sees it (augmented), with class names."""
        from trainlab.evaluation.grid import sample_grid_figure
        from trainlab.evaluation.plots import save_figure

        images, labels = self.train.preview(count)
        save_figure(sample_grid_figure(images.cpu(), labels.tolist(), self.classes), path)


def prepare_data(
    dataset: ImageDataset, *, batch_size: int, eval_batch_size: int, val_size: float, split_seed: int, seed: int,
    device: torch.device, channels_last: bool,
    augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None,
    normalisation: tuple[Sequence[float], Sequence[float]] | None = None,
) -> ImageData:  # fmt: skip
    """Split, normalise (with `normalisation`, a pretrained model's (mean, std), else the training split's
    statistics) and batch an image dataset on `device`."""
    train_idx, val_idx = split_indices(np.asarray(dataset.train.labels), val_size, split_seed)
    train = ImageArrays(dataset.train.images[train_idx], dataset.train.labels[train_idx])  # fancy indexing copies
    val = ImageArrays(dataset.train.images[val_idx], dataset.train.labels[val_idx])
    preprocess = ImagePreprocess(dataset.classes, dataset.image_shape, *(normalisation or channel_stats(train.images)))

    def loader(arrays: ImageArrays, size: int, shuffle: bool, augment=None) -> ArrayLoader:
        return array_loader(arrays, preprocess, size, device=device, channels_last=channels_last, shuffle=shuffle,
                            seed=seed, augment=augment)  # fmt: skip

    return ImageData(
        train=loader(train, batch_size, True, augment),
        val=loader(val, eval_batch_size, False),
        test=loader(dataset.test, eval_batch_size, False),
        preprocess=preprocess,
        source=dataset.source,
        sizes={"train": len(train), "val": len(val), "test": len(dataset.test)},
    )


def array_loader(
    arrays: ImageArrays, preprocess: ImagePreprocess, batch_size: int, *, device: torch.device, channels_last: bool,
    shuffle: bool = False, seed: int = 0, augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None,
) -> ArrayLoader:  # fmt: skip
    images = arrays.images if arrays.images.flags.writeable else np.array(arrays.images)  # memory map: read it in
    labels = torch.from_numpy(np.asarray(arrays.labels, dtype=np.int64)).to(device)
    return ArrayLoader(torch.from_numpy(images).to(device), labels, batch_size, preprocess=preprocess, shuffle=shuffle,
                       seed=seed, channels_last=channels_last, augment=augment)  # fmt: skip


def image_test_loader(
    dataset: ImageDataset, preprocess: ImagePreprocess, batch_size: int, *, device: torch.device, channels_last: bool
) -> ArrayLoader:
    """The test split, normalised with a run's recorded statistics (`trainlab eval`)."""
    if dataset.image_shape != preprocess.shape:
        raise DataError(
            f"{dataset.source}: its images are {_shape(dataset.image_shape)}, but the run was trained on "
            f"{_shape(preprocess.shape)}"
        )
    return array_loader(dataset.test, preprocess, batch_size, device=device, channels_last=channels_last)


def _shape(shape: tuple[int, int, int]) -> str:
    channels, height, width = shape
    return f"{width}x{height} pixels, {'greyscale' if channels == 1 else 'colour'}"
