"""Image datasets: class folders (decoded once, then cached), CIFAR-10, and scikit-learn's digits.

Every builder returns uint8 (N, H, W, C) images, C = 1 for greyscale and 3 for colour.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import multiprocessing
import os
import pickle
import re
from pathlib import Path

import numpy as np
from PIL import Image

from trainlab.data.base import DATA_ENV, DATASETS, ImageArrays, ImageDataset, cache_root, data_root
from trainlab.data.download import download, extract_tar
from trainlab.errors import DataError, UsageError
from trainlab.utils.io import atomic_open

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
# A pool of 2 decodes CIFAR-10's 50,000 training JPEGs in 3.2 s instead of 4.7 s; below a few
# thousand files, starting the processes costs more than it saves.
POOL_MIN_FILES = 2000
CHUNK_FILES = 500  # images per task handed to a decoding process
CACHE_VERSION = 1  # bump when the cached arrays change meaning, to retire old caches

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR10_ARCHIVE = "cifar-10-python.tar.gz"
CIFAR10_BATCHES = "cifar-10-batches-py"


# ---------------------------------------------------------------- class folders


@dataclasses.dataclass
class _Listing:
    """The files of one split folder, in label order, and a key that changes when any of them does."""

    root: Path
    classes: list[str]
    files: list[str]  # str, not Path: building 60,000 Paths costs half a second
    labels: np.ndarray  # (N,) int64
    key: str  # sha1 hex


def _visible(entries: list[os.DirEntry]) -> list[os.DirEntry]:
    return sorted((e for e in entries if not e.name.startswith(".")), key=lambda e: e.name)


def _list_folder(root: Path, image_size: int | None) -> _Listing:
    if not root.is_dir():
        raise UsageError(f"image folder not found: {root}")
    root = root.resolve()
    classes: list[str] = []
    files: list[str] = []
    labels: list[int] = []
    digest = hashlib.sha1(f"v{CACHE_VERSION}\0{root}\0{image_size}\n".encode())
    for class_entry in _visible(list(os.scandir(root))):
        if not class_entry.is_dir():
            raise DataError(f"{class_entry.path}: expected only class folders (<class>/<image files>) in {root}")
        entries = _visible(list(os.scandir(class_entry.path)))
        if not entries:
            raise DataError(f"class folder {class_entry.path} holds no images")
        for entry in entries:
            if os.path.splitext(entry.name)[1].lower() not in IMAGE_EXTENSIONS:
                expected = " ".join(sorted(IMAGE_EXTENSIONS))
                raise DataError(f"{entry.path} is not an image file: expected one of {expected}")
            stat = entry.stat()
            digest.update(f"{class_entry.name}/{entry.name}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
            files.append(entry.path)
            labels.append(len(classes))
        classes.append(class_entry.name)
    if not classes:
        raise DataError(f"image folder {root} is empty: expected class folders <class>/<image files>")
    return _Listing(root, classes, files, np.array(labels, dtype=np.int64), digest.hexdigest())


def _decode_image(path: str, image_size: int | None) -> np.ndarray:
    """(H, W) for a greyscale ('L') image, (H, W, 3) for any other."""
    try:
        with Image.open(path) as image:
            if image.mode != "L":
                image = image.convert("RGB")
            if image_size is not None and image.size != (image_size, image_size):
                image = image.resize((image_size, image_size), Image.Resampling.BILINEAR)
            return np.asarray(image)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise DataError(f"cannot decode image {path}: {e}") from e


def _decode_chunk(paths: list[str], image_size: int | None) -> list[np.ndarray]:
    return [_decode_image(path, image_size) for path in paths]


def _workers() -> int:
    # The CPUs this process may run on, which a container or job scheduler can set below the machine's count.
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _decode_all(files: list[str], image_size: int | None) -> list[np.ndarray]:
    workers = _workers()
    if len(files) < POOL_MIN_FILES or workers < 2:
        return _decode_chunk(files, image_size)
    chunks = [files[i : i + CHUNK_FILES] for i in range(0, len(files), CHUNK_FILES)]
    with multiprocessing.get_context().Pool(workers) as pool:
        decoded = pool.imap(functools.partial(_decode_chunk, image_size=image_size), chunks)
        return [array for chunk in decoded for array in chunk]


def _stack(files: list[str], arrays: list[np.ndarray]) -> np.ndarray:
    """One (N, H, W, C) array; C = 1 only when every image is greyscale."""
    height, width = arrays[0].shape[:2]
    for path, array in zip(files, arrays):
        if array.shape[:2] != (height, width):
            raise DataError(
                f"{path} is {array.shape[1]}x{array.shape[0]} pixels, but {files[0]} is {width}x{height}: "
                "images of one dataset must share a size; set data.image_size to resize them all"
            )
    grey = [array.ndim == 2 for array in arrays]
    if all(grey) or not any(grey):
        return np.stack(arrays).reshape(len(arrays), height, width, -1)  # (N, H, W) or (N, H, W, 3) -> (N, H, W, C)
    images = np.empty((len(arrays), height, width, 3), dtype=np.uint8)
    for i, array in enumerate(arrays):
        images[i] = array.reshape(height, width, -1)  # a grey (H, W, 1) broadcasts into 3 channels
    return images


def _read(listing: _Listing, image_size: int | None) -> ImageArrays:
    return ImageArrays(_stack(listing.files, _decode_all(listing.files, image_size)), listing.labels)


def read_image_folder(root: Path, image_size: int | None = None) -> tuple[ImageArrays, list[str]]:
    """Decode one split folder `root/<class>/<image files>`; classes are the sorted folder names.

    With `image_size`, every image is resized to image_size x image_size (bilinear);
    without, all images must have the same size.
    """
    listing = _list_folder(Path(root), image_size)
    return _read(listing, image_size), listing.classes


def _cache_stem(listing: _Listing, image_size: int | None) -> tuple[str, str]:
    """(prefix shared by every cache of this folder and size, file stem of this listing's cache)."""
    prefix = re.sub(r"[^A-Za-z0-9]+", "-", str(listing.root)).strip("-")
    if image_size is not None:
        prefix += f"_{image_size}px"
    return prefix, f"{prefix}-{listing.key[:16]}"


def _load_cached(folder: Path, stem: str, listing: _Listing) -> ImageArrays | None:
    meta_path = folder / f"{stem}.json"
    if not meta_path.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        images = np.load(folder / f"{stem}.npy", mmap_mode="r")
        labels = np.load(folder / f"{stem}.labels.npy")
    except (OSError, ValueError):
        return None  # a cache that cannot be read is rebuilt, not reported
    if meta.get("classes") != listing.classes or len(images) != len(labels) or len(labels) != len(listing.files):
        return None
    return ImageArrays(images, labels)


def _save_cache(folder: Path, prefix: str, stem: str, arrays: ImageArrays, classes: list[str]) -> None:
    # The .json goes last: its presence is what marks a cache as complete.
    with atomic_open(folder / f"{stem}.npy", "wb") as f:
        np.save(f, arrays.images)
    with atomic_open(folder / f"{stem}.labels.npy", "wb") as f:
        np.save(f, arrays.labels)
    with atomic_open(folder / f"{stem}.json", "w", encoding="utf-8") as f:
        json.dump({"classes": classes, "count": len(arrays)}, f)
    stale = re.compile(re.escape(prefix) + r"-[0-9a-f]{16}\.(npy|labels\.npy|json)")
    for path in folder.iterdir():
        if stale.fullmatch(path.name) and not path.name.startswith(f"{stem}."):
            path.unlink(missing_ok=True)


def _load_listed(listing: _Listing, image_size: int | None) -> ImageArrays:
    folder = cache_root()
    prefix, stem = _cache_stem(listing, image_size)
    cached = _load_cached(folder, stem, listing)
    if cached is not None:
        return cached
    arrays = _read(listing, image_size)
    _save_cache(folder, prefix, stem, arrays, listing.classes)
    return arrays


def load_image_folder(root: Path, image_size: int | None = None) -> tuple[ImageArrays, list[str]]:
    """`read_image_folder`, decoded once and cached under `cache_root()`.

    The cache is keyed by every file's path, size and modification time, so adding,
    removing or touching a file rebuilds it; a cache hit returns read-only memory maps.
    """
    listing = _list_folder(Path(root), image_size)
    return _load_listed(listing, image_size), listing.classes


def _resolve_root(root: str) -> Path:
    """`root` as given (relative to the working directory), else under `data_root()`."""
    path = Path(root).expanduser()
    candidates = [path] if path.is_absolute() else [Path.cwd() / path, data_root() / path]
    for candidate in candidates:
        if candidate.exists():
            return candidate.resolve()
    raise UsageError(f"dataset folder '{root}' not found: looked for {' and '.join(map(str, candidates))}")


def _in_colour(arrays: ImageArrays) -> ImageArrays:
    if arrays.images.shape[-1] == 3:
        return arrays
    return ImageArrays(np.repeat(arrays.images, 3, axis=-1), arrays.labels)


@DATASETS.register()
def image_folder(root: str, image_size: int | None = None) -> ImageDataset:
    """Your own images in class folders: root/train/<class>/* and root/test/<class>/*."""
    folder = _resolve_root(root)
    train_listing = _list_folder(folder / "train", image_size)
    test_listing = _list_folder(folder / "test", image_size)
    if train_listing.classes != test_listing.classes:
        raise DataError(
            f"{train_listing.root} and {test_listing.root} must hold the same class folders: "
            f"{train_listing.classes} vs {test_listing.classes}"
        )
    train = _load_listed(train_listing, image_size)
    test = _load_listed(test_listing, image_size)
    if train.images.shape[-1] != test.images.shape[-1]:  # one split all greyscale, the other not
        train, test = _in_colour(train), _in_colour(test)
    if train.images.shape[1:] != test.images.shape[1:]:
        raise DataError(
            f"train images in {train_listing.root} are {train.images.shape[2]}x{train.images.shape[1]} pixels "
            f"but test images in {test_listing.root} are {test.images.shape[2]}x{test.images.shape[1]}: "
            "set data.image_size to resize them all"
        )
    return ImageDataset(train, test, train_listing.classes, source=f"image folder {folder}")


# ---------------------------------------------------------------- CIFAR-10


def _unpickle(path: Path) -> dict:
    # The official release is a set of pickles; these come from the MD5-checked archive or from the user.
    try:
        with open(path, "rb") as f:
            return pickle.load(f, encoding="bytes")
    except FileNotFoundError as e:
        raise DataError(
            f"missing {path}: the CIFAR-10 python release has data_batch_1..5, test_batch and batches.meta"
        ) from e
    except (OSError, pickle.UnpicklingError, EOFError, ValueError, TypeError) as e:
        raise DataError(f"{path} is not a CIFAR-10 python batch: {e}") from e


def _read_cifar_batch(path: Path, num_classes: int) -> ImageArrays:
    batch = _unpickle(path)
    try:
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
    except (KeyError, TypeError, ValueError) as e:
        raise DataError(f"{path} is not a CIFAR-10 python batch: no {e}") from e
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(labels) != len(data):
        raise DataError(f"{path}: expected (N, 3072) pixels and N labels, got {data.shape} and {len(labels)}")
    if len(labels) and not 0 <= labels.min() <= labels.max() < num_classes:
        raise DataError(f"{path}: labels must lie in [0, {num_classes}), got {labels.min()}..{labels.max()}")
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)  # (N, 3072) channel planes -> (N, 32, 32, 3)
    return ImageArrays(np.ascontiguousarray(images), labels)


def _read_cifar_batches(folder: Path) -> ImageDataset:
    """The official python release: data_batch_1..5, test_batch and batches.meta, all pickles.

    Reading all of it takes about 0.3 s, so it is not cached.
    """
    meta = _unpickle(folder / "batches.meta")
    try:
        classes = [name.decode() for name in meta[b"label_names"]]
    except (KeyError, TypeError, AttributeError) as e:
        raise DataError(f"{folder / 'batches.meta'} has no list of label_names") from e
    parts = [_read_cifar_batch(folder / f"data_batch_{i}", len(classes)) for i in range(1, 6)]
    train = ImageArrays(np.concatenate([p.images for p in parts]), np.concatenate([p.labels for p in parts]))
    test = _read_cifar_batch(folder / "test_batch", len(classes))
    return ImageDataset(train, test, classes, source=f"CIFAR-10 python batches {folder}")


def _download_cifar10(jpeg: Path, batches: Path) -> None:
    archive = batches.parent / CIFAR10_ARCHIVE
    try:
        download(CIFAR10_URL, archive, CIFAR10_MD5)
    except UsageError as e:
        raise UsageError(
            f"CIFAR-10 not found: neither {jpeg}/ nor {batches}/ exists, and downloading it failed.\n{e}\n"
            f"(the archive is extracted on the next run). Or put an image-folder copy at {jpeg}/ "
            "(train/<class>/*.jpg and test/<class>/*.jpg).\n"
            f"Both paths are under ${DATA_ENV} (now {data_root()}): "
            f"set {DATA_ENV} to the folder that holds cifar10-jpeg/ or cifar10/ if you keep them elsewhere."
        ) from e
    extract_tar(archive, batches.parent)
    if not batches.is_dir():
        raise DataError(f"{archive} did not contain {CIFAR10_BATCHES}/")


@DATASETS.register()
def cifar10(root: str | None = None) -> ImageDataset:
    """CIFAR-10: 50,000 + 10,000 colour 32x32 images in 10 classes; downloaded when not found."""
    if root is not None:
        folder = _resolve_root(root)
        if (folder / "train").is_dir():
            return dataclasses.replace(image_folder(str(folder)), source=f"CIFAR-10 image folder {folder}")
        batches = folder if (folder / "batches.meta").is_file() else folder / CIFAR10_BATCHES
        if not batches.is_dir():
            raise UsageError(
                f"{folder} holds neither train/ and test/ class folders nor the CIFAR-10 python batches"
            )
        return _read_cifar_batches(batches)
    jpeg = data_root() / "cifar10-jpeg"
    if jpeg.is_dir():
        return dataclasses.replace(image_folder(str(jpeg)), source=f"CIFAR-10 image folder {jpeg}")
    batches = data_root() / "cifar10" / CIFAR10_BATCHES
    if not batches.is_dir():
        _download_cifar10(jpeg, batches)
    return _read_cifar_batches(batches)


# ---------------------------------------------------------------- digits


@DATASETS.register()
def digits() -> ImageDataset:
    """scikit-learn's 1,797 greyscale 8x8 digits, embedded: nothing to download."""
    # Imported here: scikit-learn takes most of a second to import and only this builder needs it.
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    images = np.round(bunch.images * (255 / 16)).astype(np.uint8)[..., None]  # (1797, 8, 8) in 0..16 -> (1797, 8, 8, 1)
    labels = bunch.target.astype(np.int64)
    # A fixed seed, not the run's: every run is scored on the same test images.
    train, test = train_test_split(np.arange(len(labels)), test_size=0.2, stratify=labels, random_state=0)
    return ImageDataset(
        train=ImageArrays(images[train], labels[train]),
        test=ImageArrays(images[test], labels[test]),
        classes=[str(digit) for digit in range(10)],
        source="scikit-learn digits (embedded)",
    )
