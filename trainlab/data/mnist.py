"""MNIST from its four IDX files, plain or gzip-compressed; downloaded from a mirror when missing.

Reading and checking all four files takes about 0.3 s (0.2 s to decompress, 0.08 s for the MD5s
of the 55 MB of IDX data, on 2 cores), so nothing is cached: the files are read and verified on
every load.
"""

from __future__ import annotations

import gzip
import hashlib
import zlib
from pathlib import Path

import numpy as np

from trainlab.data.base import DATA_ENV, DATASETS, SPLIT_INPUTS, ImageArrays, ImageDataset, data_root, dataset_folder
from trainlab.data.download import download
from trainlab.errors import DataError, UsageError

# Tried in order; each holds the four published .gz files.
MNIST_MIRRORS = [
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
]
# The published .gz files: checked for what is downloaded.
MNIST_GZ_MD5 = {
    "train-images-idx3-ubyte": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte": "ec29112dd5afa0611ce80d1b7f02629c",
}
# The decompressed IDX files: checked for every file read, since a copy on disk may have been recompressed.
MNIST_IDX_MD5 = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}
MNIST_CLASSES = [str(digit) for digit in range(10)]

# IDX type byte -> element type; multi-byte types are big-endian.
IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"  # an IDX file starts with two zero bytes instead


def _read_bytes(path: Path) -> bytes:
    """The IDX bytes of `path`, decompressed when it is gzip (told by its first bytes, not its name)."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise DataError(f"cannot read IDX file {path}: {e}") from e
    if data[:2] != _GZIP_MAGIC:
        return data
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as e:  # BadGzipFile is an OSError; a cut-off stream an EOFError
        raise DataError(f"{path} is a corrupt or truncated gzip file: {e}") from e


def _parse_idx(data: bytes, path: Path) -> np.ndarray:
    expected = "an IDX file: 2 zero bytes, a type byte, a dimension count, big-endian int32 sizes, then the data"
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] not in IDX_DTYPES:
        raise DataError(f"{path} is not {expected} (it starts with bytes {data[:4].hex(' ') or 'none'})")
    dtype, ndim = IDX_DTYPES[data[2]], data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(
            f"{path} is truncated: its header names {ndim} dimensions, needing {header} bytes, the file has {len(data)}"
        )
    shape = tuple(int(s) for s in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    expected_bytes = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) < expected_bytes:
        raise DataError(
            f"{path} is truncated: a {'x'.join(map(str, shape))} array of {dtype.name} needs {expected_bytes} bytes, "
            f"the file has {len(data)}"
        )
    if len(data) > expected_bytes:
        raise DataError(
            f"{path} does not match its header: a {'x'.join(map(str, shape))} array of {dtype.name} is "
            f"{expected_bytes} bytes, the file has {len(data)}"
        )
    array = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)  # read-only, no copy
    return array if dtype.itemsize == 1 else array.astype(dtype.newbyteorder("="))


def read_idx(path: str | Path) -> np.ndarray:
    """The array in an IDX file (gzip-compressed or not), with the shape its header gives.

    Raises DataError naming the file for a bad magic number, a truncated file, or data
    longer than the header says.
    """
    path = Path(path)
    return _parse_idx(_read_bytes(path), path)


def _find(folder: Path, stem: str) -> Path | None:
    for name in (stem, f"{stem}.gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def _download(folder: Path, stem: str, missing: list[str]) -> Path:
    """Fetch `stem`.gz into `folder` from the first mirror that has it with the published MD5."""
    dest = folder / f"{stem}.gz"
    failures: list[str] = []
    corrupt = False
    for mirror in MNIST_MIRRORS:
        url = mirror.rstrip("/") + f"/{stem}.gz"
        try:
            return download(url, dest, MNIST_GZ_MD5[stem])
        except DataError as e:  # the mirror answered with other bytes
            corrupt = True
            failures.append(f"  {url}: {e}")
        except UsageError as e:
            reason = e.__cause__ if e.__cause__ is not None else e
            failures.append(f"  {url}: {getattr(reason, 'reason', None) or reason}")
    others = [name for name in missing if name != stem]
    message = (
        f"MNIST file {stem} not found in {folder} (looked for {stem} and {stem}.gz), and downloading it failed:\n"
        + "\n".join(failures)
        + f"\nDownload {stem}.gz by hand (MD5 {MNIST_GZ_MD5[stem]}) into {folder}"
        + (f"; also missing: {', '.join(others)}" if others else "")
        + f".\nThe folder is ${DATA_ENV}/mnist (now {data_root()}) unless a root is given: "
        f"set {DATA_ENV} to the folder that holds mnist/ if you keep the files elsewhere."
    )
    raise (DataError if corrupt else UsageError)(message)


def _read_verified(path: Path, stem: str) -> np.ndarray:
    data = _read_bytes(path)
    actual = hashlib.md5(data, usedforsecurity=False).hexdigest()
    if actual != MNIST_IDX_MD5[stem]:
        raise DataError(
            f"{path} is not the published MNIST {stem}: its decompressed MD5 is {actual}, expected "
            f"{MNIST_IDX_MD5[stem]}; delete it to download it again"
        )
    return _parse_idx(data, path)


def _read_split(folder: Path, paths: dict[str, Path], split: str) -> ImageArrays:
    images_stem, labels_stem = f"{split}-images-idx3-ubyte", f"{split}-labels-idx1-ubyte"
    images = _read_verified(paths[images_stem], images_stem)
    labels = _read_verified(paths[labels_stem], labels_stem)
    if images.dtype != np.uint8 or images.ndim != 3 or labels.dtype != np.uint8 or labels.ndim != 1:
        raise DataError(
            f"{folder}: expected {images_stem} to hold (N, 28, 28) uint8 images and {labels_stem} N uint8 labels, "
            f"got {images.shape} {images.dtype} and {labels.shape} {labels.dtype}"
        )
    if len(images) != len(labels):
        raise DataError(f"{folder}: {images_stem} holds {len(images)} images but {labels_stem} {len(labels)} labels")
    if len(labels) and labels.max() >= len(MNIST_CLASSES):
        raise DataError(f"{paths[labels_stem]}: labels must lie in 0..9, found {labels.max()}")
    return ImageArrays(images[..., None], labels.astype(np.int64))  # (N, 28, 28) -> (N, 28, 28, 1)


@DATASETS.register(injected=SPLIT_INPUTS)
def mnist(root: str | None = None, *, test_only: bool = False) -> ImageDataset:
    """MNIST: 60,000 + 10,000 greyscale 28x28 handwritten digits; missing files are downloaded.

    Looks in `root` (or $TRAINLAB_DATA/mnist) for train-images-idx3-ubyte, train-labels-idx1-ubyte,
    t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte, each plain or .gz, and checks each
    against the MD5 of the published decompressed file.
    """
    folder = dataset_folder(root) if root is not None else data_root() / "mnist"
    found = {stem: _find(folder, stem) for stem in MNIST_IDX_MD5 if not (test_only and stem.startswith("train"))}
    missing = [stem for stem, path in found.items() if path is None]
    paths = {stem: path or _download(folder, stem, missing) for stem, path in found.items()}
    return ImageDataset(
        train=None if test_only else _read_split(folder, paths, "train"),
        test=_read_split(folder, paths, "t10k"),
        classes=list(MNIST_CLASSES),
        source=f"MNIST IDX files {folder}",
    )
