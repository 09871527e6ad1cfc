"""A preset's runs tested again with `trainlab eval` overrides (another test-time augmentation, say): per seed and
mean ± std over the seeds, beside what the runs recorded themselves.

    python -m benchmarks.retest preset-transfer-efficientnet_finetune-160px tta=flip_translate

NAME is a results file of benchmarks.presets (benchmarks/results/NAME.json); each seed's run folder is found among
the folders it recorded, and `trainlab eval RUN OVERRIDES` runs on it in a fresh process, as a user runs it. A run
that already holds an evaluation with these overrides of its best checkpoint is not tested again (--again does).
The figures go to benchmarks/results/NAME-retest-<overrides>.json.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
from pathlib import Path

import yaml

from benchmarks import common
from benchmarks.common import run_folders, save, table, timed
from trainlab.run_records import read_evaluations


def retest(name: str, overrides: list[str], again: bool = False) -> dict:
    path = common.RESULTS / f"{name}.json"
    if not path.is_file():
        raise SystemExit(f"{path} not found: run `python -m benchmarks.presets ...` first (retest takes its file's name)")
    recorded = json.loads(path.read_text())
    runs = runs_by_seed(recorded)
    rows = []
    for row in sorted(recorded["rows"], key=lambda r: r["seed"]):
        folder = runs.get(row["seed"])
        if folder is None:
            raise SystemExit(f"{path}: seed {row['seed']}'s run folder is gone from {', '.join(run_folders(recorded))}; "
                             "run that seed again with benchmarks.presets")  # fmt: skip
        evaluation, seconds = None if again else earlier_evaluation(folder, overrides), None
        if evaluation is None:
            command = [sys.executable, "-m", "trainlab", "eval", str(folder), *overrides]
            seconds, result = timed(subprocess.run, command, capture_output=True, text=True)
            if result.returncode != 0:
                raise SystemExit(f"trainlab eval {folder} {' '.join(overrides)} failed:\n{result.stderr}")
            evaluation = evaluations(folder)[-1]
        rows.append({"seed": row["seed"], "recorded acc": row["test acc"], "retest acc": evaluation["test_acc"],
                     "retest macro F1": evaluation["test_macro_f1"], "epoch": evaluation["epoch"],
                     "eval s": seconds, "run": str(folder), "evaluation": evaluation["path"]})  # fmt: skip
        print(f"seed {row['seed']}: {row['test acc']:.4f} recorded, {evaluation['test_acc']:.4f} with {' '.join(overrides)}",
              flush=True)  # fmt: skip
    summary = {"results_file": path.name, "preset": recorded["preset"], "preset_overrides": recorded.get("overrides", []),
               "eval_overrides": overrides, **mean_and_std(rows, "recorded acc"), **mean_and_std(rows, "retest acc"),
               **mean_and_std(rows, "retest macro F1"), "rows": rows}  # fmt: skip
    save(f"{name}-retest-{slug(overrides)}", summary)
    return summary


def runs_by_seed(recorded: dict) -> dict[int, Path]:
    """Each seed's run folder among the temporary folders a presets file recorded (the newest, if a seed ran twice)."""
    found: dict[int, Path] = {}
    runs = [run for folder in map(Path, run_folders(recorded)) if folder.is_dir() for run in folder.iterdir()
            if (run / "config.yaml").is_file() and (run / "run.json").is_file()]  # fmt: skip
    for run in sorted(runs, key=lambda r: r.stat().st_mtime):
        found[yaml.safe_load((run / "config.yaml").read_text())["seed"]] = run
    return found


def evaluations(run: Path) -> list[dict]:
    return read_evaluations(run, missing_ok=True)


def earlier_evaluation(run: Path, overrides: list[str]) -> dict | None:
    same = [e for e in evaluations(run) if e.get("overrides") == overrides and e.get("checkpoint") == "best"]
    return same[-1] if same else None


def mean_and_std(rows: list[dict], column: str) -> dict:
    values = [r[column] for r in rows]
    key = column.replace(" ", "_")
    return {f"{key}_mean": statistics.mean(values), f"{key}_std": statistics.pstdev(values)}


def slug(overrides: list[str]) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", "-".join(overrides)).strip("-") or "plain"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("name", help="a results file of benchmarks.presets, without .json: preset-<preset>[-<label>]")
    parser.add_argument("overrides", nargs="*", help="what `trainlab eval` takes: tta=..., data.*=...")
    parser.add_argument("--again", action="store_true", help="test again runs that hold an evaluation with these overrides")
    args = parser.parse_args()
    summary = retest(args.name, args.overrides, args.again)
    print(table([{k: "earlier" if v is None else v for k, v in r.items() if k not in ("run", "evaluation")} for r in summary["rows"]]))
    print(f"{summary['preset']} ({' '.join(summary['preset_overrides']) or 'as it is'}), {len(summary['rows'])} seed(s): "
          f"recorded {100 * summary['recorded_acc_mean']:.2f} ± {100 * summary['recorded_acc_std']:.2f} %, "
          f"with {' '.join(args.overrides) or 'nothing changed'} {100 * summary['retest_acc_mean']:.2f} ± "
          f"{100 * summary['retest_acc_std']:.2f} % (test split, accuracy)")


if __name__ == "__main__":
    main()
