"""The token rankings as files: tokens.csv, tokens.md and one bar chart per class, written atomically."""

from __future__ import annotations

import csv
import re
from collections.abc import Sequence
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from trainlab.errors import DataError
from trainlab.evaluation.plots import DPI, save_figure
from trainlab.explain.ranking import TokenRank, ranks_by_class
from trainlab.utils.io import atomic_open, write_text

TOKENS_CSV = "tokens.csv"
TOKENS_MD = "tokens.md"
TOKEN_COLUMNS = ["class", "rank", "token", "score", "mean", "lift", "count"]
AVERAGING = "mean over correctly predicted test sentences"
SCORE_NOTE = (
    "score = mean × lift; mean: a token's mean relative score per occurrence (1 = its sentence's average word); "
    "lift: its summed score per sentence of the class over the average of that across all classes "
    "(0 to the number of classes)"
)
NO_ROWS_NOTE = "No token: no correctly predicted test sentence of this class, or no token reaches the minimum count"
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>|])")


def write_tokens(
    folder: Path, ranks: Sequence[TokenRank], method: str, *, classes: Sequence[str] | None = None
) -> None:
    """Write `folder`/tokens.csv (TOKEN_COLUMNS, one row per ranked token) and tokens.md (a table per class).

    With `classes`, tokens.md names every class, saying so for one without rows; without, only the classes
    that have rows appear."""
    folder = Path(folder)
    with atomic_open(folder / TOKENS_CSV, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(TOKEN_COLUMNS)
        for r in ranks:
            numbers = (f"{value:.6f}" for value in (r.score, r.mean, r.lift))
            writer.writerow([r.class_name, r.rank, r.token, *numbers, r.count])
    write_text(folder / TOKENS_MD, tokens_markdown(ranks, method, classes=classes))


def tokens_markdown(ranks: Sequence[TokenRank], method: str, *, classes: Sequence[str] | None = None) -> str:
    lines = [f"# Tokens per class: {_markdown(method)}, {AVERAGING}", "", f"{SCORE_NOTE}.", ""]
    grouped = ranks_by_class(ranks, classes or list(dict.fromkeys(r.class_name for r in ranks)))
    for name, rows in grouped.items():
        lines += [f"## {_markdown(name)}", ""]
        if not rows:
            lines += [f"{NO_ROWS_NOTE}.", ""]
            continue
        lines += ["| rank | token | score | mean | lift | count |", "|---:|:---|---:|---:|---:|---:|"]
        lines += [f"| {r.rank} | {_markdown(r.token)} | {r.score:.3f} | {r.mean:.3f} | {r.lift:.2f} | {r.count} |"
                  for r in rows]  # fmt: skip
        lines.append("")
    return "\n".join(lines)


def _markdown(text: str) -> str:
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)


def read_tokens(folder: Path) -> list[TokenRank]:
    """What `write_tokens` wrote to `folder`/tokens.csv; a missing file or a bad row is a DataError naming the
    file and line."""
    path = Path(folder) / TOKENS_CSV
    try:
        with open(path, encoding="utf-8", newline="") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if header != TOKEN_COLUMNS:
                got = "an empty file" if header is None else ",".join(header)
                raise DataError(f"{path}, line 1: expected the header {','.join(TOKEN_COLUMNS)}, got {got}")
            return [_token_rank(row, f"{path}, line {reader.line_num}") for row in reader]
    except FileNotFoundError as e:
        raise DataError(f"{path}: not found; `trainlab explain` writes it") from e


def _token_rank(row: list[str], where: str) -> TokenRank:
    try:
        name, rank, token, score, mean, lift, count = row
        return TokenRank(name, int(rank), token, float(score), float(mean), float(lift), int(count))
    except ValueError as e:
        raise DataError(f"{where}: expected {len(TOKEN_COLUMNS)} columns with numbers in rank, score, mean, lift "
                        f"and count, got {row} ({e})") from e  # fmt: skip


def write_bar_charts(
    folder: Path, ranks: Sequence[TokenRank], classes: Sequence[str], *, method: str | None = None
) -> dict[str, Path]:
    """One horizontal bar chart of the ranked tokens' scores per class that has rows, as `folder`/bars-<class>.png
    (the name made filename-safe); returns {class name: path}, in the order of `classes`."""
    charts: dict[str, Path] = {}
    used: set[str] = set()
    for index, (name, rows) in enumerate(ranks_by_class(ranks, classes).items()):
        stem = bar_chart_stem(name)
        if stem in used:
            stem = f"{stem}-{index}"  # "a b" and "a_b" both become "a_b"
        used.add(stem)
        if rows:
            charts[name] = path = Path(folder) / f"bars-{stem}.png"
            save_figure(_bar_figure(name, rows, method), path)
    return charts


def bar_chart_stem(class_name: str) -> str:
    """A class name as a file name's part: letters, digits, ".", "-" and "_" kept, any other run made "_"."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", class_name).strip("._") or "class"


def _bar_figure(class_name: str, rows: Sequence[TokenRank], method: str | None) -> Figure:
    fig = Figure(figsize=(6.0, 1.2 + 0.32 * len(rows)), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    labels = [r.token.replace("$", r"\$") for r in rows]  # a "$" would start matplotlib's mathtext
    bars = ax.barh(range(len(rows)), [r.score for r in rows], color="tab:orange")
    ax.bar_label(bars, labels=[f" n={r.count}" for r in rows], fontsize=8, color="0.35")
    ax.set_yticks(range(len(rows)), labels)
    ax.invert_yaxis()  # rank 1 on top
    ax.margins(x=0.15)
    ax.set_xlabel("score (mean × lift)")
    ax.set_title((class_name + (f" · {method}" if method else "")).replace("$", r"\$"))
    ax.grid(axis="x", alpha=0.3)
    return fig
