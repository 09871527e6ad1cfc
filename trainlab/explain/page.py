"""explain.html: the token rankings, the faithfulness check and every test sentence coloured by its words'
scores, filterable by class and by right or wrong prediction; one self-contained page, readable offline."""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from trainlab.evaluation.report import package_template, png_data_uri, report_style
from trainlab.explain.outputs import AVERAGING, SCORE_NOTE
from trainlab.explain.ranking import TokenRank, ranks_by_class
from trainlab.explain.words import ExplainedText
from trainlab.utils.io import write_text

EXPLAIN_HTML = "explain.html"
_TEMPLATE = "explain.html.j2"
FAITHFULNESS_KEYS = ("method", "k", "top_drop", "random_drop", "count")


def write_page(
    folder: Path, *, title: str, method: str, texts: Sequence[ExplainedText], classes: Sequence[str],
    ranks: Sequence[TokenRank], faithfulness: Sequence[Mapping[str, Any]] | None = None,
    bar_charts: Mapping[str, Path] | None = None, description: str | None = None,
) -> Path:  # fmt: skip
    """Render `folder`/explain.html; returns its path.

    `faithfulness`: rows with the keys FAITHFULNESS_KEYS (a missing value shows as "–"): for each method and k,
    the mean drop of the predicted class's probability when the k top-scored tokens are deleted, against
    deleting k random tokens, over `count` sentences. `bar_charts`: {class name: PNG}, as write_bar_charts
    returns. `description`: what the method's scores are, shown under its name."""
    correct = sum(t.correct for t in texts)
    context = {
        "title": title,
        "method": method,
        "description": description,
        "averaging": AVERAGING,
        "score_note": SCORE_NOTE,
        "headline": [("sentences", str(len(texts))), ("correctly predicted", str(correct)),
                     ("accuracy", f"{100 * correct / len(texts):.2f}%" if texts else "–")],  # fmt: skip
        "faithfulness": [_faithfulness_row(row) for row in faithfulness or []],
        "class_sections": _class_sections(texts, classes, ranks, bar_charts or {}),
        "classes": list(classes),
        "sentences": [_sentence(t, classes) for t in texts],
    }
    path = Path(folder) / EXPLAIN_HTML
    write_text(path, package_template("trainlab.explain", _TEMPLATE).render(style=report_style(), **context))
    return path


def _faithfulness_row(row: Mapping[str, Any]) -> list[str]:
    def cell(key: str) -> str:
        value = row.get(key)
        if value is None:
            return "–"
        if isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral):  # numpy's floats too
            return f"{value:.4f}" if math.isfinite(value) else str(value)
        return str(value)

    return [cell(key) for key in FAITHFULNESS_KEYS]


def _class_sections(
    texts: Sequence[ExplainedText], classes: Sequence[str], ranks: Sequence[TokenRank], charts: Mapping[str, Path]
) -> list[dict[str, Any]]:
    correct = [0] * len(classes)
    for t in texts:
        if t.correct and 0 <= t.label < len(classes):
            correct[t.label] += 1
    sections = []
    for c, (name, rows) in enumerate(ranks_by_class(ranks, classes).items()):
        if rows:
            note = None
        elif c < len(classes) and not correct[c]:
            note = "No correctly predicted test sentence of this class: nothing to rank."
        else:
            note = "No token occurs often enough (the minimum count) in this class's correctly predicted sentences."
        chart = charts.get(name)
        sections.append({
            "name": name,
            "correct": correct[c] if c < len(classes) else 0,
            "rows": [[str(r.rank), r.token, f"{r.score:.3f}", f"{r.mean:.3f}", f"{r.lift:.2f}", str(r.count)]
                     for r in rows],
            "chart": png_data_uri(Path(chart)) if chart else None,
            "note": note,
        })  # fmt: skip
    return sections


def _sentence(text: ExplainedText, classes: Sequence[str]) -> dict[str, Any]:
    # Colour intensity is the word's score over the sentence's highest kept score: each sentence uses the
    # full scale, and the tooltip gives the relative score itself.
    top = max((w.score for w in text.words if w.kept), default=0.0)
    words = []
    for w in text.words:
        if w.kept:
            words.append((w.text, f"{w.score / top:.2f}" if top > 0 else "0", f"{w.score:.2f}"))
        else:
            words.append((w.text, None, "left out"))
    return {
        "index": text.index,
        "text": text.text,
        "label": text.label,
        "outcome": "right" if text.correct else "wrong",
        "true_name": _class_name(classes, text.label),
        "predicted_name": _class_name(classes, text.predicted),
        "probability": f"{text.probability:.3f}",
        "words": words,
    }


def _class_name(classes: Sequence[str], label: int) -> str:
    return classes[label] if 0 <= label < len(classes) else f"#{label}"
