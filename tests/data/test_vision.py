import hashlib
import os
import pickle
import re
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from trainlab.data import image_folders, vision
from trainlab.utils import io
from trainlab.data.base import DATASETS, FIXED_SHAPES, DataWarning, dataset_shape
from trainlab.data.image_folders import load_image_folder, read_image_folder
from trainlab.errors import DataError, UsageError

RED, BLUE = (255, 0, 0), (0, 0, 255)
CLASSES = ["cat", "dog"]


@pytest.fixture(autouse=True)
def isolated_dirs(tmp_path, monkeypatch):
    monkeypatch.setenv("TRAINLAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TRAINLAB_DATA", str(tmp_path / "data"))


def write_image(path: Path, size: int = 4, colour: tuple[int, ...] | int = RED, mode: str = "RGB") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, (size, size), colour).save(path)
    return path


def make_split(root: Path, counts: dict[str, int] | None = None, **image) -> Path:
    """root/<class>/<i>.png: cats red, dogs blue unless `image` says otherwise."""
    for name, count in (counts or {"cat": 2, "dog": 3}).items():
        for i in range(count):
            write_image(root / name / f"{i}.png", **({"colour": RED if name == "cat" else BLUE} | image))
    return root


def cache_files(tmp_path: Path) -> list[str]:
    return sorted(p.name for p in (tmp_path / "cache").iterdir())


def fail_to_decode(path, image_size):
    raise AssertionError(f"decoded {path} again")


# ---------------------------------------------------------------- one split folder


def test_reads_class_folders_into_arrays_labels_and_sorted_classes(tmp_path):
    arrays, classes = read_image_folder(make_split(tmp_path / "train"))
    assert classes == CLASSES
    assert arrays.images.shape == (5, 4, 4, 3) and arrays.images.dtype == np.uint8
    assert arrays.labels.tolist() == [0, 0, 1, 1, 1] and arrays.labels.dtype == np.int64
    assert (arrays.images[0] == RED).all() and (arrays.images[4] == BLUE).all()


def test_hidden_files_and_folders_are_ignored(tmp_path):
    root = make_split(tmp_path / "train")
    (root / ".DS_Store").write_bytes(b"junk")
    (root / "cat" / "._0.png").write_bytes(b"junk")
    write_image(root / ".thumbnails" / "0.png")
    arrays, classes = read_image_folder(root)
    assert classes == CLASSES and len(arrays) == 5


def test_second_load_is_a_cache_hit_without_decoding(tmp_path, monkeypatch):
    root = make_split(tmp_path / "train")
    first, _ = load_image_folder(root)
    monkeypatch.setattr(image_folders, "_decode_image", fail_to_decode)
    second, classes = load_image_folder(root)
    assert isinstance(second.images, np.memmap)
    assert classes == CLASSES
    np.testing.assert_array_equal(second.images, first.images)
    np.testing.assert_array_equal(second.labels, first.labels)


def test_touching_a_file_rebuilds_the_cache_and_drops_the_old_one(tmp_path, monkeypatch):
    root = make_split(tmp_path / "train")
    load_image_folder(root)
    before = cache_files(tmp_path)
    stat = (root / "cat" / "0.png").stat()
    os.utime(root / "cat" / "0.png", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    decoded = []
    def counting_decode(path, image_size):
        decoded.append(path)
        return np.zeros((4, 4, 3), np.uint8)

    monkeypatch.setattr(image_folders, "_decode_image", counting_decode)
    arrays, _ = load_image_folder(root)
    assert len(decoded) == 5 and not isinstance(arrays.images, np.memmap)
    after = cache_files(tmp_path)
    assert len(after) == len(before) == 3 and not set(after) & set(before)


def test_adding_a_file_rebuilds_the_cache(tmp_path):
    root = make_split(tmp_path / "train")
    load_image_folder(root)
    write_image(root / "dog" / "9.png", colour=BLUE)
    arrays, _ = load_image_folder(root)
    assert len(arrays) == 6 and arrays.labels[-1] == 1


def test_a_half_written_cache_without_its_json_is_not_used(tmp_path, monkeypatch):
    root = make_split(tmp_path / "train")
    load_image_folder(root)
    (meta,) = (tmp_path / "cache").glob("*.json")
    meta.unlink()
    arrays, _ = load_image_folder(root)
    assert not isinstance(arrays.images, np.memmap) and len(arrays) == 5


def test_folders_whose_paths_differ_only_in_punctuation_keep_their_own_caches(tmp_path, monkeypatch):
    spaced, dashed = make_split(tmp_path / "my pets" / "train"), make_split(tmp_path / "my-pets" / "train")
    deep = make_split(tmp_path.joinpath(*["a-rather-long-folder-name"] * 12) / "train")
    for root in (spaced, dashed, deep):
        load_image_folder(root)
    assert len(cache_files(tmp_path)) == 9 and max(map(len, cache_files(tmp_path))) < 100
    monkeypatch.setattr(image_folders, "_decode_image", fail_to_decode)
    for root in (spaced, dashed, deep):
        assert isinstance(load_image_folder(root)[0].images, np.memmap), root


def test_the_caches_of_an_earlier_naming_are_retired_when_the_folder_is_cached_again(tmp_path):
    root = make_split(tmp_path / "train")
    load_image_folder(root)
    cache = tmp_path / "cache"
    old = re.sub(r"[^A-Za-z0-9]+", "-", str(root.resolve())).strip("-") + "-0123456789abcdef"
    for path in list(cache.iterdir()):
        path.rename(cache / (old + path.name[path.name.index("."):]))
    load_image_folder(root)
    assert len(cache_files(tmp_path)) == 3 and not any(name.startswith(old) for name in cache_files(tmp_path))


WRITER = """
import sys, time
from pathlib import Path
from trainlab.utils.io import atomic_open
with atomic_open(Path(sys.argv[1]), "wb") as f:
    f.write(b"x" * 100_000)
    f.flush()
    print("writing", flush=True)
    time.sleep(120)
"""


def test_temporary_files_of_killed_cache_writers_are_removed_when_the_cache_is_opened(tmp_path):
    root, cache = make_split(tmp_path / "train"), tmp_path / "cache"
    cache.mkdir()
    command = [sys.executable, "-c", WRITER, str(cache / "other.npy")]
    writer = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline() == "writing\n"
        (temporary,) = cache.iterdir()
        old_style = cache / ".other.npy.k3j_8x2a.tmp"  # tempfile.mkstemp's name, from an earlier trainlab
        old_style.write_bytes(b"x")
        os.utime(old_style, (time.time() - 2 * io.OLD_TEMPORARY_S,) * 2)
        recent_old_style = cache / ".other.npy.q9w_2e4r.tmp"
        recent_old_style.write_bytes(b"x")
        load_image_folder(root)
        assert temporary.exists() and recent_old_style.exists(), "a file being written is left alone"
        assert not old_style.exists()
    finally:
        writer.kill()
        writer.wait()
    assert temporary.exists(), "killed, the writer leaves its temporary file"
    load_image_folder(root)
    assert not temporary.exists() and recent_old_style.exists()
    assert len(cache_files(tmp_path)) == 4


def assert_decoded_without_a_cache(recorded, cache):
    (warning,) = [w for w in recorded if issubclass(w.category, DataWarning)]
    message = str(warning.message)
    assert f"cannot write the image cache in {cache}" in message and "TRAINLAB_CACHE" in message


def test_a_read_only_cache_folder_is_a_warning_and_the_images_are_decoded_in_memory(tmp_path, read_only_dir):
    root = make_split(tmp_path / "train")
    cache = read_only_dir(tmp_path / "cache")
    with pytest.warns(DataWarning) as recorded:
        arrays, classes = load_image_folder(root)
    assert_decoded_without_a_cache(recorded, cache)
    assert classes == CLASSES and arrays.labels.tolist() == [0, 0, 1, 1, 1] and (arrays.images[0] == RED).all()
    assert list(cache.iterdir()) == []


def test_a_cache_folder_that_cannot_be_made_is_a_warning(tmp_path, monkeypatch):
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv("TRAINLAB_CACHE", str(tmp_path / "a-file" / "cache"))
    with pytest.warns(DataWarning) as recorded:
        arrays, _ = load_image_folder(make_split(tmp_path / "train"))
    assert_decoded_without_a_cache(recorded, tmp_path / "a-file" / "cache")
    assert len(arrays) == 5


def test_a_full_disk_while_caching_is_a_warning_and_leaves_no_file(tmp_path, full_disk_dir):
    root = make_split(tmp_path / "train", size=100)  # 5 images of 100x100x3: 150 kB
    cache = full_disk_dir(tmp_path / "cache", size=64 * 1024)
    with pytest.warns(DataWarning) as recorded:
        arrays, _ = load_image_folder(root)
    assert_decoded_without_a_cache(recorded, cache)
    assert arrays.images.shape == (5, 100, 100, 3) and list(cache.iterdir()) == []


def test_non_image_file_is_a_data_error_naming_it(tmp_path):
    root = make_split(tmp_path / "train")
    (root / "dog" / "notes.txt").write_text("not a picture")
    with pytest.raises(DataError, match=r"notes\.txt.*expected one of .*\.jpg"):
        read_image_folder(root)


def test_corrupt_image_is_a_data_error_naming_it(tmp_path):
    root = make_split(tmp_path / "train")
    (root / "dog" / "broken.png").write_bytes(b"\x89PNG but not really")
    with pytest.raises(DataError, match=r"broken\.png"):
        read_image_folder(root)


def test_images_of_different_sizes_are_an_error_suggesting_image_size(tmp_path):
    root = make_split(tmp_path / "train")
    write_image(root / "dog" / "big.png", size=8)
    with pytest.raises(DataError, match=r"big\.png is 8x8 pixels.*4x4.*image_size"):
        read_image_folder(root)


def test_image_size_resizes_every_image(tmp_path):
    root = make_split(tmp_path / "train")
    write_image(root / "dog" / "big.png", size=8, colour=BLUE)
    arrays, _ = read_image_folder(root, image_size=6)
    assert arrays.images.shape == (6, 6, 6, 3)
    assert (arrays.images[-1] == BLUE).all()


def test_greyscale_folder_stays_one_channel(tmp_path):
    arrays, _ = read_image_folder(make_split(tmp_path / "train", mode="L", colour=200))
    assert arrays.images.shape == (5, 4, 4, 1)
    assert (arrays.images == 200).all()


def test_one_colour_image_turns_a_greyscale_folder_into_rgb(tmp_path):
    root = make_split(tmp_path / "train", mode="L", colour=200)
    write_image(root / "dog" / "colour.png", colour=BLUE)
    arrays, _ = read_image_folder(root)
    assert arrays.images.shape == (6, 4, 4, 3)
    assert (arrays.images[0] == 200).all() and (arrays.images[-1] == BLUE).all()


def test_system_files_among_the_images_are_skipped(tmp_path):
    root = make_split(tmp_path / "train")
    for name in ("Thumbs.db", "desktop.ini", "cat/Thumbs.db", "cat/desktop.ini", "dog/ehthumbs.db", "cat/.hidden.png"):
        (root / name).write_bytes(b"not an image")
    write_image(root / "__MACOSX" / "cat" / "._0.png")
    write_image(root / "@eaDir" / "0.png")
    arrays, classes = read_image_folder(root)
    assert classes == CLASSES and arrays.labels.tolist() == [0, 0, 1, 1, 1]


def test_an_empty_class_folder_is_left_out_with_a_warning_naming_it(tmp_path):
    root = make_split(tmp_path / "train", {"ant": 1, "cat": 2, "dog": 3})
    (root / "bee").mkdir()
    (root / "bee" / "Thumbs.db").write_bytes(b"junk")  # holds no image
    with pytest.warns(DataWarning, match=r"without images, left out: .*train/bee; the classes are ant, cat, dog"):
        arrays, classes = read_image_folder(root)
    assert classes == ["ant", "cat", "dog"] and arrays.labels.tolist() == [0, 1, 1, 2, 2, 2]


def test_a_folder_of_empty_class_folders_is_a_data_error(tmp_path):
    (tmp_path / "train" / "cat").mkdir(parents=True)
    with pytest.raises(DataError, match=r"train holds no images: its class folders cat are empty"):
        read_image_folder(tmp_path / "train")


def test_missing_folder_is_a_usage_error_naming_it(tmp_path):
    with pytest.raises(UsageError, match="nowhere"):
        load_image_folder(tmp_path / "nowhere")


def test_many_files_decode_in_a_process_pool_in_the_same_order(tmp_path, monkeypatch):
    root = make_split(tmp_path / "train", {"cat": 3, "dog": 4})
    expected, _ = read_image_folder(root)
    monkeypatch.setattr(image_folders, "POOL_MIN_FILES", 1)
    monkeypatch.setattr(image_folders, "CHUNK_FILES", 2)
    monkeypatch.setattr(image_folders, "usable_cores", lambda: 2)
    arrays, _ = read_image_folder(root)
    np.testing.assert_array_equal(arrays.images, expected.images)


# ---------------------------------------------------------------- image_folder builder


def test_image_folder_builds_train_and_test_splits(tmp_path):
    make_split(tmp_path / "pets" / "train")
    make_split(tmp_path / "pets" / "test", {"cat": 1, "dog": 1})
    dataset = DATASETS.build("image_folder", root=str(tmp_path / "pets"))
    assert (len(dataset.train), len(dataset.test)) == (5, 2)
    assert dataset.classes == CLASSES and dataset.image_shape == (3, 4, 4)
    assert str(tmp_path / "pets") in dataset.source


def test_image_folder_finds_a_relative_root_under_the_data_folder(tmp_path, monkeypatch):
    make_split(tmp_path / "data" / "pets" / "train")
    make_split(tmp_path / "data" / "pets" / "test")
    monkeypatch.chdir(tmp_path)
    assert DATASETS.build("image_folder", root="pets").classes == CLASSES


def test_test_images_of_a_class_without_training_images_are_a_data_error_saying_what_to_do(tmp_path):
    make_split(tmp_path / "pets" / "train")
    make_split(tmp_path / "pets" / "test", {"cat": 1, "dog": 1, "emu": 2})
    message = r"test/emu holds 2 test images, but .*train/emu does not exist.*Put training images in .*train/emu"
    with pytest.raises(DataError, match=message):
        DATASETS.build("image_folder", root=str(tmp_path / "pets"))
    (tmp_path / "pets" / "train" / "emu").mkdir()
    with pytest.raises(DataError, match=r"train/emu is empty.*or move .*test/emu out of"):
        DATASETS.build("image_folder", root=str(tmp_path / "pets"))


def test_class_folders_empty_in_both_splits_are_left_out_and_labels_follow_the_sorted_names(tmp_path):
    make_split(tmp_path / "pets" / "train", {"ant": 1, "cat": 2, "dog": 3})
    make_split(tmp_path / "pets" / "test", {"ant": 1, "cat": 1, "dog": 1})
    (tmp_path / "pets" / "train" / "bee").mkdir()
    (tmp_path / "pets" / "test" / "bee").mkdir()
    (tmp_path / "pets" / "test" / "Cow").mkdir()
    with pytest.warns(DataWarning, match=r"without images in .*train and .*test, left out: Cow, bee"):
        dataset = DATASETS.build("image_folder", root=str(tmp_path / "pets"))
    assert dataset.classes == ["ant", "cat", "dog"]
    assert dataset.train.labels.tolist() == [0, 1, 1, 2, 2, 2] and dataset.test.labels.tolist() == [0, 1, 2]


def test_a_class_without_test_images_is_kept_with_a_warning(tmp_path):
    make_split(tmp_path / "pets" / "train", {"ant": 1, "cat": 2, "dog": 3})
    make_split(tmp_path / "pets" / "test", {"ant": 1, "dog": 2})
    (tmp_path / "pets" / "test" / "cat").mkdir()
    with pytest.warns(DataWarning, match=r"no test images in .*test for cat: trained on, but not tested"):
        dataset = DATASETS.build("image_folder", root=str(tmp_path / "pets"))
    assert dataset.classes == ["ant", "cat", "dog"] and dataset.test.labels.tolist() == [0, 2, 2]
    (tmp_path / "pets" / "test" / "cat").rmdir()  # no folder at all: the same
    with pytest.warns(DataWarning, match=r"for cat: trained on, but not tested"):
        assert DATASETS.build("image_folder", root=str(tmp_path / "pets")).test.labels.tolist() == [0, 2, 2]


def test_a_test_folder_without_any_image_is_a_data_error(tmp_path):
    make_split(tmp_path / "pets" / "train")
    (tmp_path / "pets" / "test" / "cat").mkdir(parents=True)
    with pytest.raises(DataError, match=r"test holds no images"):
        DATASETS.build("image_folder", root=str(tmp_path / "pets"))


def test_image_folder_that_does_not_exist_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="pets"):
        DATASETS.build("image_folder", root="pets")


# ---------------------------------------------------------------- CIFAR-10

CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def fake_cifar_batches(folder: Path, per_batch: int = 3) -> Path:
    """The python release's layout, with `per_batch` images whose R, G, B planes are 10, 20, 30."""
    folder.mkdir(parents=True)
    data = np.repeat(np.array([10, 20, 30], np.uint8), 32 * 32)[None].repeat(per_batch, axis=0)  # (N, 3072), CHW
    data[:, 1] = 99  # red plane, row 0, column 1
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for i, name in enumerate(names):
        batch = {b"data": data, b"labels": [(i + j) % 10 for j in range(per_batch)], b"batch_label": name.encode()}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    meta = {b"label_names": [c.encode() for c in CIFAR_CLASSES], b"num_vis": 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    return folder


def fake_cifar_tarball(tmp_path: Path) -> tuple[str, str]:
    """(file:// URL, MD5) of a tarball holding cifar-10-batches-py/."""
    batches = fake_cifar_batches(tmp_path / "build" / "cifar-10-batches-py")
    archive = tmp_path / "server" / "cifar-10-python.tar.gz"
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(batches, arcname=batches.name)
    return archive.as_uri(), hashlib.md5(archive.read_bytes()).hexdigest()


def assert_fake_cifar(dataset) -> None:
    assert dataset.classes == CIFAR_CLASSES
    assert dataset.train.images.shape == (15, 32, 32, 3) and dataset.test.images.shape == (3, 32, 32, 3)
    assert dataset.train.labels.dtype == np.int64 and dataset.train.labels[:4].tolist() == [0, 1, 2, 1]
    image = dataset.train.images[0]
    assert image[0, 1, 0] == 99 and image[0, 0, 0] == 10
    assert (image[..., 1] == 20).all() and (image[..., 2] == 30).all()


def test_cifar10_reads_an_image_folder_tree_under_the_data_folder(tmp_path):
    make_split(tmp_path / "data" / "cifar10-jpeg" / "train")
    make_split(tmp_path / "data" / "cifar10-jpeg" / "test")
    dataset = DATASETS.build("cifar10")
    assert len(dataset.train) == 5 and dataset.classes == CLASSES
    assert "image folder" in dataset.source


def test_cifar10_reads_the_python_batches_under_the_data_folder(tmp_path):
    fake_cifar_batches(tmp_path / "data" / "cifar10" / "cifar-10-batches-py")
    dataset = DATASETS.build("cifar10")
    assert_fake_cifar(dataset)
    assert "python batches" in dataset.source


def test_cifar10_reads_the_python_batches_at_a_given_root(tmp_path):
    fake_cifar_batches(tmp_path / "elsewhere" / "cifar-10-batches-py")
    assert_fake_cifar(DATASETS.build("cifar10", root=str(tmp_path / "elsewhere")))


def test_cifar10_downloads_checks_and_extracts_the_archive(tmp_path, monkeypatch):
    url, md5 = fake_cifar_tarball(tmp_path)
    monkeypatch.setattr(vision, "CIFAR10_URL", url)
    monkeypatch.setattr(vision, "CIFAR10_MD5", md5)
    assert_fake_cifar(DATASETS.build("cifar10"))
    assert (tmp_path / "data" / "cifar10" / "cifar-10-batches-py" / "data_batch_5").is_file()
    monkeypatch.setattr(vision, "CIFAR10_URL", "http://127.0.0.1:9/not-asked-twice")
    assert_fake_cifar(DATASETS.build("cifar10"))


def test_cifar10_archive_with_the_wrong_md5_is_a_data_error(tmp_path, monkeypatch):
    url, md5 = fake_cifar_tarball(tmp_path)
    monkeypatch.setattr(vision, "CIFAR10_URL", url)
    monkeypatch.setattr(vision, "CIFAR10_MD5", "0" * 32)
    with pytest.raises(DataError, match=md5):
        DATASETS.build("cifar10")
    assert not (tmp_path / "data" / "cifar10" / "cifar-10-batches-py").exists()


def test_cifar10_offline_is_a_usage_error_saying_where_to_put_the_archive(tmp_path, monkeypatch):
    monkeypatch.setattr(vision, "CIFAR10_URL", "http://127.0.0.1:9/cifar.tar.gz")
    with pytest.raises(UsageError) as error:
        DATASETS.build("cifar10")
    message = str(error.value)
    assert str(tmp_path / "data" / "cifar10" / "cifar-10-python.tar.gz") in message
    assert str(tmp_path / "data" / "cifar10-jpeg") in message
    assert "TRAINLAB_DATA" in message and vision.CIFAR10_MD5 in message


def test_cifar10_batch_that_is_not_a_pickle_is_a_data_error_naming_it(tmp_path):
    batches = fake_cifar_batches(tmp_path / "data" / "cifar10" / "cifar-10-batches-py")
    (batches / "data_batch_3").write_bytes(b"garbage")
    with pytest.raises(DataError, match="data_batch_3"):
        DATASETS.build("cifar10")


# ---------------------------------------------------------------- digits


def test_digits_is_1797_greyscale_8x8_images_in_ten_classes():
    dataset = DATASETS.build("digits")
    assert len(dataset.train) + len(dataset.test) == 1797
    assert dataset.train.images.shape[1:] == (8, 8, 1) and dataset.train.images.dtype == np.uint8
    assert dataset.train.images.max() == 255 and dataset.train.labels.dtype == np.int64
    assert dataset.classes == [str(d) for d in range(10)]
    assert dataset.source == "scikit-learn digits (embedded)"


def test_fixed_shapes_are_the_shapes_the_builders_give(tmp_path):
    fake_cifar_batches(tmp_path / "data" / "cifar10" / "cifar-10-batches-py")
    for name in ("digits", "cifar10"):
        dataset = DATASETS.build(name)
        assert FIXED_SHAPES[name] == (dataset.image_shape, len(dataset.classes)), name
    assert dataset_shape("digits", {}) == ((1, 8, 8), 10)


def test_digits_test_split_is_a_fixed_stratified_fifth():
    first, second = DATASETS.build("digits"), DATASETS.build("digits")
    np.testing.assert_array_equal(first.test.images, second.test.images)
    np.testing.assert_array_equal(first.test.labels, second.test.labels)
    assert len(first.test) == 360
    assert np.bincount(first.test.labels).min() >= 35  # every digit, about a fifth of its ~180 images
