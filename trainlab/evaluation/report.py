"""report.html: one self-contained page that shows everything in a run folder, readable offline.

Each section comes from one file of the run folder and is left out when that file is missing,
so a run that stopped at epoch 2 still gets a report of what it did; a corrupt file is a DataError
naming it (trainlab.run_records).
"""

from __future__ import annotations

import base64
import math
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2

from trainlab.engine import metric_names as names
from trainlab.engine.monitor import Monitor
from trainlab.run_folder import run_status
from trainlab.run_records import (
    CONFIG_YAML, MISTAKES_PNG, NOT_CLASSES, read_classification_report, read_evaluations, read_json, read_metrics,
    read_mistakes, read_run_record, read_text, report_classes,
)  # fmt: skip
from trainlab.utils.io import write_text
from trainlab.utils.records import flatten, to_float

REPORT_HTML = "report.html"
_TEMPLATE = "report.html.j2"
_COLUMN_FORMATS = {names.EPOCH: "{:.0f}", names.LR: "{:.3g}", names.SECONDS: "{:.1f}", names.SAMPLES_PER_S: "{:,.0f}"}


def write_html_report(run_dir: Path) -> Path:
    """Render `run_dir`/report.html from whatever the run folder holds; returns its path.

    Every file is optional: a run that failed or was interrupted has no test files, one that failed
    in its first epoch no metrics.csv, a folder being set up no run.json yet."""
    run_dir = Path(run_dir)
    run = read_run_record(run_dir, missing_ok=True) or {}
    report = read_classification_report(run_dir, missing_ok=True)
    epochs = read_metrics(run_dir, missing_ok=True) or []
    summary = read_text(run_dir / "summary.txt", missing_ok=True)
    context = {
        "title": run_dir.name,
        "status": run_status(run)[0],  # `died` for a run whose process is gone without recording an end
        "date": _date(run.get("started")) or _modified(run_dir / CONFIG_YAML),
        "error": run.get("error"),
        "headline": _headline(run, report, epochs),
        "curves_png": png_data_uri(run_dir / "curves.png"),
        "epochs": _epoch_table(epochs, run.get("monitor")) if epochs else None,
        "confusion_png": png_data_uri(run_dir / "confusion_matrix.png"),
        **_task_pictures(run_dir),
        "classes": _class_table(report) if report else None,
        "mistakes": _mistakes(run_dir),
        "evaluations": _evaluations_table(read_evaluations(run_dir, missing_ok=True)),
        "summary": summary,
        "summary_headline": _summary_headline(summary),
        "config": read_text(run_dir / CONFIG_YAML, missing_ok=True),
        "run": _flatten({key: value for key, value in run.items() if key != "evaluations"}),  # those have their section
        "env": _flatten(read_json(run_dir / "env.json", missing_ok=True) or {}),
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


def _headline(run: dict, report: dict | None, epochs: list[dict[str, float | None]]) -> list[tuple[str, str]]:
    """(label, value) pairs for the figures at the top; a figure nobody recorded is left out.

    The test set's files come first, then run.json; both are training's own test pass (`trainlab eval`
    writes into evaluations/ and is listed in its own section).
    """
    test_acc = report.get("accuracy") if report else run.get(names.TEST_ACC)
    macro_f1 = report.get("macro avg", {}).get("f1-score") if report else run.get(names.TEST_MACRO_F1)
    val_accs = [v for v in (to_float(row.get(names.VAL_ACC)) for row in epochs) if not math.isnan(v)]
    seconds = [v for v in (to_float(row.get(names.SECONDS)) for row in epochs) if not math.isnan(v)]
    train_seconds = run.get(names.TRAIN_SECONDS) or (sum(seconds) if seconds else None)
    figures = [
        ("test accuracy", _percent(test_acc)),
        ("macro F1", None if macro_f1 is None else f"{macro_f1:.4f}"),
        *((label, f"{run[key]:.4f}") for label, key in _TASK_FIGURES if isinstance(run.get(key), (int, float))),
        ("best val accuracy", _percent(max(val_accs)) if val_accs else None),
        ("best val MAE", f"{run['best_val']:.4g}" if run.get("monitor") == "val/mae" and run.get("best_val") is not None else None),
        ("epochs", len(epochs) if epochs else run.get(names.EPOCHS_COMPLETED)),
        ("training time", _duration(train_seconds)),
    ]
    return [(label, str(value)) for label, value in figures if value is not None]


# run.json's figures of the binary and regression tasks, shown at the top of the report
_TASK_FIGURES = (("test ROC AUC", "test_auc"), ("test average precision", "test_average_precision"),
                 ("test F1 (positive class)", "test_f1"), ("validation's best threshold", "best_threshold"),
                 ("test MAE", "test_mae"), ("test RMSE", "test_rmse"), ("test R²", "test_r2"))  # fmt: skip


def _task_pictures(run_dir: Path) -> dict[str, Any]:
    """A binary task's ROC and precision-recall curves, or a regression's scatter and residuals."""
    from trainlab.evaluation.task_results import PRECISION_RECALL_PNG, RESIDUALS_PNG, ROC_PNG, SCATTER_PNG

    for title, files in (("ROC and precision-recall curves", (ROC_PNG, PRECISION_RECALL_PNG)),
                         ("predicted against true values, and residuals", (SCATTER_PNG, RESIDUALS_PNG))):  # fmt: skip
        pictures = [(name.removesuffix(".png").replace("_", " "), uri) for name in files if (uri := png_data_uri(run_dir / name))]
        if pictures:
            return {"task_pictures": pictures, "task_pictures_title": title}
    return {"task_pictures": [], "task_pictures_title": ""}


def _evaluations_table(evaluations: list[dict[str, Any]]) -> list[list[str]]:
    """One row per `trainlab eval` recorded in run.json: when, checkpoint and epoch, accuracy, F1, data, folder."""
    rows = []
    for entry in evaluations:
        epoch = to_float(entry.get("epoch"))
        f1 = to_float(entry.get(names.TEST_MACRO_F1))
        overrides = " ".join(map(str, entry.get("overrides") or []))
        data = str(entry.get("data_source") or "–") + (f" ({overrides})" if overrides else "")
        checkpoint = str(entry.get("checkpoint", "?")) + ("" if math.isnan(epoch) else f" (epoch {epoch:.0f})")
        rows.append([_date(entry.get("time")) or "–", checkpoint, _percent(entry.get(names.TEST_ACC)) or "–",
                     "–" if math.isnan(f1) else f"{f1:.4f}", data, str(entry.get("path") or "–")])  # fmt: skip
    return rows


def _mistakes(run_dir: Path) -> dict[str, Any] | None:
    """The most confused class pairs and the highest-loss examples of mistakes.json: as a picture (mistakes.png,
    images) or as rows of sentences (texts)."""
    record = read_mistakes(run_dir, missing_ok=True)
    if record is None:
        return None
    pairs = [[row["true_name"], row["predicted_name"], str(row["count"]), _percent(row["share"])] for row in record["pairs"]]
    sentences = [[row["true_name"], row["predicted_name"], f"{row['p_predicted']:.3f}", f"{row['p_true']:.3f}",
                  f"{row['loss']:.3f}", row["text"]] for row in record["examples"] if "text" in row]  # fmt: skip
    return {"pairs": pairs, "png": png_data_uri(run_dir / MISTAKES_PNG), "sentences": sentences,
            "examples": len(record["examples"])}  # fmt: skip


def _summary_headline(summary: str | None) -> str:
    """The model's name and totals from summary.txt (`trainlab summary`'s table), shown while the table is folded."""
    wanted = ("Model:", "Total params:", "Multiply-adds")
    lines = [line.strip() for line in (summary or "").splitlines() if line.startswith(wanted)]
    return " · ".join(lines) or "layers, output shapes and parameters"


def _epoch_table(rows: list[dict[str, float | None]], monitor: str | None = None) -> dict[str, Any]:
    """The epochs, the best by the run's monitor (validation accuracy when unknown) marked."""
    columns = list(rows[0])
    try:
        chosen = Monitor.parse(monitor or "val/acc")
    except ValueError:
        chosen = Monitor.parse("val/acc")
    values = [to_float(row.get(chosen.column)) for row in rows]
    ranked = [i for i in range(len(rows)) if not math.isnan(values[i])]
    best = min(ranked, key=lambda i: (chosen.sort_key(values[i]), i)) if ranked else None
    return {"columns": columns, "rows": [[_format_cell(c, row.get(c)) for c in columns] for row in rows], "best": best,
            "monitor": MONITOR_WORDS.get(chosen.name, chosen.name)}  # fmt: skip


MONITOR_WORDS = {"val/acc": "validation accuracy", "val/loss": "validation loss", "val/macro_f1": "validation macro F1",
                 "val/f1": "validation F1", "val/auc": "validation ROC AUC", "val/mae": "validation MAE",
                 "val/rmse": "validation RMSE", "val/r2": "validation R²"}  # fmt: skip


def _class_table(report: dict[str, Any]) -> dict[str, list[list[str]]]:
    """Per-class rows, then accuracy and the averages, laid out as sklearn's text report does."""
    def row(name: str) -> list[str]:
        scores = report[name]
        if name == "accuracy":
            return [name, "", "", f"{scores:.4f}", _support(report.get("macro avg", {}).get("support", ""))]
        return [name, *(f"{scores[k]:.4f}" for k in ("precision", "recall", "f1-score")), _support(scores["support"])]

    return {"classes": [row(name) for name in report_classes(report)],
            "summary": [row(name) for name in NOT_CLASSES if name in report]}  # fmt: skip


def _format_cell(column: str, value: float | None) -> str:
    if value is None:
        return "–"
    if not math.isfinite(value):
        return str(value)  # nan, inf: what the run recorded
    return _COLUMN_FORMATS.get(column, "{:.4f}").format(value)


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


def png_data_uri(path: Path) -> str | None:
    """A PNG file inlined as a data: URI; None when there is no such file."""
    if not path.exists():
        return None
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")
