"""Finding a pretrained weights file: a path the config gives, $TRAINLAB_WEIGHTS, torch's hub cache, or a download.

Published weights are named `<name>-<first hex digits of their SHA-256>.pth` (torchvision's convention); the
digits are checked wherever the file comes from. Offline without the file, the error says which file to
download, from where, and where to put it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from trainlab.errors import UsageError
from trainlab.models.weights import check_hash_prefix

WEIGHTS_ENV = "TRAINLAB_WEIGHTS"


@dataclass(frozen=True)
class PublishedWeights:
    filename: str  # name-<sha256 prefix>.pth
    url: str
    megabytes: int


TORCHVISION = "https://download.pytorch.org/models/"
IMAGENET_WEIGHTS = {
    "vgg16": PublishedWeights("vgg16-397923af.pth", TORCHVISION + "vgg16-397923af.pth", 528),
    "vgg16_bn": PublishedWeights("vgg16_bn-6c64b313.pth", TORCHVISION + "vgg16_bn-6c64b313.pth", 528),
}


def hub_checkpoints() -> Path:
    """Where torch.hub keeps downloaded weights (~/.cache/torch/hub/checkpoints, or under $TORCH_HOME)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def find_weights(spec: str, model: str) -> Path:
    """The weights file `spec` names for `model`: "imagenet" (its published ImageNet weights, found or downloaded)
    or a path. Raises UsageError with what to do when there is none."""
    if spec != "imagenet":
        path = Path(spec).expanduser()
        if not path.is_file():
            raise UsageError(f"model.weights: {path} is not a file; expected a PyTorch weights file (.pth) for {model}")
        check_hash_prefix(path)
        return path
    published = IMAGENET_WEIGHTS[model]
    places = [Path(os.environ[WEIGHTS_ENV]).expanduser()] if os.environ.get(WEIGHTS_ENV) else []
    places.append(hub_checkpoints())
    for folder in places:
        if (folder / published.filename).is_file():
            check_hash_prefix(folder / published.filename)
            return folder / published.filename
    return _download(published, places, model)


def _download(published: PublishedWeights, places: list[Path], model: str) -> Path:
    target = hub_checkpoints() / published.filename
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        prefix = published.filename.rsplit("-", 1)[1].split(".")[0]
        torch.hub.download_url_to_file(published.url, str(target), hash_prefix=prefix, progress=True)
    except (OSError, RuntimeError) as e:  # URLError is an OSError; a hash mismatch a RuntimeError
        looked = ", ".join(str(folder) for folder in places)
        raise UsageError(
            f"the ImageNet weights of {model} are not here and cannot be downloaded ({e}).\n"
            f"Download {published.url} ({published.megabytes} MB) where a network is reachable and put "
            f"{published.filename} into ${WEIGHTS_ENV} or {hub_checkpoints()} (looked in: {looked}), "
            f"or pass its path: model.weights=/path/to/{published.filename}"
        ) from None
    return target
