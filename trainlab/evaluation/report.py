"""report.html: one self-contained page that shows everything in a run folder, readable offline.

Each section comes from one file of the run folder and is left out when that file is missing,
so a run that stopped at epoch 2 still gets a report of what it did.
"""

from __future__ import annotations

import base64
import csv
import json
import math
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2

from trainlab.errors import DataError
from trainlab.run_folder import run_status
from trainlab.utils.io import write_text
from trainlab.utils.records import flatten, to_float

REPORT_HTML = "report.html"
_TEMPLATE = "report.html.j2"
_AVERAGE_ROWS = ("micro avg", "macro avg", "weighted avg", "samples avg")
_COLUMN_FORMATS = {"epoch": "{:.0f}", "lr": "{:.3g}", "seconds": "{:.1f}", "samples_per_s": "{:,.0f}"}


def write_html_report(run_dir: Path) -> Path:
    """Render `run_dir`/report.html from whatever the run folder holds; returns its path."""
    run_dir = Path(run_dir)
    run = _read_json(run_dir / "run.json") or {}
    report = _read_json(run_dir / "classification_report.json")
    epochs = _read_csv(run_dir / "metrics.csv")
    summary = _read_text(run_dir / "summary.txt")
    context = {
        "title": run_dir.name,
        "status": run_status(run)[0],  # `died` for a run whose process is gone without recording an end
        "date": _date(run.get("started")) or _modified(run_dir / "config.yaml"),
        "error": run.get("error"),
        "headline": _headline(run, report, epochs),
        "curves_png": png_data_uri(run_dir / "curves.png"),
        "epochs": _epoch_table(epochs) if epochs else None,
        "confusion_png": png_data_uri(run_dir / "confusion_matrix.png"),
        "classes": _class_table(report) if report else None,
        "evaluations": _evaluations_table(run.get("evaluations")),
        "summary": summary,
        "summary_headline": _summary_headline(summary),
        "config": _read_text(run_dir / "config.yaml"),
        "run": _flatten({key: value for key, value in run.items() if key != "evaluations"}),  # those have their section
        "env": _flatten(_read_json(run_dir / "env.json") or {}),
    }
    path = run_dir / REPORT_HTML
    write_text(path, package_template("trainlab.evaluation", _TEMPLATE).render(style=report_style(), **context))
    return path


def report_style() -> str:
    """The reports' <style> element, to inline: the reports are self-contained."""
    css = resources.files("trainlab.evaluation").joinpath("report.css").read_text(encoding="utf-8")
    return f"<style>\n{css}</style>"


def package_template(package: str, name: str) -> jinja2.Template:
    """The Jinja template `name` shipped in `package`: HTML-escaped, strict about missing variables."""
    source = resources.files(package).joinpath(name).read_text(encoding="utf-8")
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    return env.from_string(source)


def _headline(run: dict, report: dict | None, epochs: list[dict[str, str]]) -> list[tuple[str, str]]:
    """(label, value) pairs for the figures at the top; a figure nobody recorded is left out.

    The test set's files come first, then run.json; both are training's own test pass (`trainlab eval`
    writes into evaluations/ and is listed in its own section).
    """
    test_acc = report.get("accuracy") if report else run.get("test_acc")
    macro_f1 = report.get("macro avg", {}).get("f1-score") if report else run.get("test_macro_f1")
    val_accs = [v for v in (to_float(row.get("val_acc")) for row in epochs) if not math.isnan(v)]
    seconds = [v for v in (to_float(row.get("seconds")) for row in epochs) if not math.isnan(v)]
    train_seconds = run.get("train_seconds") or (sum(seconds) if seconds else None)
    figures = [
        ("test accuracy", _percent(test_acc)),
        ("macro F1", None if macro_f1 is None else f"{macro_f1:.4f}"),
        ("best val accuracy", _percent(max(val_accs)) if val_accs else None),
        ("epochs", len(epochs) if epochs else run.get("epochs_completed")),
        ("training time", _duration(train_seconds)),
    ]
    return [(label, str(value)) for label, value in figures if value is not None]


def _evaluations_table(evaluations: Any) -> list[list[str]]:
    """One row per `trainlab eval` recorded in run.json: when, checkpoint and epoch, accuracy, F1, data, folder."""
    rows = []
    for entry in evaluations if isinstance(evaluations, list) else []:
        if not isinstance(entry, dict):
            continue
        epoch = to_float(entry.get("epoch"))
        f1 = to_float(entry.get("test_macro_f1"))
        overrides = " ".join(map(str, entry.get("overrides") or []))
        data = str(entry.get("data_source") or "–") + (f" ({overrides})" if overrides else "")
        checkpoint = str(entry.get("checkpoint", "?")) + ("" if math.isnan(epoch) else f" (epoch {epoch:.0f})")
        rows.append([_date(entry.get("time")) or "–", checkpoint, _percent(entry.get("test_acc")) or "–",
                     "–" if math.isnan(f1) else f"{f1:.4f}", data, str(entry.get("path") or "–")])  # fmt: skip
    return rows


def _summary_headline(summary: str | None) -> str:
    """The model's name and totals from summary.txt (`trainlab summary`'s table), shown while the table is folded."""
    wanted = ("Model:", "Total params:", "Multiply-adds")
    lines = [line.strip() for line in (summary or "").splitlines() if line.startswith(wanted)]
    return " · ".join(lines) or "layers, output shapes and parameters"


def _epoch_table(rows: list[dict[str, str]]) -> dict[str, Any]:
    columns = list(rows[0])
    val_accs = [to_float(row.get("val_acc")) for row in rows]
    best = max(range(len(rows)), key=lambda i: val_accs[i] if not math.isnan(val_accs[i]) else -math.inf)
    return {
        "columns": columns,
        "rows": [[_format_cell(c, row.get(c)) for c in columns] for row in rows],
        "best": best if not math.isnan(val_accs[best]) else None,
    }


def _class_table(report: dict[str, Any]) -> dict[str, list[list[str]]]:
    """Per-class rows, then accuracy and the averages, laid out as sklearn's text report does."""
    classes, summary = [], []
    for name, scores in report.items():
        if name == "accuracy":
            support = report.get("macro avg", {}).get("support", "")
            summary.append([name, "", "", f"{scores:.4f}", _support(support)])
        elif isinstance(scores, dict):
            rates = [f"{scores[k]:.4f}" for k in ("precision", "recall", "f1-score")]
            (summary if name in _AVERAGE_ROWS else classes).append([name, *rates, _support(scores["support"])])
    return {"classes": classes, "summary": summary}


def _format_cell(column: str, value: str | None) -> str:
    number = to_float(value)
    if math.isnan(number):
        return value or "–"
    return _COLUMN_FORMATS.get(column, "{:.4f}").format(number)


def _flatten(data: dict[str, Any]) -> list[tuple[str, str]]:
    """Nested JSON as (dotted.key, text) rows for a two-column table."""
    def text(value: Any) -> str:
        return "–" if value is None else ", ".join(map(str, value)) if isinstance(value, list) else str(value)

    return [(key, text(value)) for key, value in flatten(data).items()]


def _percent(value: Any) -> str | None:
    number = to_float(value)
    return None if math.isnan(number) else f"{100 * number:.2f}%"


def _duration(seconds: Any) -> str | None:
    number = to_float(seconds)
    if math.isnan(number):
        return None
    minutes, secs = divmod(number, 60)
    hours, minutes = divmod(int(minutes), 60)
    if hours:
        return f"{hours}h {minutes:02d}m {secs:02.0f}s"
    if minutes:
        return f"{minutes}m {secs:02.0f}s"
    return f"{secs:.1f}s"


def _support(value: Any) -> str:
    number = to_float(value)
    return str(value) if math.isnan(number) else f"{number:.0f}"


def _date(value: Any) -> str | None:
    """A date as text, "2025-01-01 12:00:00+00:00", from ISO text or a Unix timestamp (seconds, shown in local time)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return datetime.fromtimestamp(value).isoformat(sep=" ", timespec="seconds")
    try:
        return datetime.fromisoformat(value).isoformat(sep=" ", timespec="seconds")
    except (TypeError, ValueError):
        return None if value is None else str(value)


def _modified(path: Path) -> str | None:
    return _date(path.stat().st_mtime) if path.exists() else None


def _read_text(path: Path) -> str | None:
    return path.read_text(encoding="utf-8") if path.exists() else None


def _read_json(path: Path) -> Any:
    text = _read_text(path)
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError(f"{path}, line {e.lineno}: not valid JSON ({e.msg})") from e


def _read_csv(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def png_data_uri(path: Path) -> str | None:
    """A PNG file inlined as a data: URI; None when there is no such file."""
    if not path.exists():
        return None
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")
