"""Workshop Task 1 on real CIFAR-10: wall time and test accuracy of `trainlab run workshop/task1`.

    TRAINLAB_DATA=<data folder> python -m benchmarks.task1 [--seeds 0 1 2]

Each seed is one full `trainlab run` in a fresh process (target: >= 70 % test accuracy
in <= 5 minutes on 2 CPU cores); the image cache is built first, so each run's wall time
is training plus testing plus the run folder, as a user sees it on a second run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.common import save, table, timed
from trainlab.data.vision import load_image_folder
from trainlab.data import data_root


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("overrides", nargs="*", help="key=value overrides for the preset")
    args = parser.parse_args()
    for split in ("train", "test"):
        load_image_folder(data_root() / "cifar10-jpeg" / split)  # build the cache outside the timed runs

    rows = []
    out = Path(tempfile.mkdtemp())
    for seed in args.seeds:
        command = [sys.executable, "-m", "trainlab", "run", "workshop/task1", f"seed={seed}", f"output_dir={out}",
                   "progress=false", *args.overrides]
        seconds, result = timed(subprocess.run, command, capture_output=True, text=True)
        if result.returncode != 0:
            sys.exit(f"run failed:\n{result.stderr}")
        folder = max(out.iterdir(), key=lambda p: p.stat().st_mtime)
        record = json.loads((folder / "run.json").read_text())
        rows.append({"seed": seed, "wall s": seconds, "train s": record["train_seconds"],
                     "test acc": record["test_acc"], "macro F1": record["test_macro_f1"],
                     "best epoch": record["best_epoch"]})
        print(result.stdout.strip().splitlines()[-2], flush=True)
    accs = [r["test acc"] for r in rows]
    print(table(rows))
    summary = {"test_acc_mean": statistics.mean(accs), "test_acc_std": statistics.pstdev(accs),
               "wall_s_max": max(r["wall s"] for r in rows)}
    print(f"test accuracy {100 * summary['test_acc_mean']:.2f} ± {100 * summary['test_acc_std']:.2f} % over "
          f"{len(rows)} seed(s); slowest run {summary['wall_s_max']:.0f} s (targets >= 70 %, <= 300 s)")
    save("task1", {"overrides": args.overrides, "rows": rows, **summary})


if __name__ == "__main__":
    main()
