"""`trainlab predict RUN INPUT...`: the most likely classes of images, texts or table rows (a regression's predicted
values), from a run folder alone."""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from trainlab.errors import UsageError
from trainlab.inference import Predictor
from trainlab.utils.io import atomic_open

OUTPUT_FORMATS = (".csv", ".json")


@dataclass
class Prediction:
    input: str  # the file as named, or the text
    top: list[tuple[str, float]]  # (class, probability), most likely first; a regression's (target column, value)
    values: bool = False  # a regression's values, not probabilities


def predict_inputs(
    predictor: Predictor, arguments: Sequence[str], stdin: TextIO, top: int = 3
) -> list[Prediction]:
    """The `top` classes of every input the arguments name (see Preprocess.gather), in their order."""
    named = predictor.preprocess.gather(arguments, stdin)
    if not named:
        raise UsageError("no input to predict: give image files or folders, or texts ('-' reads standard input)")
    if predictor.is_regression:
        values = predictor.predict([raw for _, raw in named]).tolist()
        targets = predictor.preprocess.targets
        return [Prediction(name, list(zip(targets, row)), values=True) for (name, _), row in zip(named, values)]
    ranked = predictor.top_classes([raw for _, raw in named], top)
    return [Prediction(name, classes) for (name, _), classes in zip(named, ranked)]


def format_predictions(predictions: Sequence[Prediction], width: int = 50) -> str:
    """One line per input: its name (a long one clipped in the middle, keeping a file's name), then each class
    with its probability."""
    names = [_clip(p.input, width) for p in predictions]
    column = max(map(len, names))
    return "\n".join(
        f"{name:<{column}}  " + "  ".join(f"{label} {value:.6g}" if p.values else f"{label} {value:.4f}" for label, value in p.top)
        for name, p in zip(names, predictions)
    )


def check_output(path: Path) -> None:
    """Refuse an output of an unknown type, or in a folder that does not exist, before any work."""
    if path.suffix.lower() not in OUTPUT_FORMATS:
        raise UsageError(f"--output {path}: expected a .csv or .json file")
    if not path.parent.is_dir():
        raise UsageError(f"--output {path}: the folder {path.parent} does not exist")
    if not os.access(path.parent, os.W_OK):
        raise UsageError(f"--output {path}: the folder {path.parent} cannot be written to")


def write_predictions(predictions: Sequence[Prediction], path: Path) -> None:
    """CSV (input, class_1, probability_1, ...) or JSON ([{input, top: [{class, probability}]}]), written atomically."""
    if path.suffix.lower() == ".json":
        rows = [{"input": p.input, "values": dict(p.top)} if p.values else
                {"input": p.input, "top": [{"class": c, "probability": v} for c, v in p.top]} for p in predictions]
        with atomic_open(path, "w", encoding="utf-8") as f:
            json.dump(rows, f, indent=1, ensure_ascii=False)
            f.write("\n")
        return
    ranks = max((len(p.top) for p in predictions), default=0)
    with atomic_open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        if predictions and predictions[0].values:  # a regression: one column per target
            writer.writerow(["input", *(label for label, _ in predictions[0].top)])
            writer.writerows([p.input, *(f"{value:.6g}" for _, value in p.top)] for p in predictions)
            return
        writer.writerow(["input", *[f"{what}_{rank}" for rank in range(1, ranks + 1) for what in ("class", "probability")]])
        for p in predictions:
            writer.writerow([p.input, *[cell for label, value in p.top for cell in (label, f"{value:.6f}")]])


def _clip(text: str, width: int) -> str:
    text = " ".join(text.split())  # a text's line breaks and tabs would break the table
    if len(text) <= width:
        return text
    head = (width - 1) // 2
    return text[:head] + "…" + text[len(text) - (width - 1 - head) :]

