"""Length-grouped batches of the emotion data: padding to the batch's longest text against packed sequences.

    TRAINLAB_DATA=<data folder> python -m benchmarks.text_padding [--rounds 8] [--texts 4096]

The `emotion/lstm_learned` preset's BiLSTM trains in this process on the first `--texts` training
texts, each variant in turn, in alternating short windows (this machine switches between speed
levels); a figure is the median over the rounds, a ratio the median of the per-round ratios.
Variants: the default (grouped by length, padded to each batch's longest, the preset's precision),
`pack_padded_sequence` on the same batches, random batches (no grouping) padded to their longest,
and the default in fp32. The faster of padding and packing is the `model.pack` default.
"""

from __future__ import annotations

import argparse

from benchmarks.common import median, save, table, timed
from trainlab.config import load_config
from trainlab.engine.loop import Trainer
from trainlab.experiment import build_experiment

PRESET = "emotion/lstm_learned"
VARIANTS = {
    "pad to longest": [],
    "pack_padded_sequence": ["model.pack=true"],
    "random batches, pad to longest": [],
    "pad to longest, fp32": ["precision=fp32"],
}


def trainer_for(name: str, texts: int) -> tuple[Trainer, dict]:
    config, _ = load_config(PRESET, [*VARIANTS[name], "scheduler.name=constant"])
    experiment = build_experiment(config)
    loader = experiment.data.train
    loader.ids, loader.lengths, loader.labels = loader.ids[:texts], loader.lengths[:texts], loader.labels[:texts]
    if name.startswith("random"):
        loader.pool_batches = 1
    real = int(loader.lengths.sum())
    padded = sum(ids.numel() for ids, _ in loader)
    trainer = Trainer(experiment.model, experiment.optimizer, experiment.loss_fn, loader, None, epochs=1,
                      placement=experiment.placement)  # fmt: skip
    trainer.train_epoch()  # warm-up: kernels are built on first use
    return trainer, {"precision": experiment.placement.precision, "padding share": 1 - real / padded}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--texts", type=int, default=4096)
    args = parser.parse_args()

    trainers = {name: trainer_for(name, args.texts) for name in VARIANTS}
    seconds: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for r in range(args.rounds):
        for name in list(VARIANTS) if r % 2 == 0 else list(VARIANTS)[::-1]:
            seconds[name].append(timed(trainers[name][0].train_epoch)[0])
    base = seconds["pad to longest"]
    rows = [{"variant": name, **info, "texts/s": args.texts / median(seconds[name]),
             "time vs pad to longest": median([s / b for s, b in zip(seconds[name], base)])}
            for name, (_, info) in trainers.items()]  # fmt: skip
    print(table(rows))
    pack = rows[1]["time vs pad to longest"]
    print(f"pack_padded_sequence takes {pack:.2f}x the time of padding to the batch's longest "
          f"({'padding' if pack > 1 else 'packing'} is faster); {args.texts} texts per window, {args.rounds} rounds")
    save("text_padding", {"preset": PRESET, "texts_per_window": args.texts, "rows": rows, "seconds": seconds})


if __name__ == "__main__":
    main()
