import gzip
import hashlib
import struct
from pathlib import Path

import numpy as np
import pytest

from trainlab.data import DATASETS
from trainlab.data import mnist as mnist_module
from trainlab.data.base import FIXED_SHAPES
from trainlab.data.mnist import mnist, read_idx
from trainlab.errors import DataError, UsageError

STEMS = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]


def idx_bytes(array: np.ndarray) -> bytes:
    type_byte = {np.dtype(np.uint8): 0x08, np.dtype(">i4"): 0x0C, np.dtype(">f4"): 0x0D}[array.dtype]
    header = bytes([0, 0, type_byte, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.tobytes()


def tiny_mnist(n_train: int = 6, n_test: int = 4) -> dict[str, bytes]:
    """The four IDX files of a made-up MNIST, by file stem."""
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": np.arange(n_train, dtype=np.uint8) % 10,
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": (np.arange(n_test, dtype=np.uint8) + 3) % 10,
    }
    return {stem: idx_bytes(array) for stem, array in arrays.items()}


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


@pytest.fixture
def trust(monkeypatch):
    """Make the module accept the given IDX files as the published ones."""

    def accept(files: dict[str, bytes]) -> None:
        monkeypatch.setattr(mnist_module, "MNIST_IDX_MD5", {stem: md5(data) for stem, data in files.items()})

    return accept


def write(folder: Path, files: dict[str, bytes], gz: set[str] = frozenset()) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for stem, data in files.items():
        if stem in gz:
            (folder / f"{stem}.gz").write_bytes(gzip.compress(data))
        else:
            (folder / stem).write_bytes(data)


# ---------------------------------------------------------------- read_idx


@pytest.mark.parametrize("compressed", [False, True])
def test_read_idx_reads_plain_and_gzip_files(tmp_path, compressed):
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    path = tmp_path / ("x.idx.gz" if compressed else "x.idx")
    path.write_bytes(gzip.compress(idx_bytes(array)) if compressed else idx_bytes(array))
    np.testing.assert_array_equal(read_idx(path), array)


def test_read_idx_returns_multibyte_types_in_native_order(tmp_path):
    array = np.array([[1, -2], [70000, 3]], dtype=">i4")
    (tmp_path / "x").write_bytes(idx_bytes(array))
    result = read_idx(tmp_path / "x")
    assert result.dtype == np.dtype(np.int32) and result.dtype.isnative
    np.testing.assert_array_equal(result, [[1, -2], [70000, 3]])


def test_bad_magic_is_a_data_error_naming_the_file(tmp_path):
    path = tmp_path / "labels"
    path.write_bytes(b"\x01\x02\x08\x01" + bytes(8))
    with pytest.raises(DataError, match="not an IDX file") as error:
        read_idx(path)
    assert str(path) in str(error.value)


def test_truncated_data_is_a_data_error_saying_how_many_bytes_were_expected(tmp_path):
    data = idx_bytes(np.zeros((3, 28, 28), dtype=np.uint8))
    path = tmp_path / "images"
    path.write_bytes(data[:-10])
    with pytest.raises(DataError, match="truncated") as error:
        read_idx(path)
    assert str(path) in str(error.value) and str(len(data)) in str(error.value) and "3x28x28" in str(error.value)


def test_truncated_header_is_a_data_error(tmp_path):
    path = tmp_path / "images"
    path.write_bytes(bytes([0, 0, 8, 3]) + struct.pack(">I", 5))  # 3 dimensions, 1 size
    with pytest.raises(DataError, match="truncated"):
        read_idx(path)


def test_data_longer_than_the_header_says_is_a_data_error(tmp_path):
    path = tmp_path / "labels"
    path.write_bytes(idx_bytes(np.zeros(5, dtype=np.uint8)) + b"\0")
    with pytest.raises(DataError, match="does not match its header") as error:
        read_idx(path)
    assert str(path) in str(error.value)


def test_corrupt_gzip_is_a_data_error_naming_the_file(tmp_path):
    path = tmp_path / "labels.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.zeros(500, dtype=np.uint8)))[:-20])
    with pytest.raises(DataError, match="gzip") as error:
        read_idx(path)
    assert str(path) in str(error.value)


# ---------------------------------------------------------------- the mnist dataset


def test_mnist_is_registered():
    assert "mnist" in DATASETS


def test_mnist_reads_a_mix_of_plain_and_gzip_files_from_the_data_root(tmp_path, trust):
    files = tiny_mnist(n_train=6, n_test=4)
    trust(files)
    write(tmp_path / "data" / "mnist", files, gz={"train-images-idx3-ubyte", "t10k-labels-idx1-ubyte"})
    dataset = mnist()
    assert dataset.train.images.shape == (6, 28, 28, 1) and dataset.train.images.dtype == np.uint8
    assert dataset.test.images.shape == (4, 28, 28, 1)
    assert dataset.train.labels.dtype == np.int64 and dataset.train.labels.tolist() == [0, 1, 2, 3, 4, 5]
    assert dataset.test.labels.tolist() == [3, 4, 5, 6]
    assert dataset.classes == [str(d) for d in range(10)]
    assert dataset.image_shape == (1, 28, 28)
    assert FIXED_SHAPES["mnist"] == (dataset.image_shape, len(dataset.classes))  # what `trainlab summary` assumes
    written = read_idx(tmp_path / "data" / "mnist" / "train-images-idx3-ubyte.gz")
    np.testing.assert_array_equal(dataset.train.images[..., 0], written)


def test_mnist_reads_a_root_folder(tmp_path, trust):
    files = tiny_mnist()
    trust(files)
    write(tmp_path / "elsewhere", files)
    assert len(mnist(root=str(tmp_path / "elsewhere")).train) == 6


def test_a_file_that_is_not_the_published_one_is_a_data_error(tmp_path, trust):
    files = tiny_mnist()
    trust(files)
    files["t10k-labels-idx1-ubyte"] = idx_bytes(np.zeros(4, dtype=np.uint8))
    write(tmp_path / "data" / "mnist", files, gz={"t10k-labels-idx1-ubyte"})
    with pytest.raises(DataError, match="decompressed MD5") as error:
        mnist()
    assert "t10k-labels-idx1-ubyte.gz" in str(error.value)


def test_image_and_label_counts_must_agree(tmp_path, trust):
    files = tiny_mnist()
    files["t10k-labels-idx1-ubyte"] = idx_bytes(np.zeros(5, dtype=np.uint8))
    trust(files)
    write(tmp_path / "data" / "mnist", files)
    with pytest.raises(DataError, match="4 images but t10k-labels-idx1-ubyte 5 labels"):
        mnist()


def test_offline_error_names_the_file_the_folder_the_url_and_the_variable(tmp_path, monkeypatch, trust):
    monkeypatch.setattr(mnist_module, "MNIST_MIRRORS", ["http://127.0.0.1:9/"])
    files = tiny_mnist()
    trust(files)
    del files["train-labels-idx1-ubyte"]
    write(tmp_path / "data" / "mnist", files)
    with pytest.raises(UsageError) as error:
        mnist()
    message = str(error.value)
    assert "train-labels-idx1-ubyte" in message
    assert str(tmp_path / "data" / "mnist") in message
    assert "http://127.0.0.1:9/train-labels-idx1-ubyte.gz" in message
    assert "TRAINLAB_DATA" in message


def test_missing_files_are_downloaded_from_the_first_mirror_that_answers(tmp_path, monkeypatch, trust):
    files = tiny_mnist()
    trust(files)
    server = tmp_path / "server"
    write(server, files, gz=set(STEMS))
    monkeypatch.setattr(mnist_module, "MNIST_MIRRORS", ["http://127.0.0.1:9/", server.as_uri() + "/"])
    monkeypatch.setattr(mnist_module, "MNIST_GZ_MD5", {s: md5((server / f"{s}.gz").read_bytes()) for s in STEMS})
    folder = tmp_path / "data" / "mnist"
    write(folder, {"train-images-idx3-ubyte": files["train-images-idx3-ubyte"]})  # one file already there

    dataset = mnist()

    assert len(dataset.train) == 6 and len(dataset.test) == 4
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["train-images-idx3-ubyte"] + [f"{s}.gz" for s in STEMS if s != "train-images-idx3-ubyte"]
    )


def test_a_download_with_the_wrong_md5_is_a_data_error_and_leaves_no_file(tmp_path, monkeypatch, trust):
    files = tiny_mnist()
    trust(files)
    server = tmp_path / "server"
    write(server, files, gz=set(STEMS))
    monkeypatch.setattr(mnist_module, "MNIST_MIRRORS", [server.as_uri() + "/"])
    monkeypatch.setattr(mnist_module, "MNIST_GZ_MD5", {s: "0" * 32 for s in STEMS})
    with pytest.raises(DataError, match="corrupt"):
        mnist()
    assert not any((tmp_path / "data" / "mnist").glob("*.gz"))
