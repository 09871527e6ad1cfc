"""The workshop's text processing: tokenizers, lower-casing, Porter stemming, stopwords, bag-of-words,
TF-IDF and cosine similarity. Nothing here needs a download: NLTK's Treebank tokenizer and Porter
stemmer are pure code, and the stopword list is scikit-learn's, shipped with it.

    >>> tokenize("It's not straight-forward to perform so-called \\"tokenization.\\"")
    ["It's", 'not', 'straight-forward', 'to', 'perform', 'so-called', '"', 'tokenization', '.', '"']
    >>> tokenize("It's not straight-forward to perform so-called \\"tokenization.\\"", "treebank")
    ['It', "'s", 'not', 'straight-forward', 'to', 'perform', 'so-called', '``', 'tokenization', '.', "''"]
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, CountVectorizer, TfidfVectorizer
from sklearn.metrics.pairwise import cosine_similarity

Tokenizer = Literal["whitespace", "treebank"]
TOKENIZERS: tuple[str, ...] = ("whitespace", "treebank")

# Named stopword lists. "english" is scikit-learn's (the Glasgow IR group's 318 words); it holds
# "not" and "no", which is why the emotion classifier keeps every word.
STOPWORDS: dict[str, frozenset[str]] = {"english": frozenset(ENGLISH_STOP_WORDS)}

# Whitespace-and-punctuation: a word is letters/digits, with inner hyphens or apostrophes kept
# (straight-forward, so-called, it's); every other non-space character is a token of its own.
_WORD_OR_PUNCTUATION = re.compile(r"\w+(?:['\u2019-]\w+)*|[^\w\s]")
_HAS_WORD_CHARACTER = re.compile(r"\w")


@functools.cache
def _treebank():
    from nltk.tokenize import TreebankWordTokenizer

    return TreebankWordTokenizer()


@functools.cache
def _porter():
    from nltk.stem import PorterStemmer

    return PorterStemmer()


def tokenize(text: str, tokenizer: Tokenizer = "whitespace") -> list[str]:
    """Split `text` into tokens: "whitespace" (words with inner - and ' kept, punctuation apart) or
    "treebank" (the Penn Treebank rules: clitics split, It's -> It 's; quotes become `` and '')."""
    if tokenizer == "whitespace":
        return _WORD_OR_PUNCTUATION.findall(text)
    if tokenizer == "treebank":
        return _treebank().tokenize(text)
    raise ValueError(f"unknown tokenizer '{tokenizer}'; expected one of: {', '.join(TOKENIZERS)}")


@functools.lru_cache(maxsize=1 << 16)
def stem(word: str) -> str:
    """Porter's stemmer, as NLTK implements it: ladies -> ladi, referring -> refer."""
    return _porter().stem(word)


def is_punctuation(token: str) -> bool:
    return _HAS_WORD_CHARACTER.search(token) is None


def stopword_list(name: str | None) -> frozenset[str]:
    if name is None:
        return frozenset()
    if name not in STOPWORDS:
        raise ValueError(f"unknown stopword list '{name}'; expected one of: {', '.join(STOPWORDS)}")
    return STOPWORDS[name]


def analyze(
    text: str, *, tokenizer: Tokenizer = "whitespace", lowercase: bool = True, stemming: bool = False,
    stopwords: str | None = None, punctuation: bool = True,
) -> list[str]:  # fmt: skip
    """Tokenize, then lower-case, drop punctuation tokens (unless `punctuation`), drop the named
    stopwords (compared in lower case), and stem, in that order."""
    drop = stopword_list(stopwords)
    tokens = tokenize(text, tokenizer)
    if lowercase:
        tokens = [t.lower() for t in tokens]
    if not punctuation:
        tokens = [t for t in tokens if not is_punctuation(t)]
    if drop:
        tokens = [t for t in tokens if t.lower() not in drop]
    if stemming:
        tokens = [stem(t) for t in tokens]
    return tokens


@dataclass
class TermTable:
    """A document-term matrix: one row per document, one column per term (sorted)."""

    documents: list[str]  # row labels
    terms: list[str]
    values: np.ndarray  # (documents, terms): counts, or TF-IDF weights

    def similarity(self) -> np.ndarray:
        """(documents, documents) cosine similarity of the rows; an empty row is 0 to everything."""
        return cosine_similarity(self.values)


def term_table(
    documents: Sequence[str], labels: Sequence[str] | None = None, *, tfidf: bool = False,
    tokenizer: Tokenizer = "whitespace", lowercase: bool = True, stemming: bool = False, stopwords: str | None = None,
) -> TermTable:  # fmt: skip
    """Bag-of-words counts (scikit-learn's CountVectorizer) or TF-IDF weights (TfidfVectorizer: smoothed
    idf = ln((1 + n) / (1 + df)) + 1, rows scaled to unit length) over punctuation-free tokens."""
    analyzer = functools.partial(
        analyze, tokenizer=tokenizer, lowercase=lowercase, stemming=stemming, stopwords=stopwords, punctuation=False
    )
    vectorizer = (TfidfVectorizer if tfidf else CountVectorizer)(analyzer=analyzer)
    try:
        matrix = vectorizer.fit_transform(documents)
    except ValueError as e:  # "empty vocabulary"
        raise ValueError(f"no terms left in the documents after tokenizing and filtering ({e})") from None
    labels = list(labels) if labels is not None else [f"doc{i + 1}" for i in range(len(documents))]
    return TermTable(labels, list(vectorizer.get_feature_names_out()), matrix.toarray())


def format_table(rows: Sequence[str], columns: Sequence[str], values: np.ndarray, fmt: str = "{:g}") -> str:
    """A plain text table: a header of column names, then one line per row label, cells right-aligned."""
    cells = [[fmt.format(v) for v in row] for row in values]
    label_width = max((len(r) for r in rows), default=0)
    widths = [max(len(c), *(len(row[j]) for row in cells)) for j, c in enumerate(columns)]
    lines = ["  ".join([" " * label_width, *(c.rjust(w) for c, w in zip(columns, widths))])]
    lines += ["  ".join([r.ljust(label_width), *(v.rjust(w) for v, w in zip(row, widths))]) for r, row in zip(rows, cells)]
    return "\n".join(line.rstrip() for line in lines)
