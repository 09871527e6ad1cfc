"""Presets on real data: test accuracy (mean ± std over seeds) and wall time of `trainlab run PRESET`.

    TRAINLAB_DATA=<data folder> python -m benchmarks.presets workshop/task1 mnist/mlp --seeds 0 1 2

Each (preset, seed) is one full `trainlab run` in a fresh process, as a user runs it; the
image caches are built first, so wall time is training + testing + the run folder.
Figures go to benchmarks/results/preset-<preset>.json, one file per preset (preset-<preset>-<label>.json
with --label, for a variant: --set model.pooling=cls --label cls); the run folders stay in a temporary folder
whose path the file records, and each row the CPU it ran on. --add keeps the file's rows of the seeds not run now,
for seeds run at different times (on different machines, too: the wall times then say little together):

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

from benchmarks.common import RESULTS, save, table, timed
from trainlab.config import load_config
from trainlab.data import DATASETS
from trainlab.utils.machine import cpu_name

NOTHING_EARLIER = {"rows": [], "run_folders": [], "commands": [], "environments": []}


def run_preset(preset: str, seeds: list[int], overrides: list[str], label: str | None = None, add: bool = False) -> dict:
    name = f"preset-{preset.replace('/', '-')}{'-' + label if label else ''}"
    earlier = earlier_runs(name, seeds, overrides) if add else NOTHING_EARLIER
    config, _ = load_config(preset, overrides)
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
    rows = sorted(earlier["rows"] + rows, key=lambda r: r["seed"])
    accs, f1s = [r["test acc"] for r in rows], [r["macro F1"] for r in rows]
    summary = {"preset": preset, "overrides": overrides, "seeds": [r["seed"] for r in rows], "test_acc_mean": statistics.mean(accs),
               "test_acc_std": statistics.pstdev(accs), "test_macro_f1_mean": statistics.mean(f1s),
               "test_macro_f1_std": statistics.pstdev(f1s), "wall_s_mean": statistics.mean(r["wall s"] for r in rows),
               "wall_s_max": max(r["wall s"] for r in rows), "rows": rows}
    summary["run_folders"] = [*earlier["run_folders"], str(out)] if add else str(out)
    if add:
        summary["earlier_commands"], summary["earlier_environments"] = earlier["commands"], earlier["environments"]
    save(name, summary)
    return summary


def earlier_runs(name: str, seeds: list[int], overrides: list[str]) -> dict:
    """The rows, run folders, commands and machines of `name`'s result file for the seeds other than `seeds` (none without a
    file); a file made with other overrides is refused, as its rows measure another experiment."""
    path = RESULTS / f"{name}.json"
    if not path.is_file():
        return NOTHING_EARLIER
    old = json.loads(path.read_text())
    if old.get("overrides", []) != overrides:
        sys.exit(f"--add: {path} was made with the overrides {old.get('overrides')}, not {overrides}")
    folders = old.get("run_folders", [])
    machine = old.get("environment", {}).get("cpu", "unknown")  # rows from before each row named its CPU
    return {"rows": [{**r, "cpu": r.get("cpu", machine)} for r in old["rows"] if r["seed"] not in seeds],
            "run_folders": [folders] if isinstance(folders, str) else folders,
            "commands": [*old.get("earlier_commands", []), old["command"]],
            "environments": [*old.get("earlier_environments", []), old.get("environment", {})]}


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
              f"{s['wall_s_mean']:.0f} s per run (slowest {s['wall_s_max']:.0f} s)")


if __name__ == "__main__":
    main()
