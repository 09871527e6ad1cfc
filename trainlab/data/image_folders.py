"""Your own images in class folders (root/train/<class>/*, root/test/<class>/*): listed, decoded in a pool of
processes, and cached as arrays keyed by the files' names, sizes and times, so a second run reads no JPEG.

Every reader returns uint8 (N, H, W, C) images, C = 1 for greyscale and 3 for colour.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import multiprocessing
import os
import re
import signal
from pathlib import Path

import numpy as np
from PIL import Image

from trainlab.data.base import (
    CACHE_ENV,
    DATASETS,
    IMAGE_EXTENSIONS,
    SPLIT_INPUTS,
    SYSTEM_NAMES,
    ImageArrays,
    ImageDataset,
    cache_root,
    dataset_folder,
    warn,
)
from trainlab.data.preprocess import convert_image
from trainlab.errors import DataError, UsageError
from trainlab.utils.io import atomic_open, remove_stale_temporaries
from trainlab.utils.processes import usable_cores

# A pool of 2 decodes CIFAR-10's 50,000 training JPEGs in 3.2 s instead of 4.7 s; below a few
# thousand files, starting the processes costs more than it saves.
POOL_MIN_FILES = 2000
CHUNK_FILES = 500  # images per task handed to a decoding process
CACHE_VERSION = 1  # bump when the cached arrays change meaning, to retire old caches
SLUG_CHARS = 60  # of the data folder's path in a cache file's name: the end, which tells folders apart


@dataclasses.dataclass
class _Listing:
    """The files of one split folder, in label order, and a key that changes when any of them does."""

    root: Path
    classes: list[str]
    files: list[str]  # str, not Path: building 60,000 Paths costs half a second
    labels: np.ndarray  # (N,) int64
    key: str  # sha1 hex


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")  # a file name that is not UTF-8 keeps its bytes


def _visible(entries: list[os.DirEntry]) -> list[os.DirEntry]:
    """Entries that may be classes or images, by name: not hidden (.DS_Store, AppleDouble ._<name>) nor SYSTEM_NAMES."""
    kept = (e for e in entries if not e.name.startswith(".") and e.name.lower() not in SYSTEM_NAMES)
    return sorted(kept, key=lambda e: e.name)


def _scan(root: Path) -> tuple[Path, dict[str, list[os.DirEntry]]]:
    """`root` resolved, and each of its class folders (sorted by name) with its image files, empty ones included."""
    if not root.is_dir():
        raise UsageError(f"image folder not found: {root}")
    root = root.resolve()
    folders: dict[str, list[os.DirEntry]] = {}
    for class_entry in _visible(list(os.scandir(root))):
        if not class_entry.is_dir():
            raise DataError(f"{class_entry.path}: expected only class folders (<class>/<image files>) in {root}")
        entries = _visible(list(os.scandir(class_entry.path)))
        for entry in entries:
            if os.path.splitext(entry.name)[1].lower() not in IMAGE_EXTENSIONS:
                expected = " ".join(sorted(IMAGE_EXTENSIONS))
                raise DataError(f"{entry.path} is not an image file: expected one of {expected}")
        folders[class_entry.name] = entries
    if not folders:
        raise DataError(f"image folder {root} is empty: expected class folders <class>/<image files>")
    return root, folders


def _listing(root: Path, folders: dict[str, list[os.DirEntry]], classes: list[str], image_size: int | None) -> _Listing:
    """The image files of `folders`, label i for the folder named classes[i]; a class without a folder here has none."""
    files: list[str] = []
    labels: list[int] = []
    digest = hashlib.sha1(_utf8(f"v{CACHE_VERSION}\0{root}\0{image_size}\0{'/'.join(classes)}\n"))
    for label, name in enumerate(classes):
        for entry in folders.get(name, []):
            stat = entry.stat()
            digest.update(_utf8(f"{name}/{entry.name}\0{stat.st_size}\0{stat.st_mtime_ns}\n"))
            files.append(entry.path)
            labels.append(label)
    return _Listing(root, list(classes), files, np.array(labels, dtype=np.int64), digest.hexdigest())


def _list_folder(root: Path, image_size: int | None) -> _Listing:
    """One split folder on its own: its classes are its class folders that hold images; empty ones are left out."""
    root, folders = _scan(root)
    classes = [name for name, entries in folders.items() if entries]
    if not classes:
        raise DataError(f"image folder {root} holds no images: its class folders {', '.join(folders)} are empty")
    empty = [name for name, entries in folders.items() if not entries]
    if empty:
        warn(f"class folders without images, left out: {', '.join(str(root / name) for name in empty)}; "
             f"the classes are {', '.join(classes)}")  # fmt: skip
    return _listing(root, folders, classes, image_size)


def _decode_image(path: str, image_size: int | None) -> np.ndarray:
    """(H, W) for a greyscale ('L') image, (H, W, 3) for any other."""
    try:
        with Image.open(path) as image:
            return convert_image(image, size=(image_size, image_size) if image_size is not None else None)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise DataError(f"cannot decode image {path}: {e}") from e


def _decode_chunk(paths: list[str], image_size: int | None) -> list[np.ndarray]:
    return [_decode_image(path, image_size) for path in paths]


def _worker_signals() -> None:
    """Pool initializer. Ctrl-C reaches every process of the terminal's group: the parent alone handles it,
    and ends the pool. SIGTERM (pool.terminate) ends a worker at once, not through a handler
    inherited from the parent."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for name in ("SIGTERM", "SIGHUP"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_DFL)


def _decode_all(files: list[str], image_size: int | None) -> list[np.ndarray]:
    workers = usable_cores()
    if len(files) < POOL_MIN_FILES or workers < 2:
        return _decode_chunk(files, image_size)
    chunks = [files[i : i + CHUNK_FILES] for i in range(0, len(files), CHUNK_FILES)]
    pool = multiprocessing.get_context().Pool(workers, initializer=_worker_signals)
    try:
        decoded = pool.imap(functools.partial(_decode_chunk, image_size=image_size), chunks)
        return [array for chunk in decoded for array in chunk]
    finally:  # also after Ctrl-C or a bad image: no worker outlives the call
        pool.terminate()
        pool.join()


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
    """Decode one split folder `root/<class>/<image files>`.

    The classes are the names of the class folders that hold images, sorted (Python's string order:
    "B" before "a"); label i is classes[i]. Empty class folders are left out with a warning; hidden
    files (.DS_Store, ._<name>) and SYSTEM_NAMES (Thumbs.db, desktop.ini) are skipped.
    With `image_size`, every image is resized to image_size x image_size (bilinear);
    without, all images must have the same size.
    """
    listing = _list_folder(Path(root), image_size)
    return _read(listing, image_size), listing.classes


# A cache is three files `<stem>.npy`, `<stem>.labels.npy`, `<stem>.json` (written last: it marks the
# cache complete), stem = <end of the folder's path>-<hash of the path>[_<size>px]-<hash of the listing>.
# Each is written through utils.io.atomic_open, whose temporary files name their writer.
_CACHE_SUFFIX = r"-[0-9a-f]{16}\.(npy|labels\.npy|json)"


def _cache_stem(listing: _Listing, image_size: int | None) -> tuple[str, str]:
    """(prefix shared by every cache of this folder and size, file stem of this listing's cache)."""
    root = os.fsencode(listing.root)
    # Two folders whose paths differ only in punctuation ("my pets", "my-pets") share a slug, not a hash.
    slug = re.sub(r"[^A-Za-z0-9]+", "-", str(listing.root)).strip("-")[-SLUG_CHARS:].lstrip("-")
    prefix = f"{slug}-{hashlib.sha1(root).hexdigest()[:8]}"
    if image_size is not None:
        prefix += f"_{image_size}px"
    return prefix, f"{prefix}-{listing.key[:16]}"


def _old_prefix(listing: _Listing, image_size: int | None) -> str:
    """The prefix of this folder's caches before the path's hash was part of their names."""
    prefix = re.sub(r"[^A-Za-z0-9]+", "-", str(listing.root)).strip("-")
    return prefix + (f"_{image_size}px" if image_size is not None else "")


def _load_cached(folder: Path, stem: str, listing: _Listing) -> ImageArrays | None:
    try:
        meta = json.loads((folder / f"{stem}.json").read_text(encoding="utf-8"))
        images = np.load(folder / f"{stem}.npy", mmap_mode="r")
        labels = np.load(folder / f"{stem}.labels.npy")
    except (OSError, ValueError):
        return None  # no cache yet, or one that cannot be read: it is rebuilt, not reported
    if meta.get("classes") != listing.classes or len(images) != len(labels) or len(labels) != len(listing.files):
        return None
    return ImageArrays(images, labels)


def _save_cache(folder: Path, prefix: str, stem: str, arrays: ImageArrays, listing: _Listing, old_prefix: str) -> None:
    """Write the cache, then delete this folder's other caches. A cache that cannot be written (a read-only
    folder, a full disk) is not an error: the run goes on from memory, with a warning."""
    written: list[Path] = []
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_open(folder / f"{stem}.npy", "wb") as f:
            np.save(f, arrays.images)
        written.append(folder / f"{stem}.npy")
        with atomic_open(folder / f"{stem}.labels.npy", "wb") as f:
            np.save(f, arrays.labels)
        written.append(folder / f"{stem}.labels.npy")
        with atomic_open(folder / f"{stem}.json", "w") as f:
            json.dump({"classes": listing.classes, "count": len(arrays)}, f)
    except OSError as e:
        for path in written:  # no use without the rest, and the disk may be full
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)
        warn(
            f"cannot write the image cache in {folder} ({e.strerror or e}): the images are decoded in memory, and "
            f"decoded again by the next run; set {CACHE_ENV} to a writable folder with free space to cache them"
        )
        return
    stale = re.compile(f"(?:{re.escape(prefix)}|{re.escape(old_prefix)}){_CACHE_SUFFIX}")
    for path in folder.iterdir():
        if stale.fullmatch(path.name) and not path.name.startswith(f"{stem}."):
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)


def _load_listed(listing: _Listing, image_size: int | None) -> ImageArrays:
    folder = cache_root()
    remove_stale_temporaries(folder)
    prefix, stem = _cache_stem(listing, image_size)
    cached = _load_cached(folder, stem, listing)
    if cached is not None:
        return cached
    arrays = _read(listing, image_size)
    _save_cache(folder, prefix, stem, arrays, listing, _old_prefix(listing, image_size))
    return arrays


def load_image_folder(root: Path, image_size: int | None = None) -> tuple[ImageArrays, list[str]]:
    """`read_image_folder`, decoded once and cached under `cache_root()`.

    The cache is keyed by the folder's resolved path and every file's path, size and modification
    time, so adding, removing or touching a file rebuilds it; a cache hit returns read-only memory
    maps. A cache folder that cannot be written is warned about, and the images are decoded in memory.
    """
    listing = _list_folder(Path(root), image_size)
    return _load_listed(listing, image_size), listing.classes


def _in_colour(arrays: ImageArrays) -> ImageArrays:
    if arrays.images.shape[-1] == 3:
        return arrays
    return ImageArrays(np.repeat(arrays.images, 3, axis=-1), arrays.labels)


@DATASETS.register(injected=SPLIT_INPUTS)
def image_folder(root: str, image_size: int | None = None, *, test_only: bool = False) -> ImageDataset:
    """Your own images in class folders: root/train/<class>/* and root/test/<class>/*.

    The classes are the names of the train/ class folders that hold images, sorted (Python's string
    order: "B" before "a"); label i is classes[i]. A class folder without images in train/ and test/
    is left out, and one with training images but no test images is kept: both with a warning.
    Test images of a class without training images are an error. With `test_only`, train/ is not read:
    the classes are those of test/.
    """
    folder = dataset_folder(root)
    if test_only:
        listing = _list_folder(folder / "test", image_size)
        return ImageDataset(None, _load_listed(listing, image_size), listing.classes, source=f"image folder {folder}")
    train_root, train_folders = _scan(folder / "train")
    test_root, test_folders = _scan(folder / "test")
    for name, entries in test_folders.items():
        if entries and not train_folders.get(name):
            where = "is empty" if name in train_folders else "does not exist"
            raise DataError(
                f"{test_root / name} holds {len(entries)} test images, but {train_root / name} {where}: a model "
                f"cannot learn a class it never sees in training. Put training images in {train_root / name}, "
                f"or move {test_root / name} out of {test_root} to leave the class out"
            )
    classes = [name for name, entries in train_folders.items() if entries]
    if not classes:
        raise DataError(f"{train_root} holds no images: expected class folders <class>/<image files>")
    empty = sorted(name for name in train_folders.keys() | test_folders.keys() if name not in classes)
    if empty:
        warn(f"class folders without images in {train_root} and {test_root}, left out: {', '.join(empty)}")
    untested = [name for name in classes if not test_folders.get(name)]
    if len(untested) == len(classes):
        raise DataError(f"{test_root} holds no images: expected test images in {test_root}/<class>/")
    if untested:
        warn(f"no test images in {test_root} for {', '.join(untested)}: trained on, but not tested")
    train_listing = _listing(train_root, train_folders, classes, image_size)
    test_listing = _listing(test_root, test_folders, classes, image_size)
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
