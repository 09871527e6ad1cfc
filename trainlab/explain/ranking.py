"""The tokens each class's correct predictions rest on, ranked so that frequent words do not win by frequency.

Only correctly predicted texts count, and in them only kept words (`Word.kept`), with their relative
scores (words.relative_scores: 1.0 is a sentence's average share). A token is a word's text in lower case.
For class c (of K classes) and token w, over the N_c correctly predicted texts whose label is c:

    count_c(w) = the number of occurrences of w
    mean_c(w)  = the mean relative score of w per occurrence
    rate_c(w)  = (the sum of w's relative scores) / N_c          (0 when N_c = 0)
    lift(w, c) = rate_c(w) / ((1/K) * sum over all K classes k of rate_k(w))
    score(w, c) = mean_c(w) * lift(w, c)

lift lies between 0 and K: 1 when w weighs as much in class c as in the average class, K when it weighs
only in class c (0 when w scores 0 everywhere). A word that every class attends to ("feel", "the") gets
a lift near 1 however often it occurs, so the score favours words specific to the class that the model
also attends to when they occur. Tokens with count_c(w) < min_count are left out; the rest are ranked by
score, descending, ties by count (descending), then token. A class with no correct text has no rows.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from trainlab.explain.words import ExplainedText


@dataclass(frozen=True)
class TokenRank:
    class_name: str
    rank: int  # 1 = highest score in its class
    token: str
    score: float  # mean * lift
    mean: float  # mean relative score per occurrence in the class's correct texts
    lift: float  # in [0, K]
    count: int  # occurrences in the class's correct texts


def rank_tokens(
    texts: Sequence[ExplainedText], classes: Sequence[str], *, min_count: int = 3, top: int | None = 10
) -> list[TokenRank]:
    """The `top` tokens of each class (all when `top` is None), classes in order; see the module's docstring."""
    if min_count < 1:
        raise ValueError(f"min_count must be at least 1, got {min_count}")
    if top is not None and top < 1:
        raise ValueError(f"top must be at least 1 (or None for all), got {top}")
    k = len(classes)
    texts_per_class = [0] * k
    sums: list[dict[str, float]] = [defaultdict(float) for _ in range(k)]
    counts: list[dict[str, int]] = [defaultdict(int) for _ in range(k)]
    for text in texts:
        for label in (text.label, text.predicted):
            if not 0 <= label < k:
                raise ValueError(f"text {text.index}: label {label} outside 0..{k - 1} ({k} classes)")
        if not text.correct:
            continue
        texts_per_class[text.label] += 1
        for word in text.words:
            if word.kept:
                token = word.text.lower()
                sums[text.label][token] += word.score
                counts[text.label][token] += 1

    rates = [{w: total / n for w, total in class_sums.items()} for class_sums, n in zip(sums, texts_per_class)]
    mean_rate: dict[str, float] = defaultdict(float)
    for class_rates in rates:
        for w, rate in class_rates.items():
            mean_rate[w] += rate / k

    ranks = []
    for c, name in enumerate(classes):
        rows = []
        for w, count in counts[c].items():
            if count < min_count:
                continue
            lift = rates[c][w] / mean_rate[w] if mean_rate[w] > 0 else 0.0
            mean = sums[c][w] / count
            rows.append((mean * lift, count, w, mean, lift))
        rows.sort(key=lambda row: (-row[0], -row[1], row[2]))
        for rank, (score, count, w, mean, lift) in enumerate(rows[:top], start=1):
            ranks.append(TokenRank(name, rank, w, score, mean, lift, count))
    return ranks


def ranks_by_class(ranks: Sequence[TokenRank], classes: Sequence[str]) -> dict[str, list[TokenRank]]:
    """`ranks` grouped by class, every class of `classes` present (an empty list when it has no rows)."""
    grouped: dict[str, list[TokenRank]] = {name: [] for name in classes}
    for row in ranks:
        grouped.setdefault(row.class_name, []).append(row)
    return grouped
