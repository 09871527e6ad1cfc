"""Compare run folders: what differs between their configs, their results side by side, and curves.

    runs = [load_run(p) for p in find_runs(["runs/"])]
    print(render(compare_table(runs, sort="test_acc"), "markdown"))   # one row per run
    print(render(group_rows(runs), "markdown"))                       # mean ± std over seeds
    save_figure(curves_figure(runs), "compare.png")

Rows are plain dicts, column name -> value, in display order: numbers stay numbers (accuracies
in percent), and a seed group's metrics are `MeanStd`s; `render` formats them all. A metric's column
and sort key are its name in metrics.csv and run.json (trainlab.engine.metric_names), with `(%)` after
a percentage: `test_acc (%)`, `--sort test_acc`.
"""

from __future__ import annotations

import csv
import html
import io
import json
import math
import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import yaml
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from trainlab.engine import metric_names as names
from trainlab.errors import UsageError
from trainlab.registry import did_you_mean
from trainlab.tools.run_summary import TASK_METRICS, RunSummary, find_runs, finite_number, load_run  # noqa: F401 (find_runs, load_run: compare's API)


IGNORED_FIELDS = ("name", "output_dir", "progress")  # differ between runs without changing the result
SEED_FIELD = "seed"

RUN, STATUS, SEEDS, TESTED = "run", "status", "seeds", "tested"
EPOCHS = names.EPOCHS_COMPLETED  # not "epochs", a config key
VAL_ACC, TEST_ACC, F1 = (f"{name} (%)" for name in (names.BEST_VAL_ACC, names.TEST_ACC, names.TEST_MACRO_F1))
TIME, SPEED = names.TRAIN_SECONDS, names.SAMPLES_PER_S
BROKEN = "broken"  # the status shown for a run whose run.json, metrics.csv or config.yaml cannot be read
FORMATS = ["table", "markdown", "csv", "html"]

# sort key -> (column, descending): higher accuracy and throughput first, shorter time first.
SORT_KEYS = {
    names.BEST_VAL_ACC: (VAL_ACC, True),
    names.TEST_ACC: (TEST_ACC, True),
    names.TEST_MACRO_F1: (F1, True),
    names.TRAIN_SECONDS: (TIME, False),
    names.SAMPLES_PER_S: (SPEED, True),
    names.EPOCHS_COMPLETED: (EPOCHS, True),
    RUN: (RUN, False),
}
SORT_KEYS |= {key: (key, higher) for key, higher in TASK_METRICS.items()}  # binary and regression tasks
# fractions to 4 decimals (AUC, F1, R²), errors to 4 significant digits in the targets' units (MAE, RMSE)
_TASK_FORMATS: dict[str, Callable[[float], str]] = {
    key: ("{:.4g}" if key.endswith(("mae", "rmse")) else "{:.4f}").format for key in TASK_METRICS
}
# the sort keys' earlier spellings, still taken
SORT_ALIASES = {"val_acc": names.BEST_VAL_ACC, "f1": names.TEST_MACRO_F1, "time": names.TRAIN_SECONDS,
                "images_per_s": names.SAMPLES_PER_S, "epochs": names.EPOCHS_COMPLETED, "name": RUN}  # fmt: skip
_COLUMN_FORMATS: dict[str, Callable[[float], str]] = {
    VAL_ACC: "{:.2f}".format,
    TEST_ACC: "{:.2f}".format,
    F1: "{:.2f}".format,
    TIME: "{:.1f}".format,
    SPEED: "{:.0f}".format,
    EPOCHS: lambda epochs: f"{epochs:.1f}".removesuffix(".0"),  # whole epochs, or a mean over seeds
}
_MARKERS_UP_TO = 30  # epochs; beyond this, markers hide the line


@dataclass(frozen=True)
class MeanStd:
    """A metric over the `n` runs of a seed group that have it, out of `of` runs; std is the population std."""

    mean: float
    std: float
    n: int
    of: int


# ---------------------------------------------------------------- tables


_MISSING = object()


def differing_fields(runs: Sequence[RunSummary]) -> list[str]:
    """Dotted config keys whose values are not the same in every run (a key absent from some
    runs counts as differing), in config order; `name`, `output_dir` and `progress` are ignored.

    An argument that comes with a registered name is left out when the name differs and every
    run that has the argument has the same value: `scheduler.end_ratio` of the runs with
    `scheduler.name: linear` belongs to "linear", and the `scheduler.name` column already says so.
    """
    keys: dict[str, None] = {}
    for run in runs:
        keys |= dict.fromkeys(run.config)

    def differs(key: str) -> bool:
        values = {_hashable(run.config.get(key, _MISSING)) for run in runs}
        if key in IGNORED_FIELDS or len(values) == 1:
            return False
        section, _, argument = key.rpartition(".")
        name = f"{section}.name"
        comes_with_name = section and argument != "name" and name in keys and len(values - {_MISSING}) == 1
        return not (comes_with_name and len({_hashable(run.config.get(name, _MISSING)) for run in runs}) > 1)

    return [key for key in keys if differs(key)]


def _hashable(value: Any) -> Any:
    if value is _MISSING:
        return value
    return json.dumps(value, sort_keys=True, default=str)  # lists and dicts become comparable strings


def _config_cell(value: Any) -> Any:
    """A config value as a cell: numbers and strings as they are, lists and null as YAML writes them."""
    if value is _MISSING:
        return None
    if isinstance(value, bool) or value is None or isinstance(value, (list, dict)):
        return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()
    return value


def _percent(fraction: float | None) -> float | None:
    return None if fraction is None else 100 * fraction


def _sort(rows: list[dict[str, Any]], sort: str, fields: Sequence[str]) -> list[dict[str, Any]]:
    sort = SORT_ALIASES.get(sort, sort)
    if sort in SORT_KEYS:
        column, descending = SORT_KEYS[sort]
    elif sort in fields:
        column, descending = sort, False
    else:
        choices = [*SORT_KEYS, *fields]
        suggestion = did_you_mean(sort, [*choices, *SORT_ALIASES])
        raise UsageError(f"cannot sort by '{sort}'{suggestion}: choose one of {', '.join(choices)}")

    def key(row: dict[str, Any]) -> tuple:
        value = row.get(column)
        if isinstance(value, MeanStd):
            value = value.mean
        number = finite_number(value)
        if number is not None:
            return (0, -number if descending else number, "")
        if value is None:
            return (2, 0.0, "")  # missing values last, whichever the direction
        return (1, 0.0, str(value))

    return sorted(rows, key=key)  # stable: ties keep their order (by run folder)


def compare_table(runs: Sequence[RunSummary], sort: str = names.BEST_VAL_ACC) -> list[dict[str, Any]]:
    """One row per run, sorted by `sort` (a key of SORT_KEYS or SORT_ALIASES, or one of the differing config fields).

    Columns: run, status (only when some run did not finish; `broken` for a run with problems), each
    differing config field, epochs_completed, best_val_acc (%), tested (which checkpoint the test result
    is of, when some run has one), test_acc (%), test_macro_f1 (%), train_seconds, samples_per_s.
    Missing values are None.
    """
    fields = differing_fields(runs)
    show_status = any(run.status != "finished" or run.problems for run in runs)
    show_tested = any(run.tested for run in runs)
    rows = []
    for run in runs:
        row: dict[str, Any] = {RUN: run.name}
        if show_status:
            row[STATUS] = BROKEN if run.problems else run.status
        row |= {key: _config_cell(run.config.get(key, _MISSING)) for key in fields}
        row |= {
            EPOCHS: run.epochs_completed,
            VAL_ACC: _percent(run.best_val_acc),
            **({TESTED: run.tested} if show_tested else {}),
            TEST_ACC: _percent(run.test_acc),
            F1: _percent(run.test_macro_f1),
            **{key: run.task_metrics.get(key) for key in _task_columns(runs)},
            TIME: run.train_seconds,
            SPEED: run.samples_per_s,
        }
        rows.append(row)
    return _sort(_without_empty_accuracy(rows, runs), sort, fields)


def _task_columns(runs: Sequence[RunSummary]) -> list[str]:
    """The binary and regression metrics some run records (test_auc, test_r2, ...), in TASK_METRICS' order."""
    return [key for key in TASK_METRICS if any(key in run.task_metrics for run in runs)]


def _without_empty_accuracy(rows: list[dict[str, Any]], runs: Sequence[RunSummary]) -> list[dict[str, Any]]:
    """Regression runs have no accuracy: its columns go when no run has one."""
    if not _task_columns(runs) or any(run.test_acc is not None or run.best_val_acc is not None for run in runs):
        return rows
    return [{key: value for key, value in row.items() if key not in (VAL_ACC, TEST_ACC, F1)} for row in rows]


def seed_groups(runs: Sequence[RunSummary]) -> list[list[RunSummary]]:
    """Finished runs whose configs differ only in `seed` (and the ignored fields), in groups of two or more.

    Failed, interrupted, running and broken runs are left out: a mean over seeds is over complete runs.
    """
    groups: dict[tuple, list[RunSummary]] = {}
    for run in runs:
        if run.status != "finished" or run.problems:
            continue
        key = tuple(
            sorted((k, _hashable(v)) for k, v in run.config.items() if k not in IGNORED_FIELDS and k != SEED_FIELD)
        )
        groups.setdefault(key, []).append(run)
    return [group for group in groups.values() if len(group) >= 2]


def _mean_std(values: Iterable[float | None], of: int) -> MeanStd | None:
    present = [v for v in values if v is not None]
    if not present:
        return None
    return MeanStd(statistics.fmean(present), statistics.pstdev(present), len(present), of)


def group_rows(runs: Sequence[RunSummary], sort: str = names.BEST_VAL_ACC) -> list[dict[str, Any]]:
    """One row per seed group (see `seed_groups`); runs in no group are left out, so [] when
    no two finished runs differ only in seed.

    Columns: the config fields that differ between runs (other than seed), holding the group's
    value; seeds ("n=3 seeds"); epochs_completed (a number, or a MeanStd when the runs stopped at
    different epochs); then best_val_acc (%), test_acc (%), test_macro_f1 (%), train_seconds and
    samples_per_s as MeanStd (mean ± population std over the group's runs that have a value).
    Sorted by `sort` as `compare_table` is, on the means.
    """
    fields = [key for key in differing_fields(runs) if key != SEED_FIELD]
    rows = []
    for group in seed_groups(runs):
        n = len(group)
        seeds = {_hashable(run.config.get(SEED_FIELD, _MISSING)) for run in group}
        row: dict[str, Any] = {key: _config_cell(group[0].config.get(key, _MISSING)) for key in fields}
        row[SEEDS] = f"n={n} seeds" if len(seeds) == n else f"n={n} runs, {len(seeds)} seeds"
        epochs = {run.epochs_completed for run in group}
        row[EPOCHS] = epochs.pop() if len(epochs) == 1 else _mean_std((r.epochs_completed for r in group), n)
        row |= {
            VAL_ACC: _mean_std((_percent(r.best_val_acc) for r in group), n),
            TEST_ACC: _mean_std((_percent(r.test_acc) for r in group), n),
            F1: _mean_std((_percent(r.test_macro_f1) for r in group), n),
            **{key: _mean_std((r.task_metrics.get(key) for r in group), n) for key in _task_columns(group)},
            TIME: _mean_std((r.train_seconds for r in group), n),
            SPEED: _mean_std((r.samples_per_s for r in group), n),
        }
        rows.append(row)
    return _sort(_without_empty_accuracy(rows, runs), sort, fields)


# ---------------------------------------------------------------- rendering


def _cell(column: str, value: Any) -> str:
    if value is None:
        return ""
    fmt = _COLUMN_FORMATS.get(column) or _TASK_FORMATS.get(column, "{:g}".format)
    if isinstance(value, MeanStd):
        text = f"{fmt(value.mean)} ± {fmt(value.std)}"
        return text if value.n == value.of else f"{text} (n={value.n})"
    if isinstance(value, float):
        return fmt(value)
    return str(value)


def _is_numeric(rows: Sequence[dict[str, Any]], column: str) -> bool:
    values = [row.get(column) for row in rows if row.get(column) is not None]
    return bool(values) and all(isinstance(v, (int, float, MeanStd)) and not isinstance(v, bool) for v in values)


def render(rows: Sequence[dict[str, Any]], fmt: str = "table") -> str:
    """`rows` (from compare_table or group_rows) as text: "table" (aligned, for a terminal),
    "markdown" (a GitHub pipe table), "csv", or "html" (a <table> with its own <style>).
    Percentages show two decimals ("73.55", "73.55 ± 0.58"); missing values are empty."""
    if fmt not in FORMATS:
        raise UsageError(f"unknown format '{fmt}'{did_you_mean(fmt, FORMATS)}: choose one of {', '.join(FORMATS)}")
    if not rows:
        return ""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    cells = [[_cell(column, row.get(column)) for column in columns] for row in rows]
    numeric = [_is_numeric(rows, column) for column in columns]
    return {"table": _table, "markdown": _markdown, "csv": _csv, "html": _html}[fmt](columns, cells, numeric)


def _table(columns: list[str], cells: list[list[str]], numeric: list[bool]) -> str:
    from rich import box
    from rich.console import Console
    from rich.table import Table

    table = Table(box=box.SIMPLE_HEAD, show_edge=False)
    for column, right in zip(columns, numeric):
        table.add_column(column, justify="right" if right else "left", no_wrap=True)
    for row in cells:
        table.add_row(*row)
    out = io.StringIO()
    # Wide enough that rich never folds a column; its tables take only the width they need.
    Console(file=out, width=10_000, color_system=None, highlight=False, markup=False).print(table)
    return "\n".join(line.rstrip() for line in out.getvalue().splitlines()) + "\n"


def _markdown(columns: list[str], cells: list[list[str]], numeric: list[bool]) -> str:
    def line(values: Iterable[str]) -> str:
        return "| " + " | ".join(v.replace("|", "\\|") for v in values) + " |"

    rule = ["---:" if right else "---" for right in numeric]
    return "\n".join([line(columns), "| " + " | ".join(rule) + " |", *map(line, cells)]) + "\n"


def _csv(columns: list[str], cells: list[list[str]], numeric: list[bool]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(cells)
    return out.getvalue()


_HTML_STYLE = (
    "table.trainlab-compare{border-collapse:collapse;font:14px system-ui,sans-serif}"
    "table.trainlab-compare th,table.trainlab-compare td{padding:4px 10px;border-bottom:1px solid #ddd}"
    "table.trainlab-compare th{text-align:left;background:#f5f5f5}"
    "table.trainlab-compare .num{text-align:right;font-variant-numeric:tabular-nums}"
)


def _html(columns: list[str], cells: list[list[str]], numeric: list[bool]) -> str:
    def tag(name: str, text: str, right: bool) -> str:
        attributes = ' class="num"' if right else ""
        return f"<{name}{attributes}>{html.escape(text)}</{name}>"

    head = "".join(tag("th", column, right) for column, right in zip(columns, numeric))
    body = "\n".join(
        "<tr>" + "".join(tag("td", text, right) for text, right in zip(row, numeric)) + "</tr>" for row in cells
    )
    return (
        f"<style>{_HTML_STYLE}</style>\n<table class=\"trainlab-compare\">\n"
        f"<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>\n"
    )


# ---------------------------------------------------------------- curves


def curves_figure(runs: Sequence[RunSummary]) -> Figure:
    """Validation accuracy (%) and validation loss against epoch, one line per run, overlaid.

    Save it with trainlab.evaluation.plots.save_figure.
    """
    fig = Figure(figsize=(11, 4.5), layout="constrained")
    FigureCanvasAgg(fig)
    acc_ax, loss_ax = fig.subplots(1, 2)
    for run in runs:
        epochs = [row.get("epoch") or i + 1 for i, row in enumerate(run.history)]
        marker = "o" if len(epochs) <= _MARKERS_UP_TO else None
        acc = [_nan(_percent(row.get(names.VAL_ACC))) for row in run.history]
        loss = [_nan(row.get(names.VAL_LOSS)) for row in run.history]
        (line,) = acc_ax.plot(epochs, acc, marker=marker, markersize=3, label=run.name)
        loss_ax.plot(epochs, loss, marker=marker, markersize=3, color=line.get_color(), label=run.name)
    for ax, title in ((acc_ax, "validation accuracy (%)"), (loss_ax, "validation loss")):
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.set_ylabel(title)
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    if runs:
        # One legend for both panels, below them: the run names are long.
        handles, labels = acc_ax.get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncols=min(3, len(runs)), fontsize="small")
    return fig


def _nan(value: float | None) -> float:
    return math.nan if value is None else value
