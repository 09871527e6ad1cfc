"""A table's rows as batches on the training device: the seeded train/validation split, the encoding fitted on the
training rows, the loaders of the three splits, and what data.json says about the columns.

The rows are encoded once (N, F) float32 on the device; a batch is an index into them, no per-row work.
Targets: int64 class labels (N,), or float32 values (N, T) for regression, one column per target column.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from trainlab.data.loader import seeded_generator, split_indices
from trainlab.data.prepared import PreparedData
from trainlab.data.table_encoding import TablePreprocess
from trainlab.data.tables import TableDataset
from trainlab.errors import ConfigError
from trainlab.utils.io import write_json


class TableLoader:
    """Batches of encoded rows (B, F) float32 and their targets: int64 labels (B,) or float32 values (B, T).

    Training batches (`shuffle`) are drawn from (seed, epoch) alone, so a resumed run replays them."""

    def __init__(self, features: torch.Tensor, labels: torch.Tensor, batch_size: int, *, shuffle: bool = False, seed: int = 0,
                 rows: pd.DataFrame | None = None):  # fmt: skip
        if rows is not None and len(rows) != len(labels):
            raise ValueError(f"TableLoader got {len(rows)} rows for {len(labels)} targets")
        self.features, self.labels = features, labels  # (N, F), (N,) or (N, T)
        self.batch_size, self.shuffle, self.seed, self.epoch = batch_size, shuffle, seed, 0
        self.rows = rows  # the raw feature cells in the split's order, for `examples`
        self.order = None  # batches keep the split's order (shuffled for training)

    def examples(self, indices: Sequence[int]) -> list[str]:
        """The raw rows at split positions `indices`, as "column=value, ..." (row numbers of their file first)."""
        if self.rows is None:
            raise ValueError("this TableLoader was built without its rows: pass TableLoader(..., rows=) to show examples")
        picked = self.rows.iloc[[int(i) for i in indices]]
        return [f"row {row}: " + ", ".join(f"{name}={_cell(value)}" for name, value in cells.items())
                for row, cells in zip(picked.index, picked.to_dict("records"))]  # fmt: skip

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return -(-len(self.labels) // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = len(self.labels)
        if self.shuffle:
            order = torch.randperm(n, generator=seeded_generator(self.seed, self.epoch)).to(self.features.device)
        else:
            order = torch.arange(n, device=self.features.device)
        for start in range(0, n, self.batch_size):
            index = order[start : start + self.batch_size]
            yield self.features[index], self.labels[index]


def _cell(value: object) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


@dataclass
class TableData(PreparedData):
    """What a table run trains on: loaders of encoded rows, the encoding, and figures about the columns (data.json)."""

    train: TableLoader
    val: TableLoader
    test: TableLoader
    preprocess: TablePreprocess
    source: str
    sizes: dict[str, int]
    stats: dict  # columns, their encoding, missing cells, and the targets per split (data.json)

    def example(self) -> torch.Tensor:
        """The first training row as the model gets it (F,)."""
        return self.train.features[0]

    def write_records(self, folder: Path, model: nn.Module) -> list[str]:
        write_json(folder / "data.json", {"source": self.source, **self.stats})
        return describe(self)

    def show(self, count: int, output: Path) -> list[str]:
        """The first `count` training rows of epoch 0 as the model gets them: the target, then each encoded input."""
        names, lines = self.preprocess.columns, []
        for features, targets in self.train:
            for row, target in zip(features.tolist(), targets.tolist()):
                shown = self.classes[target] if self.preprocess.target_kind == "classes" else " ".join(f"{v:g}" for v in target)
                lines.append(f"{shown:<10} " + " ".join(f"{name}:{value:+.2f}" for name, value in zip(names, row)))
            if len(lines) >= count:
                break
        return lines[:count]


def prepare_table_data(
    dataset: TableDataset, *, batch_size: int, eval_batch_size: int, val_size: float, split_seed: int, seed: int,
    device: torch.device,
) -> TableData:  # fmt: skip
    """Split off the validation rows (stratified for classes), fit the encoding on the training rows, and put every
    split's encoded rows and targets on `device`."""
    rows = dataset.train
    if dataset.kind == "classes":
        labels = pd.Categorical(rows[dataset.target[0]], categories=dataset.classes).codes.astype(np.int64)
        train_idx, val_idx = split_indices(labels, val_size, split_seed)
    else:
        train_idx, val_idx = value_split(len(rows), val_size, split_seed)
    splits = {"train": rows.iloc[train_idx], "val": rows.iloc[val_idx], "test": dataset.test}
    preprocess = TablePreprocess.fit(dataset, splits["train"])
    files = {"train": dataset.files["train"], "val": dataset.files["train"], "test": dataset.files["test"]}
    size = {"train": batch_size, "val": eval_batch_size, "test": eval_batch_size}
    loaders = {name: table_loader(split, preprocess, size[name], files[name], device=device, shuffle=name == "train", seed=seed)
               for name, split in splits.items()}  # fmt: skip
    return TableData(**loaders, preprocess=preprocess, source=dataset.source, sizes={name: len(s) for name, s in splits.items()},
                     stats=table_stats(dataset, preprocess, splits))  # fmt: skip


def table_loader(rows: pd.DataFrame, preprocess: TablePreprocess, batch_size: int, file: str, *, device: torch.device,
                 shuffle: bool = False, seed: int = 0) -> TableLoader:  # fmt: skip
    features = preprocess.encode_frame(rows, file).to(device)
    return TableLoader(features, preprocess.targets_of(rows, file).to(device), batch_size, shuffle=shuffle, seed=seed,
                       rows=rows[preprocess.features])  # fmt: skip


def table_test_loader(dataset: TableDataset, preprocess: TablePreprocess, batch_size: int, *, device: torch.device) -> TableLoader:
    """The test rows encoded as a run's record says (`trainlab eval`); a class the run does not know is a UsageError
    naming the file and row."""
    return table_loader(dataset.test, preprocess, batch_size, dataset.files.get("test", dataset.source), device=device)


def value_split(n: int, val_size: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A seeded train/validation split of `n` rows with values targets (nothing to stratify by): `val_size` < 1 is a
    fraction, >= 1 a count, as for split_indices."""
    count = round(val_size * n) if val_size < 1 else int(val_size)
    if count < 1 or count >= n:
        left = "none to validate on" if count < 1 else "none to train on"
        raise ConfigError(f"data.val_size={val_size:g} holds out {count} of the {n} training rows, leaving {left}; "
                          f"set data.val_size to a count from 1 to {n - 1} or a fraction")  # fmt: skip
    order = np.random.default_rng(seed % 2**32).permutation(n)
    return np.sort(order[count:]), np.sort(order[:count])


def table_stats(dataset: TableDataset, preprocess: TablePreprocess, splits: dict[str, pd.DataFrame]) -> dict:
    """data.json's figures: each column's encoding, the missing cells handled, the targets per split."""
    columns = [{"name": name, "kind": "categorical", "categories": preprocess.categories[name]} if name in preprocess.categories
               else {"name": name, "kind": "numeric", "mean": preprocess.numeric[name][0], "std": preprocess.numeric[name][1]}
               for name in preprocess.features]  # fmt: skip
    if preprocess.target_kind == "classes":
        label = preprocess.targets[0]
        targets = {"class_counts": {split: {name: int(Counter(rows[label])[name]) for name in preprocess.classes}
                                    for split, rows in splits.items()}}  # fmt: skip
    else:
        targets = {"target_values": {split: {name: _summary(rows[name]) for name in preprocess.targets}
                                     for split, rows in splits.items()}}  # fmt: skip
    return {
        "files": dataset.files, "target": preprocess.targets, "target_kind": preprocess.target_kind,
        "classes": preprocess.classes or None, "in_features": len(preprocess.columns), "columns": columns,
        "missing": {"policy": dataset.missing, "empty_cells": dataset.empty, "rows_dropped": dataset.dropped},
        **targets,
    }  # fmt: skip


def _summary(values: pd.Series) -> dict[str, float]:
    numbers = values.to_numpy(np.float64)
    return {"mean": round(float(numbers.mean()), 6), "std": round(float(numbers.std()), 6),
            "min": float(numbers.min()), "max": float(numbers.max())}  # fmt: skip


def describe(data: TableData) -> list[str]:
    """Lines about the table for the console: columns and their encoding, missing cells, targets."""
    stats, preprocess = data.stats, data.preprocess
    categorical = len(preprocess.categories)
    target = ", ".join(preprocess.targets)
    kind = f"{len(preprocess.classes)} classes" if preprocess.target_kind == "classes" else "values to regress"
    lines = [f"columns: {len(preprocess.features)} features ({len(preprocess.features) - categorical} numbers standardised, "
             f"{categorical} categories one-hot) -> {stats['in_features']} model inputs; target {target}: {kind}"]  # fmt: skip
    dropped = {file: n for file, n in stats["missing"]["rows_dropped"].items() if n}
    if dropped:
        lines.append("rows left out for empty cells: " + ", ".join(f"{file} {n:,}" for file, n in dropped.items()))
    if preprocess.missing == "fill":
        filled = Counter()
        for counts in stats["missing"]["empty_cells"].values():
            filled.update({name: n for name, n in counts.items() if name in preprocess.features})
        if filled:
            lines.append("empty cells filled: " + ", ".join(f"{name} {n:,}" for name, n in filled.items()))
    if preprocess.target_kind == "classes":
        counts = Counter(stats["class_counts"]["train"])
        lines.append("training rows per class: " + ", ".join(f"{name} {n:,}" for name, n in counts.most_common()))
    return lines
