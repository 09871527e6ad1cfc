"""Shared by the benchmarks: timing, medians, JSON output, a printed table."""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"


def timed(fn, *args, **kwargs) -> tuple[float, Any]:
    started = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - started, out


def median(values: list[float]) -> float:
    return statistics.median(values)


def save(name: str, figures: dict[str, Any], environment_extra: dict[str, Any] | None = None) -> Path:
    """benchmarks/results/NAME.json: the figures, the command and the machine (with `environment_extra`)."""
    from trainlab.engine.device import resolve_placement
    from trainlab.run_folder import environment
    from trainlab.utils.io import write_json

    env = environment(seed=0, placement=resolve_placement())
    figures = {"benchmark": name, "command": " ".join(["python -m", f"benchmarks.{Path(sys.argv[0]).stem}", *sys.argv[1:]]), **figures,
               "environment": {k: env[k] for k in ("cpu", "cpu_count", "torch_threads", "packages", "git_commit", "started")}
               | (environment_extra or {})}
    path = RESULTS / f"{name}.json"
    write_json(path, figures)  # a benchmark stopped while writing leaves the previous file whole
    return path


PER_RUN = ("seed", "name", "output_dir", "progress")  # config fields that may differ between the seeds of one experiment


def experiment_of(config) -> dict:
    """What a resolved trainlab config runs, as a dict: every field but those that differ from seed to seed."""
    return {k: v for k, v in config.to_dict().items() if k not in PER_RUN}


def earlier_results(name: str, overrides: list[str], config: dict | None = None) -> dict | None:
    """benchmarks/results/NAME.json as an earlier run left it, for --add (None without one). A file made with other
    overrides, or one that recorded another `config` (its preset has changed since), is refused: its figures
    measure another experiment."""
    path = RESULTS / f"{name}.json"
    if not path.is_file():
        return None
    earlier = json.loads(path.read_text())
    if earlier.get("overrides", []) != overrides:
        raise SystemExit(f"--add: {path} was made with --set {' '.join(earlier.get('overrides', [])) or '(nothing)'}, "
                         f"not {' '.join(overrides) or '(nothing)'}; give the results another name")  # fmt: skip
    if config is not None and "config" in earlier:
        refuse_a_changed_preset(name, earlier["config"], config)
    return earlier


def run_folders(recorded: dict) -> list[str]:
    """The temporary folders of a presets results file's runs: one path, or a list once --add gathered several."""
    folders = recorded.get("run_folders", [])
    return [folders] if isinstance(folders, str) else folders


def refuse_a_changed_preset(name: str, recorded: dict, now: dict, preset: str = "the preset") -> None:
    """SystemExit naming the first field where a config that results file NAME recorded differs from what the preset
    gives now."""
    difference = first_difference(recorded, now)
    if difference:
        key, was, given = difference
        raise SystemExit(f"--add: {RESULTS / f'{name}.json'} was made with {key}: {was}, but {preset} now gives "
                         f"{key}: {given}; run every seed again without --add, or give the new figures another name")


def first_difference(a: Any, b: Any, key: str = "") -> tuple[str, Any, Any] | None:
    """The first dotted key where two configs differ, with both values; None if they agree. A key only one has is a
    field that trainlab gained or lost in between, whose default keeps the behaviour of before: it is not a difference."""
    if not (isinstance(a, dict) and isinstance(b, dict)):
        return None if a == b else (key, a, b)
    for k in [k for k in a if k in b]:
        found = first_difference(a[k], b[k], f"{key}.{k}" if key else k)
        if found:
            return found
    return None


def table(rows: list[dict[str, Any]]) -> str:
    columns = list(rows[0])
    cells = [[_format(r[c]) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    line = lambda values: "  ".join(v.ljust(w) for v, w in zip(values, widths))  # noqa: E731
    return "\n".join([line(columns), line(["-" * w for w in widths]), *map(line, cells)])


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"
    return str(value)
