"""A tiny emotion dataset that a small model can fit: each text holds a keyword of its class among filler words."""

from __future__ import annotations

import random
from pathlib import Path

from trainlab.data.text import EMOTION_LABELS

KEYWORDS = {
    "sadness": ["sad", "lonely", "miserable"], "joy": ["happy", "glad", "cheerful"], "love": ["loving", "tender", "caring"],
    "anger": ["angry", "furious", "mad"], "fear": ["scared", "afraid", "nervous"], "surprise": ["amazed", "shocked", "surprised"],
}  # fmt: skip
FILLERS = ["i", "feel", "so", "today", "really", "am", "very", "and", "quite", "now"]


def tiny_texts(per_class: int, seed: int) -> list[tuple[str, str]]:
    """(text, label) pairs, `per_class` of each label, 2 to 9 words long."""
    rng = random.Random(seed)
    pairs = []
    for _ in range(per_class):
        for label in EMOTION_LABELS:
            words = rng.choices(FILLERS, k=rng.randint(1, 8))
            words.insert(rng.randrange(len(words) + 1), rng.choice(KEYWORDS[label]))
            pairs.append((" ".join(words), label))
    return pairs


def write_emotion(root: Path, per_class: tuple[int, int, int] = (10, 3, 3)) -> Path:
    """$TRAINLAB_DATA/emotion-like folder `root` with train.txt, val.txt and test.txt; returns `root`."""
    root.mkdir(parents=True, exist_ok=True)
    for seed, (split, count) in enumerate(zip(("train", "val", "test"), per_class)):
        lines = [f"{text};{label}" for text, label in tiny_texts(count, seed)]
        (root / f"{split}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root
