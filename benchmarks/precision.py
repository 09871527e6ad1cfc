"""The default precision path (bf16 autocast + channels-last where the CPU has bf16) against plain fp32 NCHW.

    TRAINLAB_DATA=<data folder> python -m benchmarks.precision [--epochs 3] [--seeds 0 1] [--rounds 8]

Speed: both paths train the workshop CNN (Task 1's settings) in this process on the same
slice of CIFAR-10, in alternating short windows, since this machine switches between speed
levels; the figure is the median of the per-round ratios. Accuracy: each path trains for
`--epochs` on the whole training split per seed and is tested on the test set.
Targets: >= 3x training images/s, test accuracy within 0.5 point.
"""

from __future__ import annotations

import argparse
import statistics

from benchmarks.common import median, save, table, timed
from trainlab.config import load_config
from trainlab.engine.callbacks import LRSchedule
from trainlab.engine.loop import Trainer
from trainlab.experiment import build_experiment

PATHS = {"default": [], "fp32 NCHW": ["precision=fp32", "channels_last=false"]}
CONSTANT_LR = ["scheduler.name=constant", "scheduler.warmup_epochs=0"]


def trainer_for(overrides: list[str]) -> tuple[Trainer, object]:
    config, _ = load_config("workshop/task1", overrides)
    experiment = build_experiment(config)
    trainer = Trainer(experiment.model, experiment.optimizer, experiment.loss_fn, experiment.data.train, None,
                      epochs=config.epochs, placement=experiment.placement, callbacks=[LRSchedule(experiment.scheduler)])
    return trainer, experiment


def speed(rounds: int, images: int) -> dict:
    trainers = {}
    for name, overrides in PATHS.items():
        trainer, experiment = trainer_for([*overrides, *CONSTANT_LR])
        for loader in (experiment.data.train, experiment.data.test):  # the same first `images` of each split
            loader.images, loader.labels = loader.images[:images], loader.labels[:images]
        trainer.train_epoch(), trainer.evaluate(experiment.data.test)  # warm-up: kernels are built on first use
        trainers[name] = (trainer, experiment.data.test, experiment.placement)
    seconds = {name: {"train": [], "eval": []} for name in PATHS}
    for r in range(rounds):
        for name in (list(PATHS) if r % 2 == 0 else list(PATHS)[::-1]):
            trainer, test, _ = trainers[name]
            seconds[name]["train"].append(timed(trainer.train_epoch)[0])
            seconds[name]["eval"].append(timed(trainer.evaluate, test)[0])
    default, fp32 = seconds["default"], seconds["fp32 NCHW"]
    return {
        "images_per_window": images,
        "train_speedup": median([b / a for a, b in zip(default["train"], fp32["train"])]),
        "eval_speedup": median([b / a for a, b in zip(default["eval"], fp32["eval"])]),
        "paths": {name: {"precision": trainers[name][2].precision, "channels_last": trainers[name][2].channels_last,
                         "train_images_per_s": images / median(s["train"]), "eval_images_per_s": images / median(s["eval"])}
                  for name, s in seconds.items()},
        "seconds": seconds,
    }


def accuracy(epochs: int, seeds: list[int]) -> dict[str, list[float]]:
    accs: dict[str, list[float]] = {name: [] for name in PATHS}
    for seed in seeds:
        for name, overrides in PATHS.items():
            trainer, experiment = trainer_for([*overrides, *CONSTANT_LR, f"epochs={epochs}", f"seed={seed}"])
            trainer.fit()
            accs[name].append(trainer.evaluate(experiment.data.test)["acc"])
            print(f"seed {seed} {name}: test accuracy {accs[name][-1]:.4f}", flush=True)
    return accs


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--images", type=int, default=5120)
    args = parser.parse_args()

    fast = speed(args.rounds, args.images)
    accs = accuracy(args.epochs, args.seeds)
    rows = [{"path": name, **{k: v for k, v in fast["paths"][name].items()},
             "test acc": statistics.mean(accs[name]), "test acc std": statistics.pstdev(accs[name])} for name in PATHS]
    gap = 100 * (rows[0]["test acc"] - rows[1]["test acc"])
    print(table(rows))
    print(f"train speed-up {fast['train_speedup']:.2f}x (target >= 3), eval speed-up {fast['eval_speedup']:.2f}x, "
          f"test accuracy gap {gap:+.2f} points over {len(args.seeds)} seed(s), {args.epochs} epochs (target within 0.5)")
    save("precision", {**fast, "epochs": args.epochs, "seeds": args.seeds, "test_acc": accs,
                       "accuracy_gap_points": gap, "rows": rows})


if __name__ == "__main__":
    main()
