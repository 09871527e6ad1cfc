"""The doctor's output: doctor.json, a self-contained report.html (pictures inlined) and the table it prints.

report.html inlines the run report's style sheet (`trainlab/evaluation/report.css`), so the two
pages read alike.
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from trainlab.config import ConfigSource, ExperimentConfig
from trainlab.evaluation.report import package_template, png_data_uri, report_style
from trainlab.run_records import read_classification_report, report_classes
from trainlab.tools.doctor.checks import Check, worst
from trainlab.utils.io import write_json, write_text
from trainlab.utils.records import flatten

REPORT_HTML = "report.html"
DOCTOR_JSON = "doctor.json"
_TEMPLATE = "report.html.j2"
_LIST_SHOWN = 10  # values of a list shown in the HTML evidence tables; doctor.json keeps them all
STATUS_STYLES = {"pass": "green", "warn": "yellow", "fail": "bold red"}
SHORT_RUN_NOTE = ("These curves come from a short run that doctor made from the initial weights, not from the full "
                  "training: read them for divergence, noise and plateaus. They end too early to call a model "
                  "underfitting; `trainlab doctor <run folder>` reads the curves of a finished run.")  # fmt: skip


def write_report(
    folder: Path, checks: list[Check], config: ExperimentConfig, source: ConfigSource, run_dir: Path | None
) -> None:
    """doctor.json and report.html in `folder`; the checks' pictures are already there."""
    status = worst(check.status for check in checks)
    created = dt.datetime.now().astimezone().isoformat(timespec="seconds")
    record = {
        "status": status, "failed": status == "fail", "target": source.label, "created": created, "seed": config.seed,
        "run_folder": str(run_dir) if run_dir else None, "checks": [check.to_dict() for check in checks],
        "config": config.to_dict(),
    }  # fmt: skip
    write_json(folder / DOCTOR_JSON, _finite(record))
    context = {
        "title": f"doctor: {run_dir.name if run_dir else config.name or source.run_name}",
        "target": source.label, "status": status, "date": created.replace("T", " "),
        "style": report_style(),
        "checks": [
            {**check.to_dict(), "evidence": _evidence_rows(check.evidence), "findings": _finding_rows(check.evidence),
             "note": SHORT_RUN_NOTE if check.evidence.get("short_run") else None,
             "images": [png_data_uri(folder / name) for name in check.pictures]}
            for check in checks
        ],
        "config": config.to_yaml(),
    }  # fmt: skip
    write_text(folder / REPORT_HTML, package_template("trainlab.tools.doctor", _TEMPLATE).render(**context))


def print_table(console: Console, checks: list[Check]) -> None:
    table = Table(show_lines=True)
    table.add_column("check", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("evidence", ratio=3)
    table.add_column("advice", ratio=3)
    for check in checks:  # Text: a "[" in a summary is text, not rich markup
        table.add_row(check.name, Text(check.status, style=STATUS_STYLES[check.status]), Text(check.summary), Text(check.advice))
    console.print(table)


def class_count(run_dir: Path) -> int | None:
    """The number of classes a run was tested on, from its classification_report.json; None when the run
    stopped before its test pass. A corrupt report is a DataError naming it."""
    report = read_classification_report(run_dir, missing_ok=True)
    if report is None:
        return None
    return len(report_classes(report)) or None


def _evidence_rows(evidence: dict[str, Any]) -> list[tuple[str, str]]:
    """(dotted key, text) rows; long lists shortened, numbers in 4 significant digits."""
    def text(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.4g}"
        if isinstance(value, list):
            shown = ", ".join(text(v) for v in value[:_LIST_SHOWN])
            return shown + (f", ... ({len(value)} values)" if len(value) > _LIST_SHOWN else "")
        return "–" if value is None else str(value)

    tabled = ("history", "findings")  # the curves, and the curve findings with their own table
    shown = {k: v for k, v in evidence.items() if k not in tabled and v != [] and v != {}}
    return [(key, text(value)) for key, value in flatten(shown).items()]


def _finding_rows(evidence: dict[str, Any]) -> list[dict[str, str]]:
    """The curve diagnosis's findings as table rows, with their epochs and advice."""
    return [
        {"what": f"{f['diagnosis']}: {f['detail']}", "epochs": ", ".join(map(str, f["epochs"])), "advice": f["advice"]}
        for f in evidence.get("findings", [])
    ]


def _finite(value: Any) -> Any:
    """`value` with NaN and infinities as the strings "nan", "inf", "-inf": doctor.json stays strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value
