"""A frozen backbone's outputs, computed once: the head of a transfer model then trains on them.

With the backbone frozen (eval mode, no gradients) and no augmentation, an image's features never change, so
running the backbone every epoch repeats the same work. `cached_features` runs it once per split and keeps
the result on disk beside the image cache, keyed by everything the features depend on: the backbone's
weights, the model's class and input size, the precision, and the split's images. `FeatureLoader` then
serves them in the order the image loader would have served the images (same seed and epoch), so training
on cached features takes the same steps as training on images.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from trainlab.data.base import cache_root
from trainlab.data.loader import ArrayLoader, seeded_generator
from trainlab.errors import UsageError
from trainlab.utils.io import atomic_open

if TYPE_CHECKING:
    from trainlab.engine.device import Placement

FEATURES_DIR = "features"  # under the image cache folder
# The feature cache keeps its most recently used files within this many GB ($TRAINLAB_FEATURE_CACHE_GB): one
# CIFAR-10 split of EfficientNet-Lite0 features is 0.2-0.5 GB, and every new setting or backbone adds files.
LIMIT_ENV, DEFAULT_LIMIT_GB = "TRAINLAB_FEATURE_CACHE_GB", 4.0
# Images per forward pass. Small batches are the fast ones on a CPU: EfficientNet-Lite0 at 160x160 computes
# 225 images/s in batches of 32 and 78 in batches of 256, whose activations (GBs) spill out of the caches.
BATCH = 32


class FeatureLoader:
    """Batches of precomputed features and labels, in the order `images` (the split's ArrayLoader) would give."""

    def __init__(self, features: torch.Tensor, images: ArrayLoader):
        self.features, self.images = features, images
        self.labels, self.batch_size = images.labels, images.batch_size

    def set_epoch(self, epoch: int) -> None:
        self.images.set_epoch(epoch)

    def examples(self, indices: Sequence[int]) -> list[np.ndarray]:
        return self.images.examples(indices)

    def __len__(self) -> int:
        return len(self.images)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = self.images.epoch_order(seeded_generator(self.images.seed, self.images.epoch)).to(self.features.device)
        for start in range(0, len(self.labels), self.batch_size):
            index = order[start : start + self.batch_size]
            yield self.features[index], self.labels[index]


def feature_key(model: nn.Module, images: torch.Tensor, placement: Placement) -> str:
    """What a split's features depend on: backbone weights and buffers, model class, input size, precision,
    compilation, images."""
    digest = hashlib.sha256()
    head = {id(t) for module in model.head_modules() for t in [*module.parameters(), *module.buffers()]}
    for name, tensor in model.state_dict(keep_vars=True).items():
        if id(tensor) not in head:
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    compiled = getattr(model, "compiled_backbone", None) is not None  # the same features up to rounding
    setting = f"{type(model).__qualname__}|{getattr(model, 'input_size', None)}|{placement.precision}|{placement.device.type}"
    setting += "|compiled" if compiled else ""
    setting += f"|{model.feature_setting}" if model.feature_setting else ""
    digest.update(setting.encode())
    digest.update(images.cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:32]


@torch.no_grad()  # not inference_mode: the head trains on these, and autograd must be able to save them
def compute_features(model: nn.Module, loader: ArrayLoader, placement: Placement) -> torch.Tensor:
    """The backbone's outputs (N, ...) for every image of `loader`, in the split's order, as float32."""
    was_training = model.training
    model.eval()
    try:
        chunks = []
        unshuffled = ArrayLoader(loader.images, loader.labels, BATCH, preprocess=loader.preprocess,
                                 channels_last=loader.channels_last)  # fmt: skip
        for images, _ in unshuffled:
            with placement.autocast():
                chunks.append(model.backbone_outputs(images).float())
        return torch.cat(chunks)
    finally:
        model.train(was_training)


def cached_features(
    model: nn.Module, loader: ArrayLoader, placement: Placement, say: Callable[[str], None] = lambda line: None,
) -> tuple[torch.Tensor, bool]:  # fmt: skip
    """The split's features from the disk cache, or computed and stored there; and whether they came from it."""
    path = cache_root() / FEATURES_DIR / f"{feature_key(model, loader.images, placement)}.npy"
    if path.is_file():
        try:
            features = torch.from_numpy(np.load(path)).to(placement.device)
            _touch(path)  # recently used: pruned last
            return features, True
        except (OSError, ValueError):
            say(f"the feature cache {path} is unreadable; computing the features again")
    features = compute_features(model, loader, placement)
    _store(path, features, say)
    prune(path.parent, keep=path, say=say)
    return features, False


def cache_limit_bytes() -> int:
    """$TRAINLAB_FEATURE_CACHE_GB in bytes (default 4 GB); a value that is not a number >= 0 is a UsageError."""
    text = os.environ.get(LIMIT_ENV, "").strip()
    try:
        limit = float(text) if text else DEFAULT_LIMIT_GB
    except ValueError:
        limit = -1.0
    if not limit >= 0:
        raise UsageError(f"${LIMIT_ENV}={text!r}: expected the feature cache's size limit in GB, a number >= 0")
    return int(limit * 1e9)


def prune(folder: Path, keep: Path | None = None, say: Callable[[str], None] = lambda line: None) -> list[Path]:
    """Delete the least recently used feature files until the folder fits in `cache_limit_bytes()`; `keep` (the file
    just written) stays whatever its size. Returns the files deleted; a file that cannot be deleted is left."""
    limit = cache_limit_bytes()
    try:
        entries = [(stat.st_mtime, stat.st_size, p) for p in folder.glob("*.npy") for stat in [p.stat()]]
    except OSError:
        return []
    total = sum(size for _, size, _ in entries)
    removed: list[Path] = []
    for _, size, path in sorted(entries, key=lambda entry: entry[0]):  # oldest use first
        if total <= limit:
            break
        if path == keep:
            continue
        try:
            path.unlink()
        except OSError:
            continue
        total -= size
        removed.append(path)
    if removed:
        say(f"feature cache {folder}: removed {len(removed)} least recently used file(s) to stay within "
            f"{limit / 1e9:g} GB (${LIMIT_ENV})")  # fmt: skip
    return removed


def _touch(path: Path) -> None:
    try:
        os.utime(path)
    except OSError:
        pass  # a read-only cache still serves; it is only pruned in a different order


def _store(path: Path, features: torch.Tensor, say: Callable[[str], None]) -> None:
    """Write the cache atomically; a cache that cannot be written (read-only, full disk) only costs time later."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_open(path, "wb") as f:
            np.save(f, features.cpu().numpy())
    except OSError as e:
        say(f"could not cache the features in {path.parent} ({e.strerror or e}); they will be computed again next time")
