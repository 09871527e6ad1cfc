"""trainlab's training epoch against a plain PyTorch loop: same model, data tensor, batch, optimizer, precision.

    python -m benchmarks.loop_overhead [--images 10000] [--repeats 5]

Both run in this process, interleaved; the figure is the ratio of median epoch times
(target <= 1.03). Synthetic CIFAR-shaped images: the loop's cost does not depend on pixels.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch
from rich.console import Console

from benchmarks.common import median, save, table, timed
from trainlab.data.loader import ArrayLoader, channel_stats
from trainlab.engine.callbacks import (
    Checkpointer,
    LRSchedule,
    MetricsCSV,
    NonFiniteLossGuard,
    ProgressBar,
    StopAtStepEnd,
    TensorBoardLogger,
)
from trainlab.engine.threads import CPUThreads
from trainlab.run_folder import Heartbeat, RunFolder
from trainlab.engine.device import resolve_placement
from trainlab.engine.loop import Trainer
from trainlab.engine.optim import adam, constant
from trainlab.models.vision import workshop_cnn


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    placement = resolve_placement()
    rng = np.random.default_rng(0)
    images = torch.from_numpy(rng.integers(0, 256, (args.images, 32, 32, 3), dtype=np.uint8))
    labels = torch.from_numpy(rng.integers(0, 10, args.images))
    mean, std = channel_stats(images.numpy())
    model = workshop_cnn(in_channels=3, num_classes=10, image_size=(32, 32))
    model = model.to(memory_format=torch.channels_last if placement.channels_last else torch.preserve_format)
    optimizer = adam(model.parameters(), lr=1e-4)
    loss_fn = torch.nn.CrossEntropyLoss()
    loader = ArrayLoader(images, labels, args.batch_size, mean=mean, std=std, shuffle=True,
                         channels_last=placement.channels_last)

    folder = Path(tempfile.mkdtemp())
    tensorboard = TensorBoardLogger(folder / "tb")
    trainer = Trainer(
        model, optimizer, loss_fn, loader, None, epochs=1, placement=placement,
        callbacks=[CPUThreads(), NonFiniteLossGuard(), LRSchedule(constant(optimizer, epochs=1, steps_per_epoch=len(loader))),
                   MetricsCSV(folder / "metrics.csv"), Checkpointer(folder, {}), Heartbeat(RunFolder(folder)), tensorboard,
                   ProgressBar(Console(file=open("/dev/null", "w")), live=False), StopAtStepEnd()],
    )  # fmt: skip
    tensorboard.on_fit_start(trainer)
    mean_t = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    inv_std = torch.tensor(1 / std, dtype=torch.float32).view(1, -1, 1, 1)

    def plain_epoch(epoch: int) -> None:
        model.train()
        order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(epoch))
        for start in range(0, len(labels), args.batch_size):
            index = order[start : start + args.batch_size]
            x = (images[index].permute(0, 3, 1, 2).float() - mean_t) * inv_std
            if not placement.channels_last:
                x = x.contiguous()
            with placement.autocast():
                loss = loss_fn(model(x), labels[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    def trainlab_epoch(epoch: int) -> None:
        trainer.epoch = epoch
        trainer.train_epoch()

    plain_epoch(0), trainlab_epoch(0)  # warm-up: oneDNN builds its kernels on first use
    times: dict[str, list[float]] = {"plain": [], "trainlab": []}
    for repeat in range(args.repeats):
        for name, epoch in (("plain", plain_epoch), ("trainlab", trainlab_epoch)) if repeat % 2 else (
            ("trainlab", trainlab_epoch), ("plain", plain_epoch)):
            times[name].append(timed(epoch, repeat + 1)[0])
    tensorboard.close()

    ratio = median(times["trainlab"]) / median(times["plain"])
    rows = [{"loop": name, "median epoch s": median(t), "images/s": args.images / median(t),
             "all epochs s": " ".join(f"{x:.2f}" for x in t)} for name, t in times.items()]
    print(table(rows))
    print(f"trainlab / plain = {ratio:.3f}  (target <= 1.03; {placement.precision}, channels_last={placement.channels_last})")
    save("loop_overhead", {"ratio": ratio, "target": 1.03, "images": args.images, "batch_size": args.batch_size,
                           "precision": placement.precision, "channels_last": placement.channels_last, "rows": rows})


if __name__ == "__main__":
    main()
