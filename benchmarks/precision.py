"""The default precision path (bf16 autocast + channels-last where the CPU has bf16) against plain fp32 NCHW.

    TRAINLAB_DATA=../shared/data python benchmarks/precision.py [--epochs 3] [--seeds 0 1]

Trains the workshop CNN on CIFAR-10 (Task 1's settings) with each path and seed, the
paths interleaved; reports training images/s, evaluation images/s and test accuracy.
Targets: >= 3x images/s, test accuracy within 0.5 point.
"""

from __future__ import annotations

import argparse
import statistics

import torch

from benchmarks.common import median, save, table, timed
from trainlab.config import load_config
from trainlab.experiment import build_experiment
from trainlab.engine.loop import Trainer

PATHS = {"default": [], "fp32 NCHW": ["precision=fp32", "channels_last=false"]}


def train(overrides: list[str]) -> dict[str, float]:
    config, _ = load_config("workshop/task1", overrides)
    experiment = build_experiment(config)
    trainer = Trainer(experiment.model, experiment.optimizer, experiment.loss_fn, experiment.data.train, None,
                      epochs=config.epochs, placement=experiment.placement)
    trainer.fit()
    seconds, _ = timed(trainer.evaluate, experiment.data.test)
    test = trainer.evaluate(experiment.data.test)
    return {"train_images_per_s": median([row["samples_per_s"] for row in trainer.history]),
            "eval_images_per_s": experiment.data.sizes["test"] / seconds, "test_acc": test["acc"],
            "precision": experiment.placement.precision, "channels_last": experiment.placement.channels_last}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    args = parser.parse_args()

    runs: dict[str, list[dict]] = {name: [] for name in PATHS}
    for seed in args.seeds:
        for name, overrides in PATHS.items():
            result = train([*overrides, f"epochs={args.epochs}", f"seed={seed}", "scheduler.name=constant"])
            runs[name].append(result)
            print(f"seed {seed} {name}: {result}", flush=True)

    rows = []
    for name, results in runs.items():
        accs = [r["test_acc"] for r in results]
        rows.append({"path": name, "precision": results[0]["precision"], "channels_last": results[0]["channels_last"],
                     "train img/s": median([r["train_images_per_s"] for r in results]),
                     "eval img/s": median([r["eval_images_per_s"] for r in results]),
                     "test acc": statistics.mean(accs), "test acc std": statistics.pstdev(accs)})
    speedup = rows[0]["train img/s"] / rows[1]["train img/s"]
    accuracy_gap = 100 * (rows[0]["test acc"] - rows[1]["test acc"])
    print(table(rows))
    print(f"train speed-up {speedup:.2f}x (target >= 3), eval speed-up {rows[0]['eval img/s'] / rows[1]['eval img/s']:.2f}x, "
          f"test accuracy gap {accuracy_gap:+.2f} points (target within 0.5)")
    save("precision", {"epochs": args.epochs, "seeds": args.seeds, "train_speedup": speedup,
                       "accuracy_gap_points": accuracy_gap, "rows": rows, "runs": runs})


if __name__ == "__main__":
    torch.set_num_threads(torch.get_num_threads())
    main()
