"""Texts in a pretrained model's word pieces: the tokenizer comes from the model's folder, not from the data.

The same text datasets as `text.py` (their raw texts), tokenized by the model's `PieceTokenizer` into
[CLS] pieces [SEP] ids, batched by length and padded with the tokenizer's pad id to the batch's longest
(on a CPU, padding is most of a transformer's cost). The model reads its attention mask off the padding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import torch
from torch import nn

from trainlab.data.loader import split_indices
from trainlab.data.prepared import PreparedData
from trainlab.data.preprocess import Preprocess, Segments, gather_texts
from trainlab.data.text import TextDataset, TextLoader, TextSplit, _class_counts
from trainlab.errors import ConfigError, UsageError
from trainlab.text.pretrained import TOKENIZER_DIR, PieceTokenizer
from trainlab.utils.io import write_json


class PiecePreprocess(Preprocess):
    """Texts tokenized by the model's own tokenizer (saved in the run folder's tokenizer/ with the model's config)."""

    kind, unit = "pieces", "texts"

    def __init__(self, classes: Sequence[str], tokenizer: PieceTokenizer, *, typical_length: int = 16):
        super().__init__(classes)
        self.tokenizer, self.typical_length = tokenizer, max(3, int(typical_length))
        self.pad_id = tokenizer.pad_id

    def model_inputs(self) -> dict[str, Any]:
        return {"pieces": self.tokenizer, "num_classes": len(self.classes)}

    def example(self) -> torch.Tensor:
        """[CLS] ... [SEP] ids (T,) of the training texts' median length (ids of common pieces, not a real text)."""
        ids = self.tokenizer.encode(["the"])[0]  # [CLS] the [SEP]
        return torch.tensor(ids[:1] + ids[1:-1] * (self.typical_length - 2) + ids[-1:])

    def encode(self, inputs: Sequence[str]) -> torch.Tensor:
        """(N, T) int64 ids padded with the pad id to the longest; a text without a piece is a UsageError."""
        rows = self.tokenizer.encode(inputs) if inputs else []
        for number, (text, row) in enumerate(zip(inputs, rows), start=1):
            if len(row) <= 2 or not text.strip():
                shown = text if len(text) <= 60 else text[:59] + "…"
                raise UsageError(f"text {number} ({shown!r}): the tokenizer finds no word piece in it")
        return pad_rows(rows, self.tokenizer.pad_id)

    def gather(self, arguments: Sequence[str], stdin: TextIO) -> list[tuple[str, Any]]:
        return gather_texts(arguments, stdin)

    def segment(self, text: str) -> Segments:
        ids, word_ids, special = self.tokenizer.word_ids(text)
        return Segments(ids, self.tokenizer.pieces(ids), word_ids, special)

    def save(self, folder: Path) -> None:
        self.tokenizer.save(folder / TOKENIZER_DIR)
        super().save(folder)

    def to_record(self) -> dict[str, Any]:
        return {"tokenizer": TOKENIZER_DIR, "source": self.tokenizer.name, "max_length": self.tokenizer.max_length,
                "lowercase": self.tokenizer.lowercase, "vocabulary_size": len(self.tokenizer),
                "pad_id": self.tokenizer.pad_id, "typical_length": self.typical_length}  # fmt: skip

    @classmethod
    def from_record(cls, record: dict[str, Any], folder: Path) -> PiecePreprocess:
        tokenizer = PieceTokenizer(folder / record["tokenizer"], record["max_length"], name=record.get("source"))
        if len(tokenizer) != record["vocabulary_size"]:
            raise ValueError(f"{record['tokenizer']} holds {len(tokenizer)} pieces, the record says {record['vocabulary_size']}")
        return cls(record["classes"], tokenizer, typical_length=record.get("typical_length", 16))


def pad_rows(rows: Sequence[Sequence[int]], pad_id: int) -> torch.Tensor:
    """(N, longest) int64, each row right-padded with `pad_id`."""
    ids = torch.full((len(rows), max((len(r) for r in rows), default=0)), pad_id, dtype=torch.int64)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row, dtype=torch.int64)
    return ids


@dataclass
class PieceData(PreparedData):
    """What a pretrained text model fine-tunes on: loaders of word-piece ids and figures about the data."""

    train: TextLoader
    val: TextLoader
    test: TextLoader
    preprocess: PiecePreprocess
    source: str
    sizes: dict[str, int]
    stats: dict  # class counts, pieces per text, truncated share per split (data.json)

    def example(self) -> torch.Tensor:
        """The ids (T,) of a training text of the median length."""
        index = int(torch.argsort(self.train.lengths, stable=True)[(len(self.train.lengths) - 1) // 2])
        return self.train.ids[index, : int(self.train.lengths[index])]

    def write_records(self, folder: Path, model: nn.Module) -> list[str]:
        write_json(folder / "data.json", {"source": self.source, "classes": self.classes, **self.stats})
        lengths, cut = self.stats["pieces_per_text"]["train"], self.stats["truncated_share"]["train"]
        return [f"tokenizer: {self.preprocess.tokenizer.name} ({len(self.preprocess.tokenizer):,} pieces); training texts: "
                f"{lengths['mean']:.1f} pieces on average, p95 {lengths['p95']:.0f}, max {lengths['max']}; "
                f"{cut:.2%} cut to max_length {self.preprocess.tokenizer.max_length}"]  # fmt: skip

    def show(self, count: int, output: Path) -> list[str]:
        lines = []
        for ids, labels in self.train:
            for row, label in zip(ids.tolist(), labels.tolist()):
                pieces = self.preprocess.tokenizer.pieces(i for i in row if i != self.preprocess.tokenizer.pad_id)
                lines.append(f"{self.classes[label]:<10} {' '.join(pieces)}")
            if len(lines) >= count:
                break
        return lines[:count]


def prepare_piece_data(
    dataset: TextDataset, tokenizer: PieceTokenizer, *, batch_size: int, eval_batch_size: int, val_size: float,
    split_seed: int, seed: int, device: torch.device,
) -> PieceData:  # fmt: skip
    if dataset.max_length is not None:
        raise ConfigError(f"data.max_length cuts whitespace tokens; this model reads word pieces, cut by its own "
                          f"max_length ({tokenizer.max_length}): leave data.max_length out")  # fmt: skip
    train, val = dataset.train, dataset.val
    if val is None:
        train_idx, val_idx = split_indices(train.labels, val_size, split_seed)
        train, val = train.subset(train_idx), train.subset(val_idx)
    splits = {"train": train, "val": val, "test": dataset.test}
    encoded = {name: tokenizer.encode(split.texts) for name, split in splits.items()}
    sizes = {"train": batch_size, "val": eval_batch_size, "test": eval_batch_size}
    loaders = {name: _loader(splits[name], encoded[name], tokenizer, sizes[name], device, shuffle=name == "train", seed=seed)
               for name in splits}  # fmt: skip
    lengths = sorted(len(row) for row in encoded["train"])
    stats = {
        "tokenizer": tokenizer.name, "max_length": tokenizer.max_length,
        "class_counts": {name: _class_counts(s.labels, dataset.classes) for name, s in splits.items()},
        "pieces_per_text": {name: _length_stats(rows) for name, rows in encoded.items()},
        "truncated_share": {name: round(_truncated_share(splits[name], tokenizer), 5) for name in splits},
    }  # fmt: skip
    preprocess = PiecePreprocess(dataset.classes, tokenizer, typical_length=lengths[(len(lengths) - 1) // 2])
    return PieceData(**loaders, preprocess=preprocess, source=dataset.source,
                     sizes={name: len(s) for name, s in splits.items()}, stats=stats)  # fmt: skip


def piece_test_loader(dataset: TextDataset, preprocess: PiecePreprocess, batch_size: int, *, device: torch.device) -> TextLoader:
    """The test split in a run's tokenizer (`trainlab eval`)."""
    tokenizer = preprocess.tokenizer
    return _loader(dataset.test, tokenizer.encode(dataset.test.texts), tokenizer, batch_size, device)


def _loader(split: TextSplit, rows: list[list[int]], tokenizer: PieceTokenizer, batch_size: int, device: torch.device,
            *, shuffle: bool = False, seed: int = 0) -> TextLoader:  # fmt: skip
    ids = pad_rows(rows, tokenizer.pad_id)
    lengths = torch.tensor([len(row) for row in rows], dtype=torch.int64)
    labels = torch.from_numpy(split.labels)
    return TextLoader(ids.to(device), lengths.to(device), labels.to(device), batch_size, shuffle=shuffle, seed=seed,
                      texts=split.texts)  # fmt: skip


def _length_stats(rows: list[list[int]]) -> dict[str, float]:
    lengths = np.array([len(r) for r in rows])
    return {"mean": round(float(lengths.mean()), 2), "p95": float(np.percentile(lengths, 95)), "max": int(lengths.max())}


def _truncated_share(split: TextSplit, tokenizer: PieceTokenizer) -> float:
    """The share of texts longer than max_length pieces (their end is cut)."""
    full = tokenizer.tokenizer(split.texts, truncation=False)["input_ids"]
    return float(np.mean([len(row) > tokenizer.max_length for row in full]))
