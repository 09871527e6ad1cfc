"""From a raw input (an image file, a text) to the model's input, as the training data was prepared.

Every run folder holds its record, `preprocess.json` (and `vocab.txt` for text), written at the start
of the run and read back by `load_preprocess`: a trained model needs it, not the training data, to
predict. Each kind of input is a `Preprocess` subclass, registered by its `kind`.
"""

from __future__ import annotations

import json
import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, NamedTuple, TextIO

import numpy as np
import torch
from PIL import Image

from trainlab.data.base import IMAGE_EXTENSIONS, SYSTEM_NAMES, warn
from trainlab.errors import DataError, UsageError
from trainlab.text.processing import TOKENIZERS, tokenize
from trainlab.text.vocab import Vocabulary
from trainlab.utils.io import write_json

PREPROCESS_JSON = "preprocess.json"
VOCABULARY_TXT = "vocab.txt"
FORMAT = "trainlab-preprocess/1"
RESIZE = "bilinear"  # the only resize rule the image datasets use


class Segments(NamedTuple):
    """A text as its model reads it: the ids, the token or word piece at each position, the word each position
    belongs to (None for special tokens) and which positions are special ([CLS], [SEP])."""

    ids: list[int]
    pieces: list[str]
    word_ids: list[int | None]
    special: list[bool]


class Preprocess(ABC):
    """The classes, what a model builder is given (`model_inputs`), and the conversion of raw inputs to a batch."""

    kind: ClassVar[str]  # "image", "text": the `kind` of preprocess.json
    unit: ClassVar[str]  # what one example is called in a throughput: "img" for img/s
    kinds: ClassVar[dict[str, type[Preprocess]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        Preprocess.kinds[cls.kind] = cls

    def __init__(self, classes: Sequence[str]):
        self.classes = list(classes)

    @abstractmethod
    def model_inputs(self) -> dict[str, Any]:
        """What a model builder may name among its injected arguments (num_classes, in_channels, vocabulary, ...)."""

    @abstractmethod
    def example(self) -> torch.Tensor:
        """One model input without the batch dimension, for summaries and exports."""

    @abstractmethod
    def encode(self, inputs: Sequence[Any]) -> torch.Tensor:
        """A batch of model inputs from raw ones (image files or PIL images; texts)."""

    @abstractmethod
    def gather(self, arguments: Sequence[str], stdin: TextIO) -> list[tuple[str, Any]]:
        """The raw inputs a command line names (files, folders, texts, `-` for standard input), each with the
        name to show it by."""

    @abstractmethod
    def to_record(self) -> dict[str, Any]:
        """The fields of preprocess.json besides format, kind and classes."""

    @classmethod
    @abstractmethod
    def from_record(cls, record: dict[str, Any], folder: Path) -> Preprocess:
        """The inverse of `to_record`; `folder` holds the record's other files (a vocabulary)."""

    def save(self, folder: Path) -> None:
        write_json(folder / PREPROCESS_JSON, {"format": FORMAT, "kind": self.kind, "classes": self.classes, **self.to_record()})


def load_preprocess(folder: Path) -> Preprocess:
    """The preprocessing record of a run folder; a missing or unreadable one is an error naming the file."""
    path = Path(folder) / PREPROCESS_JSON
    if not path.is_file():
        raise UsageError(
            f"{path} not found: {folder} has no preprocessing record (runs of trainlab before predict existed have none; "
            "train it again, or test it with trainlab eval)"
        )
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise DataError(f"{path}: not a readable preprocessing record ({e})") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise DataError(f"{path}: not a trainlab preprocessing record (expected format {FORMAT})")
    kind = record.get("kind")
    if kind not in Preprocess.kinds:
        raise DataError(f"{path}: unknown kind {kind!r}; this trainlab reads {', '.join(sorted(Preprocess.kinds))}")
    try:
        return Preprocess.kinds[kind].from_record(record, Path(folder))
    except (KeyError, TypeError, ValueError) as e:
        raise DataError(f"{path}: a field is missing or wrong ({type(e).__name__}: {e})") from None


# ---------------------------------------------------------------- images


def convert_image(image: Image.Image, mode: str | None = None, size: tuple[int, int] | None = None) -> np.ndarray:
    """(H, W) uint8 for mode "L", (H, W, 3) for "RGB"; mode None keeps a greyscale image grey and makes any other RGB.
    `size` (width, height) resizes bilinearly when the image has another size."""
    mode = mode or ("L" if image.mode == "L" else "RGB")
    if image.mode != mode:
        image = image.convert(mode)
    if size is not None and image.size != size:
        image = image.resize(size, Image.Resampling.BILINEAR)
    return np.asarray(image)


class ImagePreprocess(Preprocess):
    """Images converted to the training images' colour mode and size, scaled to [0, 1], then normalised
    per channel with the training split's mean and std (0..255 scale)."""

    kind, unit = "image", "img"

    def __init__(self, classes: Sequence[str], shape: Sequence[int], mean: Sequence[float], std: Sequence[float]):
        super().__init__(classes)
        self.shape = tuple(int(n) for n in shape)  # (C, H, W)
        if len(self.shape) != 3 or self.shape[0] not in (1, 3) or len(mean) != self.shape[0] or len(std) != self.shape[0]:
            raise ValueError(f"shape {list(shape)} with {len(mean)} means and {len(std)} stds: expected (1|3, H, W), one each")
        self.mean, self.std = np.asarray(mean, dtype=np.float64), np.asarray(std, dtype=np.float64)
        self._scale: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}

    @property
    def mode(self) -> str:
        return "L" if self.shape[0] == 1 else "RGB"

    def model_inputs(self) -> dict[str, Any]:
        channels, height, width = self.shape
        return {"in_channels": channels, "num_classes": len(self.classes), "image_size": (height, width)}

    def example(self) -> torch.Tensor:
        return torch.zeros(self.shape)  # the training images' mean, normalised

    def normalise(self, images: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) floats in [0, 1] -> (x - mean) / std, the statistics on 0..255 as the loader applies them."""
        if images.device not in self._scale:
            view = (1, -1, 1, 1)
            self._scale[images.device] = (
                torch.tensor(self.mean / 255, dtype=torch.float32, device=images.device).view(view),
                torch.tensor(255 / self.std, dtype=torch.float32, device=images.device).view(view),
            )
        mean, inv_std = self._scale[images.device]
        return (images - mean) * inv_std

    def read(self, path: str | Path) -> np.ndarray:
        """One image file as (H, W, C) uint8, converted as the training images were; not an image: a UsageError."""
        try:
            with Image.open(path) as image:
                return self.convert(image)
        except FileNotFoundError:
            raise UsageError(f"{path}: no such file") from None
        except IsADirectoryError:
            raise UsageError(f"{path} is a folder") from None
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
            raise UsageError(f"{path} is not an image this model can read ({e})") from None

    def convert(self, image: Image.Image) -> np.ndarray:
        _, height, width = self.shape
        return convert_image(image, self.mode, (width, height)).reshape(height, width, -1)

    def encode(self, inputs: Sequence[str | Path | Image.Image | np.ndarray] | np.ndarray) -> torch.Tensor:
        """(N, C, H, W) float32, normalised, from image files, PIL images or converted (H, W, C) uint8 arrays, or
        from one (N, H, W, C) uint8 array of converted images."""
        if isinstance(inputs, np.ndarray) and inputs.ndim == 4:
            batch = inputs if inputs.flags.writeable else inputs.copy()  # torch wants memory it may write
        else:
            arrays = [x if isinstance(x, np.ndarray) else self.convert(x) if isinstance(x, Image.Image) else self.read(x)
                      for x in inputs]  # fmt: skip
            if not arrays:
                return torch.empty(0, *self.shape)
            batch = np.stack(arrays)
        images = torch.from_numpy(batch).permute(0, 3, 1, 2).float().div_(255)  # (N, H, W, C) -> (N, C, H, W)
        return self.normalise(images).contiguous()

    def gather(self, arguments: Sequence[str], stdin: TextIO) -> list[tuple[str, Any]]:
        """Image files, and the image files in folders (and their subfolders, sorted; hidden and system files
        skipped); files of other types in a folder are skipped with a warning."""
        found: list[tuple[str, Any]] = []
        for argument in arguments:
            path = Path(argument)
            if argument == "-":
                raise UsageError("a model of images reads image files or folders, not standard input ('-')")
            if path.is_dir():
                images, others = _image_files(path)
                if others:
                    warn(f"{path}: {len(others)} {'file' if len(others) == 1 else 'files'} of another type left out ({', '.join(others[:3])}"
                         f"{', ...' if len(others) > 3 else ''})")  # fmt: skip
                if not images:
                    raise UsageError(f"{path}: no image files in the folder ({' '.join(sorted(IMAGE_EXTENSIONS))})")
                found += [(str(image), image) for image in images]
            elif path.is_file():
                found.append((argument, path))
            else:
                raise UsageError(f"{argument}: no such file or folder")
        return found

    def to_record(self) -> dict[str, Any]:
        return {"shape": list(self.shape), "mode": self.mode, "resize": RESIZE, "scale": "0..255 -> 0..1",
                "mean": self.mean.tolist(), "std": self.std.tolist()}  # fmt: skip

    @classmethod
    def from_record(cls, record: dict[str, Any], folder: Path) -> ImagePreprocess:
        if record.get("resize", RESIZE) != RESIZE:
            raise ValueError(f"resize {record['resize']!r}: this trainlab resizes {RESIZE}")
        return cls(record["classes"], record["shape"], record["mean"], record["std"])


def _image_files(folder: Path) -> tuple[list[Path], list[str]]:
    """The image files under `folder` by extension, sorted, and the names of the other files."""
    images, others = [], []
    for root, folders, files in os.walk(folder):
        folders[:] = sorted(name for name in folders if _visible(name))
        for name in filter(_visible, sorted(files)):
            if Path(name).suffix.lower() in IMAGE_EXTENSIONS:
                images.append(Path(root) / name)
            else:
                others.append(name)
    return images, others


def _visible(name: str) -> bool:
    return not name.startswith(".") and name.lower() not in SYSTEM_NAMES


# ---------------------------------------------------------------- texts


class TextPreprocess(Preprocess):
    """Texts lower-cased (or not), tokenized, cut to `max_length` tokens, then mapped to the vocabulary's ids."""

    kind, unit = "text", "texts"

    def __init__(self, classes: Sequence[str], vocabulary: Vocabulary, *, tokenizer: str, lowercase: bool,
                 max_length: int | None = None, typical_length: int = 16):  # fmt: skip
        super().__init__(classes)
        if tokenizer not in TOKENIZERS:
            raise ValueError(f"tokenizer {tokenizer!r}: expected one of {', '.join(TOKENIZERS)}")
        self.vocabulary, self.tokenizer, self.lowercase = vocabulary, tokenizer, bool(lowercase)
        self.max_length, self.typical_length = max_length, max(1, int(typical_length))
        self.pad_id = Vocabulary.pad_index

    def model_inputs(self) -> dict[str, Any]:
        return {"vocabulary": self.vocabulary, "num_classes": len(self.classes), "corpus": None}

    def example(self) -> torch.Tensor:
        """Token ids (T,) of the training texts' median length (their words' ids, not a real text)."""
        return torch.arange(self.typical_length) % max(len(self.vocabulary) - 2, 1) + 2

    def tokens(self, text: str) -> list[str]:
        tokens = tokenize(text.lower() if self.lowercase else text, self.tokenizer)
        return tokens[: self.max_length] if self.max_length is not None else tokens

    def encode(self, inputs: Sequence[str]) -> torch.Tensor:
        """(N, T) int64 token ids, padded with 0 (<pad>) to the longest; a text without a token is a UsageError."""
        rows = []
        for number, text in enumerate(inputs, start=1):
            tokens = self.tokens(text)
            if not tokens:
                shown = text if len(text) <= 60 else text[:59] + "…"
                raise UsageError(f"text {number} ({shown!r}): the {self.tokenizer} tokenizer finds no token in it")
            rows.append(self.vocabulary.encode(tokens))
        ids = torch.zeros(len(rows), max((len(r) for r in rows), default=0), dtype=torch.int64)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = torch.tensor(row)
        return ids

    def gather(self, arguments: Sequence[str], stdin: TextIO) -> list[tuple[str, Any]]:
        return gather_texts(arguments, stdin)

    def segment(self, text: str) -> Segments:
        """One position per token: the token as written (also one the vocabulary maps to <unk>), its own word."""
        tokens = self.tokens(text)
        return Segments(self.vocabulary.encode(tokens), tokens, list(range(len(tokens))), [False] * len(tokens))

    def save(self, folder: Path) -> None:
        self.vocabulary.save(folder / VOCABULARY_TXT)
        super().save(folder)

    def to_record(self) -> dict[str, Any]:
        return {"tokenizer": self.tokenizer, "lowercase": self.lowercase, "vocabulary": VOCABULARY_TXT,
                "vocabulary_size": len(self.vocabulary), "max_length": self.max_length,
                "typical_length": self.typical_length}  # fmt: skip

    @classmethod
    def from_record(cls, record: dict[str, Any], folder: Path) -> TextPreprocess:
        vocabulary = Vocabulary.load(folder / record["vocabulary"])
        if len(vocabulary) != record.get("vocabulary_size", len(vocabulary)):
            raise ValueError(f"{record['vocabulary']} holds {len(vocabulary)} tokens, the record says {record['vocabulary_size']}")
        return cls(record["classes"], vocabulary, tokenizer=record["tokenizer"], lowercase=record["lowercase"],
                   max_length=record.get("max_length"), typical_length=record.get("typical_length", 16))  # fmt: skip


def gather_texts(arguments: Sequence[str], stdin: TextIO) -> list[tuple[str, str]]:
    """Each argument is a text; `-` reads one text per line of standard input (blank lines skipped)."""
    texts: list[str] = []
    for argument in arguments:
        texts += [line.strip() for line in stdin if line.strip()] if argument == "-" else [argument]
    return [(text, text) for text in texts]
