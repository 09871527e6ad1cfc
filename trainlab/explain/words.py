"""From a model's tokens to words: word pieces merged, special tokens dropped, punctuation and stopwords
marked, scores made comparable between sentences.

A sentence's words are built in three steps (`sentence_words` does all three):

1. `merge_pieces`: the pieces of one word become one `Word` whose score is the SUM of its pieces'
   scores (the attention mass or the attribution of the whole word); special tokens are dropped.
2. `mark_kept`: punctuation-only words, and stopwords when asked, get `kept=False`. They stay in the
   sentence so that it reads whole on the page, but no ranking counts them.
3. `relative_scores`: each sentence is rescaled so that its kept words average 1.0, a sentence's
   average share of the score; negative scores (signed attributions) count as 0.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

from trainlab.text.processing import is_punctuation, stopword_list

# Pieces that are never a word of the text, recognised by name when the caller gives neither `special`
# nor `word_ids`. "<unk>" and "[UNK]" are not among them: they stand at the position of a real word.
SPECIAL_TOKENS = frozenset({"[CLS]", "[SEP]", "[PAD]", "[MASK]", "<pad>", "<s>", "</s>", "<cls>", "<sep>", "<mask>"})
_CONTINUATION = "##"  # BERT's WordPiece: "##bly" continues the word before it
_WORD_START_MARKS = ("\u0120", "\u2581")  # byte-level BPE's "Ġ" and SentencePiece's "▁" start a word

# scikit-learn's English list (318 words, shipped in its wheel): NLTK's list needs a corpus download,
# which this project does not assume. Added: the fragments that tokenizers leave of English contractions
# (BERT splits "don't" into don ' t, the Treebank tokenizer into do n't), which NLTK's list also holds.
STOPWORDS = stopword_list("english")
_CONTRACTION_FRAGMENTS = frozenset(
    "s t m d ll re ve n't 's 'm 'd 'll 're 've ain aren ca couldn didn doesn don hadn hasn haven isn ma mightn "
    "mustn needn shan sha shouldn wasn weren wo won wouldn".split()
)
_CLITICS = frozenset({"s", "t", "m", "d", "ll", "re", "ve"})


@dataclass(frozen=True)
class Word:
    text: str
    score: float  # the sum of its pieces' scores; after `relative_scores`, relative to the sentence's mean
    positions: tuple[int, ...]  # indices of its pieces in the model's token sequence
    kept: bool = True  # False for punctuation and (when filtered) stopwords: shown, never ranked


@dataclass(frozen=True)
class ExplainedText:
    """One test sentence with its words, relative scores, true label and prediction."""

    index: int  # position in the test split
    text: str  # the sentence as the dataset holds it
    words: list[Word]  # every word, `kept` or not, in order
    label: int
    predicted: int
    probability: float  # the model's probability of its predicted class

    @property
    def correct(self) -> bool:
        return self.label == self.predicted


def merge_pieces(
    pieces: Sequence[str], scores: Sequence[float], *, word_ids: Sequence[int | None] | None = None,
    special: Sequence[bool] | None = None,
) -> list[Word]:  # fmt: skip
    """The words of a token sequence, each scored with the sum of its pieces' scores.

    A position is dropped when `special` says so; without `special`, when its `word_ids` entry is None
    (a Hugging Face fast tokenizer's `encoding.word_ids()`); without either, when its piece is one of
    SPECIAL_TOKENS. With `word_ids`, neighbouring pieces with the same word id form one word; without it,
    a piece starting with "##" continues the word before it (BERT's WordPiece). A word's text is its
    pieces joined, with the "##" of continuations and a leading "Ġ" or "▁" (BPE, SentencePiece) removed.

        >>> [w.text for w in merge_pieces(["[CLS]", "un", "##bel", "##ie", "##va", "##bly", "!", "[SEP]"], [0.0] * 8)]
        ['unbelievably', '!']
    """
    n = len(pieces)
    for name, values in (("scores", scores), ("word_ids", word_ids), ("special", special)):
        if values is not None and len(values) != n:
            raise ValueError(f"{len(pieces)} pieces but {len(values)} {name}")
    words: list[tuple[list[str], float, list[int]]] = []
    open_word = False  # whether the previous position is a kept piece, which the next may continue
    previous_id: int | None = None
    for i, piece in enumerate(pieces):
        score = float(scores[i])
        if not math.isfinite(score):
            raise ValueError(f"score {score} at position {i} (piece {piece!r}): scores must be finite")
        if special is not None:
            dropped = bool(special[i])
        elif word_ids is not None:
            dropped = word_ids[i] is None
        else:
            dropped = piece in SPECIAL_TOKENS
        if dropped:
            open_word = False
            continue
        if word_ids is not None:
            word_id = word_ids[i]
            continues = open_word and word_id is not None and word_id == previous_id
            previous_id = word_id
        else:
            continues = open_word and piece.startswith(_CONTINUATION) and len(piece) > len(_CONTINUATION)
        if continues:
            texts, total, positions = words[-1]
            words[-1] = (texts + [piece], total + score, positions + [i])
        else:
            words.append(([piece], score, [i]))
        open_word = True
    return [Word(_join(texts), total, tuple(positions)) for texts, total, positions in words]


def _join(pieces: list[str]) -> str:
    first, *rest = pieces
    for mark in _WORD_START_MARKS:
        if first.startswith(mark) and len(first) > len(mark):
            first = first[len(mark) :]
    rest = [p[len(_CONTINUATION) :] if p.startswith(_CONTINUATION) and len(p) > len(_CONTINUATION) else p for p in rest]
    return first + "".join(rest)


def keep_word(text: str, *, stopwords: bool) -> bool:
    """Whether a word counts in the rankings.

    False for a word with no letter or digit (Unicode punctuation and symbols: "!", "...", "—", "$",
    emoji), and, when `stopwords` is False, for an English stopword compared in lower case: STOPWORDS
    (scikit-learn's list, which holds "i", "not" and "no" but not "feel"), the contraction fragments
    tokenizers leave ("s", "t", "don", "n't", "'s") and contractions of a stopword ("it's", "don't",
    "can't"). A word with letters and an apostrophe that is no such contraction ("john's") is kept.
    """
    if not text or is_punctuation(text):
        return False
    return stopwords or not is_stopword(text)


def is_stopword(text: str) -> bool:
    word = text.lower().replace("\u2019", "'")
    if word in STOPWORDS or word in _CONTRACTION_FRAGMENTS:
        return True
    head, apostrophe, tail = word.partition("'")
    if not apostrophe or tail not in _CLITICS:
        return False
    if tail == "t" and head.endswith("n"):
        head = head[:-1]  # don't -> do, can't -> ca, won't -> wo
    return head in STOPWORDS or head in _CONTRACTION_FRAGMENTS


def mark_kept(words: Sequence[Word], *, stopwords: bool) -> list[Word]:
    """`words` with `kept` set by `keep_word`."""
    return [dataclasses.replace(w, kept=keep_word(w.text, stopwords=stopwords)) for w in words]


def relative_scores(words: Sequence[Word]) -> list[Word]:
    """The words of one sentence rescaled so that the kept words' scores average 1.0.

    relative(w) = max(score(w), 0) / mean over kept words v of max(score(v), 0)

    1.0 is the sentence's average share (a word that carries half of a 10-word sentence scores 5). Negative
    scores (signed attributions: evidence against the class) are clamped to 0 first. Words that are not
    kept are rescaled by the same factor (shown, never ranked). When the kept words all score 0, or no
    word is kept, every word gets 0.
    """
    clamped = [max(w.score, 0.0) for w in words]
    kept = [s for s, w in zip(clamped, words) if w.kept]
    mean = sum(kept) / len(kept) if kept else 0.0
    factor = 1.0 / mean if mean > 0 else 0.0
    return [dataclasses.replace(w, score=s * factor) for s, w in zip(clamped, words)]


def sentence_words(
    pieces: Sequence[str], scores: Sequence[float], *, word_ids: Sequence[int | None] | None = None,
    special: Sequence[bool] | None = None, stopwords: bool = False,
) -> list[Word]:  # fmt: skip
    """merge_pieces, mark_kept and relative_scores in one call: the words an ExplainedText holds."""
    words = merge_pieces(pieces, scores, word_ids=word_ids, special=special)
    return relative_scores(mark_kept(words, stopwords=stopwords))
