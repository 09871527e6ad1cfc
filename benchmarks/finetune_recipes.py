"""How to fine-tune EfficientNet-Lite0 on CIFAR-10: the backbone's learning rate, a head-first phase and early stages
frozen for good, compared on a subset in a few minutes each, through `trainlab.run` of the
`transfer/efficientnet_finetune` preset itself.

    TRAINLAB_DATA=/path/to/data python -m benchmarks.finetune_recipes
    TRAINLAB_DATA=/path/to/data python -m benchmarks.finetune_recipes --train 6000 --test 2000 --size 96 --seeds 0 1
    TRAINLAB_DATA=/path/to/data python -m benchmarks.finetune_recipes --only preset frozen --label frozen-stages

Every variant trains the preset's network and settings for 3 epochs on the same random `--train` training images
(a tenth of them for validation) at `--size` pixels and tests the last weights on the same `--test` test images
without test-time augmentation (`tta: none`, whatever the preset tests with); only the `transfer:` section changes.
Results: benchmarks/results/finetune_recipes[-<label>].json. Run it alone.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile

import numpy as np

from benchmarks.common import save, table, timed

PRESET = "transfer/efficientnet_finetune"
VARIANTS = {
    "every layer, backbone at the head's rate (the preset)": {"freeze": "none", "backbone_lr_factor": 1.0},
    "every layer, backbone at 0.3x": {"freeze": "none", "backbone_lr_factor": 0.3},
    "every layer, backbone at 0.1x": {"freeze": "none", "backbone_lr_factor": 0.1},
    "head for 1 epoch, then every layer, backbone at 0.1x": {"freeze": "backbone", "unfreeze_at_epoch": 2,
                                                             "backbone_lr_factor": 0.1},
    "head for 1 epoch, then every layer, backbone at 1x": {"freeze": "backbone", "unfreeze_at_epoch": 2,
                                                           "backbone_lr_factor": 1.0},
    "stem and block stages 1-2 frozen, the rest at 1x": {"freeze": "none", "frozen_stages": 3},
    "stem and block stages 1-3 frozen, the rest at 1x": {"freeze": "none", "frozen_stages": 4},
}


def subset(train: int, test: int) -> str:
    """A fixed random subset of CIFAR-10 registered as in-memory arrays; returns its key."""
    from trainlab.data import DATASETS
    from trainlab.data.memory import register_arrays

    cifar = DATASETS.build("cifar10")
    rng = np.random.default_rng(0)
    picked = np.sort(rng.permutation(len(cifar.train))[:train])
    tested = np.sort(rng.permutation(len(cifar.test))[:test])
    return register_arrays(cifar.train.images[picked], cifar.train.labels[picked],
                           test=(cifar.test.images[tested], cifar.test.labels[tested]), classes=cifar.classes)


def main() -> None:
    import trainlab

    parser = argparse.ArgumentParser()
    parser.add_argument("--train", type=int, default=6000, help="training images (a tenth of them validate)")
    parser.add_argument("--test", type=int, default=2000, help="test images")
    parser.add_argument("--size", type=int, default=96, help="model.input_size")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--only", nargs="+", metavar="WORD", help="the variants whose names hold one of these words")
    parser.add_argument("--label", help="added to the result file's name: finetune_recipes-<label>.json")
    args = parser.parse_args()
    variants = {name: transfer for name, transfer in VARIANTS.items()
                if not args.only or any(word in name for word in args.only)}  # fmt: skip
    key = subset(args.train, args.test)
    out = tempfile.mkdtemp()
    rows = []
    for name, transfer in variants.items():
        accs, seconds = [], []
        for seed in args.seeds:
            took, run = timed(trainlab.run, PRESET, quiet=True, seed=seed, epochs=args.epochs, output_dir=out,
                              progress=False, test_checkpoint="last", tta="none", model={"input_size": args.size},
                              data={"name": "in_memory", "key": key, "val_size": 0.1}, transfer=transfer)
            accs.append(run.record["test_acc"])
            seconds.append(took)
            print(f"{name}, seed {seed}: test accuracy {run.record['test_acc']:.4f} in {took:.0f} s", flush=True)
        rows.append({"variant": name, "test acc mean": statistics.mean(accs), "test acc std": statistics.pstdev(accs),
                     "seeds": len(accs), "s per run": statistics.mean(seconds)})
    save("finetune_recipes" + (f"-{args.label}" if args.label else ""), {"preset": PRESET, "train_images": args.train, "test_images": args.test,
                              "input_size": args.size, "epochs": args.epochs, "seeds": args.seeds,
                              "variants": variants, "rows": rows, "run_folders": out})
    print(table(rows))


if __name__ == "__main__":
    main()
