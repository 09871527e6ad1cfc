"""How faithful a method's scores are: delete the k words it scores highest and see the prediction fall.

For each sentence the model predicted correctly (with more than k kept words), the predicted class's
probability is measured on the whole sentence, without the method's top-k kept words (all their
pieces), and without k kept words drawn at random (seeded). A faithful method's deletions lower the
probability more than random ones: `top_drop` > `random_drop`, both means over the same sentences.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from trainlab.explain.words import ExplainedText

DELETE_BATCH = 64


@dataclass
class Deletion:
    """One sentence ready for deletion tests: its ids, its class, and the positions of each kept word."""

    ids: list[int]
    predicted: int
    words: list[tuple[float, tuple[int, ...]]]  # (score, positions) of each kept word


def deletions(texts: Sequence[ExplainedText], ids: Sequence[Sequence[int]], k: int) -> list[Deletion]:
    """The correctly predicted sentences with more than `k` kept words, ready for `deletion_drops`."""
    found = []
    for text, row in zip(texts, ids):
        kept = [(w.score, w.positions) for w in text.words if w.kept]
        if text.predicted == text.label and len(kept) > k:
            found.append(Deletion(list(row), text.predicted, kept))
    return found


def deletion_drops(
    probability: Callable[[list[list[int]], list[int]], torch.Tensor], cases: Sequence[Deletion], k: int, seed: int = 0,
) -> dict[str, float]:  # fmt: skip
    """Mean drop of p(predicted) when the top-k scored words go, and when k random words go.

    `probability(rows, classes)` gives each row's probability (N,) of its class."""
    rng = random.Random(seed)
    whole, top, chance = [], [], []
    for case in cases:
        ranked = sorted(range(len(case.words)), key=lambda i: -case.words[i][0])
        whole.append(case.ids)
        top.append(_without(case, ranked[:k]))
        chance.append(_without(case, rng.sample(range(len(case.words)), k)))
    classes = [case.predicted for case in cases]
    base, after_top, after_random = (_batched(probability, rows, classes) for rows in (whole, top, chance))
    return {
        "top_drop": float((base - after_top).mean()) if cases else float("nan"),
        "random_drop": float((base - after_random).mean()) if cases else float("nan"),
        "count": len(cases),
    }


def _without(case: Deletion, words: Sequence[int]) -> list[int]:
    gone = {position for i in words for position in case.words[i][1]}
    return [token for position, token in enumerate(case.ids) if position not in gone]


def _batched(probability: Callable[[list[list[int]], list[int]], torch.Tensor], rows: list[list[int]],
             classes: list[int]) -> torch.Tensor:  # fmt: skip
    parts = [probability(rows[i : i + DELETE_BATCH], classes[i : i + DELETE_BATCH]) for i in range(0, len(rows), DELETE_BATCH)]
    return torch.cat(parts) if parts else torch.empty(0)
