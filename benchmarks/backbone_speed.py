"""EfficientNet-Lite0's speed on this CPU by input size: the forward pass that computes frozen features, and a
training step of the whole network (fine-tuning).

    python -m benchmarks.backbone_speed [--sizes 64 96 128 160 224] [--seconds 4]

CIFAR-10-sized inputs (3x32x32) resized inside the model, ImageNet weights, channels-last. Forward: eval mode,
no gradients, bf16 autocast (fp32 for comparison), eager in batches of 256 and of 32 (the feature pass's
batch), and compiled as a frozen backbone is (`trainlab.models.compiled`, chunks of 32). Training: batch 32,
bf16 autocast, SGD. Each figure is images per second over `--seconds` after a warm-up call (compilation).
"""

from __future__ import annotations

import argparse
import time

import torch

from benchmarks.common import save, table
from trainlab.models import MODELS
from trainlab.models.compiled import CompiledBackbone


def rate(step, images: int, seconds: float) -> float:
    step()  # warm-up: kernels are built on first use
    started, done = time.perf_counter(), 0
    while time.perf_counter() - started < seconds:
        step()
        done += images
    return done / (time.perf_counter() - started)


def measure(size: int, seconds: float) -> dict:
    torch.manual_seed(0)
    model = MODELS.build("efficientnet_lite0", in_channels=3, num_classes=10, image_size=(32, 32), input_size=size)
    model = model.to(memory_format=torch.channels_last)
    images = torch.randn(256, 3, 32, 32).to(memory_format=torch.channels_last)
    row = {"input": f"{size}x{size}"}
    model.eval()
    compiled = CompiledBackbone(model.extract, print)
    variants = {
        "fwd bf16 b256": (model.extract, 256, True), "fwd bf16 b32": (model.extract, 32, True),
        "fwd fp32 b32": (model.extract, 32, False), "fwd bf16 compiled b32": (compiled, 32, True),
    }  # fmt: skip
    for name, (extract, batch, bf16) in variants.items():
        def forward(extract=extract, batch=batch, bf16=bf16):
            with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                for part in images.split(batch):
                    extract(part)

        row[f"{name} img/s"] = rate(forward, len(images), seconds)
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    batch, targets = images[:32], torch.randint(0, 10, (32,))

    def train_step():
        optimizer.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = torch.nn.functional.cross_entropy(model(batch), targets)
        loss.backward()
        optimizer.step()

    row["train bf16 img/s"] = rate(train_step, len(batch), seconds * 1.5)
    return row


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[96, 128, 160, 224])
    parser.add_argument("--seconds", type=float, default=4.0)
    args = parser.parse_args()
    rows = [measure(size, args.seconds) for size in args.sizes]
    print(table(rows))
    save("backbone_speed", {"model": "efficientnet_lite0", "threads": torch.get_num_threads(), "rows": rows})


if __name__ == "__main__":
    main()
