"""Image folders as a user meets them through `trainlab`: real processes, exit codes, messages, no tracebacks."""

import io
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import TINY
from tests.test_cli import assert_user_error, make_image_folder, trainlab
from trainlab.data import image_folders


def test_a_cache_folder_that_cannot_be_written_warns_once_and_the_run_trains(tmp_path, isolated, monkeypatch):
    (tmp_path / "a-file").write_text("")
    cache = tmp_path / "a-file" / "cache"
    monkeypatch.setenv("TRAINLAB_CACHE", str(cache))
    root = make_image_folder(tmp_path / "pets")
    result = trainlab("run", "data.name=image_folder", f"data.root={root}", "data.val_size=2", *TINY, "epochs=1")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and result.stderr.count(f"cannot write the image cache in {cache}") == 1
    assert "test accuracy" in result.stdout


def test_system_files_and_an_empty_class_folder_do_not_stop_a_run(tmp_path):
    root = make_image_folder(tmp_path / "pets")
    junk = ["train/Thumbs.db", "train/cat/Thumbs.db", "train/dog/desktop.ini", "test/.DS_Store", "test/cat/._0.png"]
    for name in junk:
        (root / name).write_bytes(b"junk")
    (root / "train" / "emu").mkdir()
    result = trainlab("show-data", "data.name=image_folder", f"data.root={root}", "data.val_size=2", "-o", "grid.png")
    assert result.returncode == 0, result.stderr
    assert "left out: emu" in result.stderr and "Traceback" not in result.stderr


def test_a_val_size_that_leaves_too_few_training_images_exits_2_naming_it(tmp_path):
    root = make_image_folder(tmp_path / "pets")  # 12 training images, 2 classes
    result = trainlab("run", "data.name=image_folder", f"data.root={root}", "data.val_size=11", *TINY)
    assert_user_error(result, 2, "data.val_size=11", "12 training examples", "2 classes", "from 1 to 10")


def test_a_negative_seed_splits_shuffles_and_augments_the_digits():
    result = trainlab("run", *TINY, "epochs=1", "seed=-1", "data.split_seed=-2", "augment.flip_p=0.5")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and "test accuracy" in result.stdout


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:  # the field after the state: the parent's pid
                found.append(int(entry))
    return found


def _gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def _slow_image_folder(root: Path, per_class: int) -> Path:
    """train/<a, b>/ with `per_class` links to one 256x256 JPEG each (a millisecond to decode), test/ with one."""
    source = root / "source.jpg"
    root.mkdir(parents=True)
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (256, 256, 3), dtype=np.uint8)).save(buffer, "JPEG")
    source.write_bytes(buffer.getvalue())
    for split, count in (("train", per_class), ("test", 1)):
        for label in ("a", "b"):
            folder = root / "images" / split / label
            folder.mkdir(parents=True)
            for i in range(count):
                try:
                    os.link(source, folder / f"{i}.jpg")
                except OSError:
                    shutil.copyfile(source, folder / f"{i}.jpg")
    return root / "images"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds the decoding processes in /proc")
@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_or_sigterm_while_decoding_exits_without_tracebacks_or_leftovers(tmp_path, isolated, signum, code):
    if image_folders.usable_cores() < 2:
        pytest.skip("the decode runs in a pool of processes only with 2 CPUs or more")
    root = _slow_image_folder(tmp_path / "slow", per_class=max(1500, image_folders.POOL_MIN_FILES))
    command = [sys.executable, "-m", "trainlab", "run", "data.name=image_folder", f"data.root={root}",
               "data.image_size=16", *TINY]  # fmt: skip
    # Its own process group, which Ctrl-C in a terminal (or a job scheduler's SIGTERM) signals as a whole:
    # the parent and its decoding workers.
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True, env=dict(os.environ, OMP_NUM_THREADS="1"))  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while len(workers := _children(process.pid)) < 2 and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert process.poll() is None, f"ended before its decoding pool started: {process.communicate()}"
        assert len(workers) >= 2, "the decoding pool never started"
        time.sleep(0.2)  # into the decode, which takes over a second
        os.killpg(process.pid, signum)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == code, stderr
    assert "Traceback" not in stderr and ("interrupted" in stderr or signum != signal.SIGINT), stderr
    assert not (isolated / "runs").exists(), "stopped while decoding, before a run folder is made"
    cache = Path(os.environ["TRAINLAB_CACHE"])
    assert not cache.exists() or list(cache.iterdir()) == [], "no cache and no temporary file"
    assert all(_gone(pid) for pid in workers), "no decoding process outlives the command"
