"""Text datasets: `text;label` files read and tokenized once, a vocabulary from the training split,
and batches of token ids grouped by length, each padded to its own longest text.

The files are user input: a line that cannot be read (not UTF-8, no `;`, an empty text or label,
a label outside the dataset's labels) is a UsageError naming the file and the line (exit 2).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import numpy as np
import torch
from pydantic import Field
from torch import nn

from trainlab.data.base import DATA_ENV, DATASETS, SPLIT_INPUTS, data_root
from trainlab.data.loader import seeded_generator, split_indices
from trainlab.data.prepared import PreparedData
from trainlab.data.preprocess import TextPreprocess
from trainlab.errors import UsageError
from trainlab.registry import did_you_mean
from trainlab.utils.io import write_json
from trainlab.text.processing import Tokenizer, tokenize
from trainlab.text.vocab import Vocabulary

# The published order of the emotion dataset's labels (Saravia et al. 2018): label index = position.
EMOTION_LABELS = ("sadness", "joy", "love", "anger", "fear", "surprise")
# Training texts are shuffled, then sorted by length within pools of this many batches, so a batch
# holds texts of about one length while the batches' order stays random.
POOL_BATCHES = 50


@dataclass
class TextSplit:
    texts: list[str]
    tokens: list[list[str]]
    labels: np.ndarray  # (N,) int64, index into the dataset's classes

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index: np.ndarray) -> TextSplit:
        return TextSplit([self.texts[i] for i in index], [self.tokens[i] for i in index], self.labels[index])


@dataclass
class TextDataset:
    train: TextSplit | None  # None: built with test_only
    val: TextSplit | None  # None: split from train by data.val_size
    test: TextSplit
    classes: list[str]
    source: str
    tokenizer: Tokenizer = "whitespace"  # how the texts were tokenized, for new texts (preprocess.json)
    lowercase: bool = True
    max_length: int | None = None  # tokens kept of each text
    min_freq: int = 1  # vocabulary options, applied to the training split
    max_vocab: int | None = None


def read_labelled_lines(path: Path, classes: Sequence[str]) -> tuple[list[str], np.ndarray, list[int]]:
    """The texts, label indices and line numbers of a file of `text;label` lines (UTF-8; blank lines skipped).

    The label is what follows the last `;`, so a text may hold `;` itself.
    """
    if not path.is_file():
        raise UsageError(f"{path}: file not found; expected `text;label` lines")
    index = {name: i for i, name in enumerate(classes)}
    texts: list[str] = []
    labels: list[int] = []
    lines: list[int] = []
    try:
        with open(path, "rb") as f:
            for number, raw in enumerate(f, start=1):
                try:
                    line = raw.decode("utf-8-sig" if number == 1 else "utf-8").strip()
                except UnicodeDecodeError as e:
                    raise UsageError(f"{path}, line {number}: not UTF-8 text ({e.reason} at byte {e.start})") from None
                if not line:
                    continue
                text, separator, label = line.rpartition(";")
                where = f"{path}, line {number}"
                if not separator:
                    raise UsageError(f"{where}: no ';' in the line; expected `text;label`, got {_clip(line)!r}")
                text, label = text.strip(), label.strip()
                if not text:
                    raise UsageError(f"{where}: the text before ';' is empty")
                if label not in index:
                    raise UsageError(
                        f"{where}: unknown label {label!r}{did_you_mean(label, classes)}; "
                        f"expected one of: {', '.join(classes)}"
                    )
                texts.append(text)
                labels.append(index[label])
                lines.append(number)
    except OSError as e:
        raise UsageError(f"cannot read {path}: {e.strerror or e}") from None
    if not texts:
        raise UsageError(f"{path}: no `text;label` lines in the file")
    return texts, np.array(labels, dtype=np.int64), lines


def _clip(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def read_split(path: Path, classes: Sequence[str], tokenizer: Tokenizer, lowercase: bool, max_length: int | None = None) -> TextSplit:
    texts, labels, lines = read_labelled_lines(path, classes)
    tokens = [tokenize(text.lower() if lowercase else text, tokenizer)[:max_length] for text in texts]
    for text, line, found in zip(texts, lines, tokens):
        if not found:
            raise UsageError(f"{path}, line {line}: the {tokenizer} tokenizer finds no token in {_clip(text)!r}")
    return TextSplit(texts, tokens, labels)


@DATASETS.register(injected=SPLIT_INPUTS)
def emotion(
    *,
    root: str | None = None,
    labels: Annotated[list[str], Field(min_length=2)] = list(EMOTION_LABELS),  # noqa: B006
    tokenizer: Tokenizer = "whitespace",
    lowercase: bool = True,
    min_freq: Annotated[int, Field(ge=1)] = 1,
    max_vocab: Annotated[int, Field(ge=1)] | None = None,
    max_length: Annotated[int, Field(ge=1)] | None = None,
    test_only: bool = False,
) -> TextDataset:
    """The emotion dataset (English tweets, six labels): `train.txt`, `val.txt`, `test.txt` of `text;label` lines.

    Read from `root`, default $TRAINLAB_DATA/emotion; any folder of such files works, with its own
    `labels` (in label-index order). Without `val.txt`, data.val_size of train.txt is held out.
    The vocabulary keeps the training split's words seen `min_freq` times or more, at most the
    `max_vocab` most frequent. `max_length` keeps the first tokens of each longer text.
    """
    folder = Path(root).expanduser() if root else data_root() / "emotion"
    if not folder.is_dir():
        raise UsageError(
            f"emotion data folder not found: {folder}\n"
            f"put train.txt, val.txt and test.txt (`text;label` lines) there, or set {DATA_ENV} or data.root"
        )
    if len(set(labels)) != len(labels):
        raise UsageError(f"data.labels: each label once, got {labels}")

    def read(name: str) -> TextSplit:
        return read_split(folder / f"{name}.txt", labels, tokenizer, lowercase, max_length)

    val = read("val") if not test_only and (folder / "val.txt").exists() else None
    return TextDataset(None if test_only else read("train"), val, read("test"), list(labels), f"text files {folder}", tokenizer, lowercase,
                       max_length, min_freq, max_vocab)  # fmt: skip


class TextLoader:
    """Batches of token ids (B, T), padded with 0 (<pad>) to the batch's longest text, and labels (B,).

    Training batches (`shuffle`) are drawn from (seed, epoch) alone, so a resumed run replays them;
    evaluation batches go through the texts sorted by length, and `order[i]` is the text that came i-th.
    """

    def __init__(self, ids: torch.Tensor, lengths: torch.Tensor, labels: torch.Tensor, batch_size: int, *,
                 shuffle: bool = False, seed: int = 0, pool_batches: int = POOL_BATCHES,
                 texts: Sequence[str] | None = None):  # fmt: skip
        self.ids, self.lengths, self.labels = ids, lengths, labels  # (N, longest), (N,), (N,)
        self.batch_size, self.shuffle, self.seed, self.epoch = batch_size, shuffle, seed, 0
        self.pool_batches = pool_batches  # 1: batches of random lengths
        self.order = None if shuffle else torch.sort(lengths.cpu(), stable=True).indices
        if texts is not None and len(texts) != len(labels):
            raise ValueError(f"TextLoader got {len(texts)} texts for {len(labels)} labels")
        self.texts = texts  # (N,) the original texts, in the split's order, for `examples`

    def examples(self, indices: Sequence[int]) -> list[str]:
        """The original texts at split positions `indices`."""
        if self.texts is None:
            raise ValueError("this TextLoader was built without its texts: pass TextLoader(..., texts=) to show examples")
        return [self.texts[int(i)] for i in indices]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return -(-len(self.labels) // self.batch_size)

    def batches(self) -> list[torch.Tensor]:
        """The index of every batch, in the order they come."""
        if not self.shuffle:
            return list(self.order.split(self.batch_size))
        generator = seeded_generator(self.seed, self.epoch)
        lengths = self.lengths.cpu()
        batches = []
        for pool in torch.randperm(len(lengths), generator=generator).split(self.batch_size * self.pool_batches):
            pool = pool[torch.sort(lengths[pool], stable=True).indices]
            batches += list(pool.split(self.batch_size))
        return [batches[i] for i in torch.randperm(len(batches), generator=generator)]

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        lengths = self.lengths.cpu()  # the batch's longest text read on the host: no wait for a GPU at every batch
        for index in self.batches():
            longest = int(lengths[index].max())
            index = index.to(self.ids.device)
            yield self.ids[index, :longest], self.labels[index]


@dataclass
class TextData(PreparedData):
    """What a text run trains on: loaders of token ids, the vocabulary, and figures about the data."""

    train: TextLoader
    val: TextLoader
    test: TextLoader
    preprocess: TextPreprocess
    corpus: list[list[str]]  # the training split's tokens, for word2vec
    source: str
    sizes: dict[str, int]
    stats: dict  # class counts, unknown-token shares and text lengths per split (data.json)

    @property
    def vocabulary(self) -> Vocabulary:
        return self.preprocess.vocabulary

    def training_inputs(self) -> dict:
        return {"corpus": self.corpus}

    def example(self) -> torch.Tensor:
        """The token ids (T,) of a training text of the median length: the model's summary shows a typical input."""
        index = int(torch.argsort(self.train.lengths, stable=True)[(len(self.train.lengths) - 1) // 2])
        return self.train.ids[index, : int(self.train.lengths[index])]

    def preview(self, count: int) -> list[tuple[str, list[str]]]:
        """(label, tokens) of the first `count` texts of the first training batches, as the model gets them (<unk> shown)."""
        samples = []
        for ids, labels in self.train:
            for row, label in zip(ids.tolist(), labels.tolist()):
                samples.append((self.classes[label], self.vocabulary.decode(i for i in row if i != Vocabulary.pad_index)))
            if len(samples) >= count:
                return samples[:count]
        return samples

    def write_records(self, folder: Path, model: nn.Module) -> list[str]:
        """data.json: class counts, unknown-token shares, text lengths and the coverage of pretrained vectors."""
        coverage = getattr(model, "vectors_coverage", None)
        record = {"source": self.source, "classes": self.classes, **self.stats, "vectors": coverage and coverage.to_dict()}
        write_json(folder / "data.json", record)
        return describe(self) + ([f"vectors: {coverage}"] if coverage else [])

    def show(self, count: int, output: Path) -> list[str]:
        return [f"{label:<10} {' '.join(tokens)}" for label, tokens in self.preview(count)]


def prepare_text_data(
    dataset: TextDataset, *, batch_size: int, eval_batch_size: int, val_size: float, split_seed: int, seed: int,
    device: torch.device,
) -> TextData:  # fmt: skip
    train, val = dataset.train, dataset.val
    if val is None:
        train_idx, val_idx = split_indices(train.labels, val_size, split_seed)
        train, val = train.subset(train_idx), train.subset(val_idx)
    splits = {"train": train, "val": val, "test": dataset.test}
    vocabulary = Vocabulary.build(train.tokens, min_freq=dataset.min_freq, max_size=dataset.max_vocab)

    def loader(split: TextSplit, size: int, shuffle: bool) -> TextLoader:
        return text_loader(split, vocabulary, size, device=device, shuffle=shuffle, seed=seed)

    loaders = {"train": loader(train, batch_size, True), "val": loader(val, eval_batch_size, False),
               "test": loader(dataset.test, eval_batch_size, False)}  # fmt: skip
    stats = {
        "vocabulary_size": len(vocabulary), "min_freq": dataset.min_freq, "max_vocab": dataset.max_vocab,
        "unknown_share": {name: round(vocabulary.unknown_share(s.tokens), 5) for name, s in splits.items()},
        "class_counts": {name: _class_counts(s.labels, dataset.classes) for name, s in splits.items()},
        "tokens_per_text": {name: _length_stats(s.tokens) for name, s in splits.items()},
    }  # fmt: skip
    lengths = sorted(len(tokens) for tokens in train.tokens)
    preprocess = TextPreprocess(dataset.classes, vocabulary, tokenizer=dataset.tokenizer, lowercase=dataset.lowercase,
                                max_length=dataset.max_length, typical_length=lengths[(len(lengths) - 1) // 2])  # fmt: skip
    return TextData(
        **loaders, preprocess=preprocess, corpus=train.tokens, source=dataset.source,
        sizes={name: len(s) for name, s in splits.items()}, stats=stats,
    )  # fmt: skip


def text_loader(split: TextSplit, vocabulary: Vocabulary, batch_size: int, *, device: torch.device, shuffle: bool = False,
                seed: int = 0) -> TextLoader:  # fmt: skip
    lengths = torch.tensor([len(t) for t in split.tokens], dtype=torch.int64)
    ids = torch.zeros(len(split), int(lengths.max()), dtype=torch.int64)  # (N, longest), 0 = <pad>
    for row, tokens in enumerate(split.tokens):
        ids[row, : len(tokens)] = torch.tensor(vocabulary.encode(tokens))
    labels = torch.from_numpy(split.labels)
    return TextLoader(ids.to(device), lengths.to(device), labels.to(device), batch_size, shuffle=shuffle, seed=seed,
                      texts=split.texts)  # fmt: skip


def text_test_loader(dataset: TextDataset, preprocess: TextPreprocess, batch_size: int, *, device: torch.device) -> TextLoader:
    """The test split in a run's vocabulary (`trainlab eval`)."""
    return text_loader(dataset.test, preprocess.vocabulary, batch_size, device=device)


def _class_counts(labels: np.ndarray, classes: list[str]) -> dict[str, int]:
    counts = np.bincount(labels, minlength=len(classes))
    return {name: int(n) for name, n in zip(classes, counts)}


def _length_stats(tokens: list[list[str]]) -> dict[str, float]:
    lengths = np.array([len(t) for t in tokens])
    return {"mean": round(float(lengths.mean()), 2), "p95": float(np.percentile(lengths, 95)), "max": int(lengths.max())}


def describe(data: TextData) -> list[str]:
    """Lines about the data for the console: vocabulary, unknown tokens, class counts."""
    stats = data.stats
    unknown = ", ".join(f"{name} {share:.2%}" for name, share in stats["unknown_share"].items())
    counts = Counter(stats["class_counts"]["train"])
    classes = ", ".join(f"{name} {n:,}" for name, n in counts.most_common())
    return [
        f"vocabulary: {stats['vocabulary_size']:,} tokens (min_freq {stats['min_freq']}, max_vocab {stats['max_vocab']}); "
        f"unknown tokens: {unknown}",
        f"training texts per class: {classes}",
    ]
