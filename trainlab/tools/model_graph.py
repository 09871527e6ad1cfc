"""`trainlab summary --graph`: the model as a Graphviz graph, one box per layer along the data flow.

The .dot source is always written; Graphviz's `dot` (Debian package `graphviz`) draws it.
Nested modules shown with their children become dashed frames around them.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from trainlab.errors import TrainlabError, UsageError
from trainlab.evaluation.model_summary import ModelSummary, Row, format_shapes
from trainlab.utils.io import atomic_path, write_text

DRAWN = (".svg", ".png", ".pdf")
SOURCE = (".dot", ".gv")


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def to_dot(summary: ModelSummary) -> str:
    """The Graphviz source: inputs as ovals, layers as boxes (name, output shape, parameters), arrows from each
    layer to the layers its output reaches."""
    lines = [
        "digraph model {",
        f"  graph [rankdir=TB, fontname=Helvetica, fontsize=12, labelloc=t, "
        f"label={_quote(f'{summary.name}: {summary.total_params:,} parameters')}];",
        '  node [shape=box, style="rounded,filled", fillcolor="#f6f8fa", color="#59636e", fontname=Helvetica, fontsize=10];',
        '  edge [color="#59636e", arrowsize=0.7];',
    ]
    inside: dict[int | None, list[Row]] = {}  # index of the frame's call (None: top level) -> its rows
    for row in summary.rows:
        parent = row.call.parent
        inside.setdefault(parent.index if parent is not None and parent.depth >= 1 else None, []).append(row)

    def add(rows: list[Row], indent: str) -> None:
        for row in rows:
            if row.call.module is None:
                label = f"{row.name}\n{format_shapes(row.shapes)}"
                lines.append(f"{indent}n{row.call.index} [label={_quote(label)}, shape=oval, fillcolor=white];")
            elif row.leaf:
                label = f"{row.name} ({row.call.kind})\n{format_shapes(row.shapes)}"
                label += f"\n{row.params:,} params" if row.params else ""
                lines.append(f"{indent}n{row.call.index} [label={_quote(label)}];")
            else:
                lines.append(f"{indent}subgraph cluster_{row.call.index} {{")
                frame = _quote(f"{row.name} ({row.call.kind})")
                lines.append(f'{indent}  label={frame}; style="rounded,dashed"; color="#8c959f";')
                add(inside.get(row.call.index, []), indent + "  ")
                lines.append(f"{indent}}}")

    add(inside.get(None, []), "  ")
    drawn = {row.call.index for row in summary.rows if row.leaf}
    for row in summary.rows:
        if row.leaf:
            lines += [f"  n{source.index} -> n{row.call.index};" for source in row.connected if source.index in drawn]
    return "\n".join(lines + ["}"]) + "\n"


def check_graph_path(path: Path) -> None:
    """A UsageError unless `path` is a file Graphviz can draw, or a .dot source."""
    if Path(path).suffix.lower() not in DRAWN + SOURCE:
        raise UsageError(f"--graph {path}: expected a file ending in {', '.join(DRAWN + SOURCE)}")


def write_graph(summary: ModelSummary, path: Path) -> str:
    """Write the graph's .dot source beside `path` and, when `dot` is installed, draw `path` (.svg, .png or .pdf).

    Returns what was written, in words; without `dot`, the words say how to install it.
    """
    path = Path(path)
    check_graph_path(path)
    source = path if path.suffix.lower() in SOURCE else path.with_suffix(".dot")
    write_text(source, to_dot(summary))
    if path == source:
        return f"graph source: {source}"
    fmt = path.suffix.lower().lstrip(".")
    dot = shutil.which("dot")
    if dot is None:
        return (
            f"graph source: {source}; {path} was not drawn because Graphviz's `dot` is not installed: install the "
            f"package graphviz (Debian/Ubuntu: apt-get install graphviz; macOS: brew install graphviz), "
            f"then run: dot -T{fmt} {source} -o {path}"
        )
    with atomic_path(path) as drawing:
        done = subprocess.run([dot, f"-T{fmt}", str(source), "-o", str(drawing)], capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            raise TrainlabError(f"dot could not draw {source}: {done.stderr.strip() or f'exit code {done.returncode}'}")
    return f"graph: {path} (source: {source})"
