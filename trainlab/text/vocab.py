"""The vocabulary: token <-> index, built from the training split only."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

from trainlab.errors import DataError
from trainlab.utils.io import write_text

PAD, UNK = "<pad>", "<unk>"


class Vocabulary:
    """Index 0 is `<pad>`, 1 is `<unk>`, then the words, most frequent first (ties alphabetical)."""

    pad_index, unk_index = 0, 1

    def __init__(self, words: Sequence[str]):
        self.itos: list[str] = [PAD, UNK, *words]
        self.stoi: dict[str, int] = {word: i for i, word in enumerate(self.itos)}
        if len(self.stoi) != len(self.itos):
            raise ValueError("a vocabulary's words must be unique and must not be <pad> or <unk>")

    @classmethod
    def build(cls, texts: Iterable[Sequence[str]], *, min_freq: int = 1, max_size: int | None = None) -> Vocabulary:
        """Words seen at least `min_freq` times in `texts`, at most the `max_size` most frequent (plus <pad>, <unk>)."""
        counts = Counter(token for tokens in texts for token in tokens)
        counts.pop(PAD, None)
        counts.pop(UNK, None)
        ranked = sorted((w for w, n in counts.items() if n >= min_freq), key=lambda w: (-counts[w], w))
        return cls(ranked[:max_size] if max_size is not None else ranked)

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, word: str) -> bool:
        return word in self.stoi

    @property
    def words(self) -> list[str]:
        """The words, without <pad> and <unk>."""
        return self.itos[2:]

    def encode(self, tokens: Iterable[str]) -> list[int]:
        return [self.stoi.get(token, self.unk_index) for token in tokens]

    def decode(self, indices: Iterable[int]) -> list[str]:
        return [self.itos[i] for i in indices]

    def unknown_share(self, texts: Iterable[Sequence[str]]) -> float:
        """The share of tokens in `texts` that map to <unk> (0 for no tokens)."""
        total = unknown = 0
        for tokens in texts:
            total += len(tokens)
            unknown += sum(token not in self.stoi for token in tokens)
        return unknown / total if total else 0.0

    def save(self, path: Path) -> None:
        """One token per line, in index order."""
        write_text(path, "\n".join(self.itos) + "\n")


    @classmethod
    def load(cls, path: Path) -> Vocabulary:
        """What `save` wrote: <pad>, <unk>, then one word per line; a file that is not one is a DataError naming it."""
        try:
            lines = Path(path).read_text(encoding="utf-8").split("\n")
        except FileNotFoundError:
            raise DataError(f"{path}: vocabulary file not found") from None
        except (OSError, UnicodeDecodeError) as e:
            raise DataError(f"{path}: cannot read the vocabulary ({e})") from None
        if lines and lines[-1] == "":
            lines.pop()
        if lines[:2] != [PAD, UNK]:
            raise DataError(f"{path}: not a trainlab vocabulary (expected {PAD} and {UNK} on lines 1 and 2)")
        seen: dict[str, int] = {}
        for number, word in enumerate(lines, start=1):
            if not word or word in seen:
                what = "an empty line" if not word else f"{word!r} again (first on line {seen[word]})"
                raise DataError(f"{path}, line {number}: {what}; a vocabulary has one distinct token per line")
            seen[word] = number
        return cls(lines[2:])
