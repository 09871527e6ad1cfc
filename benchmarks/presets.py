"""Presets on real data: test accuracy (mean ± std over seeds) and wall time of `trainlab run PRESET`.

    TRAINLAB_DATA=<data folder> python -m benchmarks.presets workshop/task1 mnist/mlp --seeds 0 1 2

Each (preset, seed) is one full `trainlab run` in a fresh process, as a user runs it; the
image caches are built first, so wall time is training + testing + the run folder.
Figures go to benchmarks/results/preset-<preset>.json, one file per preset (preset-<preset>-<label>.json
with --label, for a variant: --set model.pooling=cls --label cls); the run folders stay in a temporary folder
whose path the file records, and each row the CPU it ran on. --add keeps the file's rows of the seeds not run now,
for seeds run at different times (on different machines, too: wall times are summed up by CPU), as long as the
preset and overrides give the config the file recorded:

    python -m benchmarks.presets transfer/efficientnet_finetune --seeds 0
    python -m benchmarks.presets transfer/efficientnet_finetune --seeds 1 2 --add
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.common import earlier_results, experiment_of, run_folders, save, table, timed
from trainlab.config import load_config
from trainlab.data import DATASETS
from trainlab.utils.machine import cpu_name

NOTHING_EARLIER = {"rows": [], "run_folders": [], "commands": [], "environments": []}


def run_preset(preset: str, seeds: list[int], overrides: list[str], label: str | None = None, add: bool = False) -> dict:
    name = f"preset-{preset.replace('/', '-')}{'-' + label if label else ''}"
    config, _ = load_config(preset, overrides)
    experiment = experiment_of(config)
    earlier = earlier_runs(name, seeds, overrides, experiment) if add else NOTHING_EARLIER
    DATASETS.build(config.data.name, **config.data.args)  # decode and cache outside the timed runs
    out = Path(tempfile.mkdtemp())
    rows = []
    for seed in seeds:
        command = [sys.executable, "-m", "trainlab", "run", preset, f"seed={seed}", f"output_dir={out}", "progress=false",
                   *overrides]
        seconds, result = timed(subprocess.run, command, capture_output=True, text=True)
        if result.returncode != 0:
            sys.exit(f"{preset} seed {seed} failed:\n{result.stderr}")
        folder = max(out.iterdir(), key=lambda p: p.stat().st_mtime)
        record = json.loads((folder / "run.json").read_text())
        rows.append({"preset": preset, "seed": seed, "wall s": seconds, "train s": record["train_seconds"],
                     "epochs": record["epochs_completed"], "test acc": record["test_acc"],
                     "macro F1": record["test_macro_f1"], "best epoch": record["best_epoch"], "cpu": cpu_name()})
        print(f"{preset} seed {seed}: test accuracy {record['test_acc']:.4f} in {seconds:.0f} s", flush=True)
    summary = {"preset": preset, "overrides": overrides, "config": experiment, **summarize(earlier["rows"] + rows)}
    summary["run_folders"] = [*earlier["run_folders"], str(out)] if add else str(out)
    if add:
        summary["earlier_commands"], summary["earlier_environments"] = earlier["commands"], earlier["environments"]
    save(name, summary)
    return summary


def summarize(rows: list[dict]) -> dict:
    """Test accuracy and macro F1 over the seeds (mean and population std), and wall times by CPU: seeds run on
    different machines are scored together, but their times are only compared within one machine."""
    rows = sorted(rows, key=lambda r: r["seed"])
    accs, f1s = [r["test acc"] for r in rows], [r["macro F1"] for r in rows]
    by_cpu: dict[str, list[float]] = {}
    for row in rows:
        by_cpu.setdefault(row.get("cpu", "unknown"), []).append(row["wall s"])
    return {"seeds": [r["seed"] for r in rows], "test_acc_mean": statistics.mean(accs), "test_acc_std": statistics.pstdev(accs),
            "test_macro_f1_mean": statistics.mean(f1s), "test_macro_f1_std": statistics.pstdev(f1s),
            "wall_s_by_cpu": {cpu: {"runs": len(times), "mean": statistics.mean(times), "max": max(times)}
                              for cpu, times in by_cpu.items()},
            "rows": rows}


def earlier_runs(name: str, seeds: list[int], overrides: list[str], experiment: dict | None = None) -> dict:
    """The rows, run folders, commands and machines of `name`'s result file for the seeds other than `seeds` (none without a
    file). A file made with other overrides, or from a preset that has changed since (its recorded config is not
    `experiment`), is refused: its rows measure another experiment."""
    old = earlier_results(name, overrides, experiment)
    if old is None:
        return NOTHING_EARLIER
    machine = old.get("environment", {}).get("cpu", "unknown")  # rows from before each row named its CPU
    return {"rows": [{**r, "cpu": r.get("cpu", machine)} for r in old["rows"] if r["seed"] not in seeds],
            "run_folders": run_folders(old),
            "commands": [*old.get("earlier_commands", []), old["command"]],
            "environments": [*old.get("earlier_environments", []), old.get("environment", {})]}


def wall_times(summary: dict) -> str:
    return "; ".join(f"{t['mean']:.0f} s per run on {cpu} (slowest {t['max']:.0f} s, {t['runs']} run(s))"
                     for cpu, t in summary["wall_s_by_cpu"].items())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("presets", nargs="*", default=["workshop/task1"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--set", dest="overrides", nargs="*", default=[], help="key=value overrides for every preset")
    parser.add_argument("--label", help="added to the result file's name: preset-<preset>-<label>.json")
    parser.add_argument("--add", action="store_true", help="keep the result file's rows of the other seeds")
    args = parser.parse_args()
    summaries = [run_preset(preset, args.seeds, args.overrides, args.label, args.add) for preset in args.presets]
    print(table([row for s in summaries for row in s["rows"]]))
    for s in summaries:
        print(f"{s['preset']}: test accuracy {100 * s['test_acc_mean']:.2f} ± {100 * s['test_acc_std']:.2f} %, macro F1 "
              f"{s['test_macro_f1_mean']:.4f} ± {s['test_macro_f1_std']:.4f} over {len(s['seeds'])} seed(s); "
              + wall_times(s))


if __name__ == "__main__":
    main()
