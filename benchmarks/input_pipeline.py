"""One epoch of input from the cached uint8 array against a per-file image DataLoader.

    TRAINLAB_DATA=<data folder> python -m benchmarks.input_pipeline [--workers 0 2]

Both produce the same normalised (B, 3, 32, 32) float batches of the CIFAR-10 training
set; no model runs, so the figure is the input cost alone.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from PIL import Image

from benchmarks.common import save, table, timed
from trainlab.data import data_root
from trainlab.data.loader import ArrayLoader, channel_stats
from trainlab.data.image_folders import load_image_folder


class JpegFiles(torch.utils.data.Dataset):
    """The per-file baseline: open and decode every image at every epoch."""

    def __init__(self, root, mean, std):
        self.files = sorted((p, i) for i, c in enumerate(sorted(d.name for d in root.iterdir())) for p in (root / c).iterdir())
        self.mean, self.std = torch.tensor(mean).view(-1, 1, 1).float(), torch.tensor(std).view(-1, 1, 1).float()

    def __len__(self):
        return len(self.files)

    def __getitem__(self, i):
        path, label = self.files[i]
        with Image.open(path) as image:
            pixels = torch.from_numpy(np.array(image.convert("RGB"))).permute(2, 0, 1).float()
        return (pixels - self.mean) / self.std, label


def consume(loader) -> int:
    return sum(len(y) for _, y in loader)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--batch-size", type=int, default=128)
    args = parser.parse_args()
    root = data_root() / "cifar10-jpeg" / "train"
    load_seconds, (arrays, _) = timed(load_image_folder, root)
    mean, std = channel_stats(arrays.images)
    images = torch.from_numpy(np.array(arrays.images))
    loader = ArrayLoader(images, torch.from_numpy(arrays.labels), args.batch_size, mean=mean, std=std, shuffle=True)

    rows = [{"input": "cached array", "epoch s": timed(consume, loader)[0], "images": len(arrays)}]
    for workers in args.workers:
        files = torch.utils.data.DataLoader(JpegFiles(root, mean, std), batch_size=args.batch_size, shuffle=True,
                                            num_workers=workers)
        rows.append({"input": f"per-file DataLoader, {workers} workers", "epoch s": timed(consume, files)[0],
                     "images": len(files.dataset)})
    for row in rows:
        row["images/s"] = row["images"] / row["epoch s"]
        row["x slower than array"] = row["epoch s"] / rows[0]["epoch s"]
    print(table(rows))
    print(f"cache load (hit, memory-mapped) {load_seconds:.3f} s")
    save("input_pipeline", {"rows": rows, "cache_load_s": load_seconds})


if __name__ == "__main__":
    main()
