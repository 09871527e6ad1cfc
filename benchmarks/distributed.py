"""Data-parallel throughput: the same preset trained by 1 process and by `trainlab run --nproc N`, interleaved.

    TRAINLAB_DATA=/path/to/data python -m benchmarks.distributed --preset workshop/task4 --nproc 1 2 --epochs 2 --repeats 2

Each run is a fresh `python -m trainlab run` (as a user starts it); the figures are the training images/s of the
epochs after the first (warm-up excluded; from metrics.csv, all processes together), the command's wall time
(start-up, data, training, test) and the test accuracy. On a 2-core CPU two processes share the same two cores
that one process's two threads use, so the expected gain is small or negative: the figures say how much.
Results go to benchmarks/results/distributed.json. Run it alone: another busy process on these cores spoils
every figure.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import save, table


def one_run(preset: str, nproc: int, epochs: int, extra: list[str], output: Path) -> dict:
    command = [sys.executable, "-m", "trainlab", "run", preset, f"epochs={epochs}", "progress=false",
               f"output_dir={output}", "early_stopping.enabled=false", *extra, *(["--nproc", str(nproc)] if nproc > 1 else [])]  # fmt: skip
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if result.returncode:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")
    (folder,) = [p for p in output.iterdir() if p.is_dir()]
    with open(folder / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    rates = [float(r["samples_per_s"]) for r in rows[1:] or rows]
    record = json.loads((folder / "run.json").read_text())
    return {"nproc": nproc, "images_per_s": statistics.mean(rates), "epoch_seconds": [float(r["seconds"]) for r in rows],
            "wall_seconds": wall, "test_acc": record["test_acc"], "world_size": record.get("world_size", 1)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="workshop/task4")
    parser.add_argument("--nproc", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("overrides", nargs="*", help="config fields, e.g. device=cuda")
    args = parser.parse_args()
    runs = []
    for repeat in range(args.repeats):
        for nproc in args.nproc:  # interleaved: a drift of the machine touches every variant alike
            with tempfile.TemporaryDirectory() as output:
                run = one_run(args.preset, nproc, args.epochs, args.overrides, Path(output))
            runs.append({"repeat": repeat, **run})
            print(f"repeat {repeat}, {nproc} process(es): {run['images_per_s']:,.0f} img/s", flush=True)
    base = statistics.mean(r["images_per_s"] for r in runs if r["nproc"] == args.nproc[0])
    rows = []
    for nproc in args.nproc:
        mine = [r for r in runs if r["nproc"] == nproc]
        rate = statistics.mean(r["images_per_s"] for r in mine)
        rows.append({"processes": nproc, "img/s": rate, "± (std)": statistics.pstdev(r["images_per_s"] for r in mine),
                     f"vs {args.nproc[0]}": f"{rate / base:.2f}x", "wall s": statistics.mean(r["wall_seconds"] for r in mine),
                     "test acc": statistics.mean(r["test_acc"] for r in mine)})  # fmt: skip
    print(table(rows))
    print(save("distributed", {"preset": args.preset, "epochs": args.epochs, "overrides": args.overrides, "runs": runs,
                               "summary": rows}))  # fmt: skip


if __name__ == "__main__":
    main()
