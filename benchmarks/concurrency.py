"""Two runs at once: how much slower is each than the same run alone?

    python -m benchmarks.concurrency                                   # the digits default
    TRAINLAB_DATA=<data folder> python -m benchmarks.concurrency default workshop/task1 --epochs 0 2
    python -m benchmarks.concurrency default --threads auto 2          # adaptive threads vs torch's fixed two

For each config and thread setting: one `trainlab run` alone, then two started together (seeds 0
and 1), each a fresh process as a user starts it. The figure is each concurrent run's time over
the alone run's (goal: <= 2.5 on 2 cores, where 2.0 is a fair share). `threads=2` fixed is how
every torch process behaves by default, the case that was 30-100x slower. Figures go to
benchmarks/results/concurrency-<config>.json. Run it alone on the machine: anything else busy skews it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import save, table
from trainlab.config import load_config
from trainlab.data import DATASETS


def start(config: str, seed: int, out: Path, overrides: list[str]) -> tuple[subprocess.Popen, float]:
    command = [sys.executable, "-m", "trainlab", "run", *([] if config == "default" else [config]), f"seed={seed}",
               f"output_dir={out}", "progress=false", *overrides]  # fmt: skip
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True), time.perf_counter()


def finish(process: subprocess.Popen, started: float, out: Path) -> dict:
    stdout, stderr = process.communicate()
    wall = process.ended - started if hasattr(process, "ended") else time.perf_counter() - started
    if process.returncode != 0:
        sys.exit(f"run failed ({process.returncode}):\n{stderr}")
    folder = Path(next(line.split()[1] for line in stdout.splitlines() if line.startswith("report: "))).parent
    record = json.loads((folder / "run.json").read_text())
    return {"wall": wall, "train": record["train_seconds"], "threads": record["threads"], "test_acc": record["test_acc"]}


def measure(config: str, threads: str, epochs: int | None, out: Path) -> list[dict]:
    overrides = [f"threads={threads}"] + ([f"epochs={epochs}"] if epochs else [])
    alone = finish(*start(config, 0, out, overrides), out)
    pair = [start(config, seed, out, overrides) for seed in (0, 1)]
    while any(process.poll() is None for process, _ in pair):  # each one's end, not when we get to read it
        for process, _ in pair:
            if not hasattr(process, "ended") and process.poll() is not None:
                process.ended = time.perf_counter()
        time.sleep(0.05)
    for process, _ in pair:
        if not hasattr(process, "ended"):
            process.ended = time.perf_counter()
    together = [finish(process, started, out) for process, started in pair]
    rows = []
    for label, result in [("alone", alone), *(("together", r) for r in together)]:
        rows.append({"config": config, "threads": threads, "case": label, "wall s": result["wall"],
                     "train s": result["train"], "wall ratio": result["wall"] / alone["wall"],
                     "train ratio": result["train"] / alone["train"],
                     "thread share": " ".join(f"{k}:{v:.0%}" for k, v in result["threads"]["share"].items()),
                     "test acc": result["test_acc"]})  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("configs", nargs="*", default=["default"], help="presets or config files; 'default' is the digits default")
    parser.add_argument("--threads", nargs="+", default=["auto"], help="thread settings to compare: auto and/or a number")
    parser.add_argument("--epochs", nargs="+", type=int, default=[0], help="epochs per config (0: the config's own)")
    args = parser.parse_args()
    epochs = dict(zip(args.configs, args.epochs + [args.epochs[-1]] * len(args.configs)))
    out = Path(tempfile.mkdtemp())
    rows = []
    for config in args.configs:
        resolved, _ = load_config(None if config == "default" else config)
        DATASETS.build(resolved.data.name, **resolved.data.args)  # decode and cache before any timed run
        config_rows = []
        for threads in args.threads:
            config_rows += measure(config, threads, epochs[config] or None, out)
            print(table(config_rows[-3:]), flush=True)
        path = save(f"concurrency-{config.replace('/', '-')}", {"epochs": epochs[config] or resolved.epochs, "rows": config_rows})
        print(path)
        rows += config_rows
    print("\n" + table(rows))


if __name__ == "__main__":
    main()
