"""The frozen-backbone feature cache stays within its size limit: the least recently used files go first, the file
just written and the ones just read stay."""

import os

import numpy as np
import pytest

from trainlab.data.features import LIMIT_ENV, cache_limit_bytes, prune
from trainlab.errors import UsageError


def cache_file(folder, name, megabytes, age_s):
    folder.mkdir(exist_ok=True)
    path = folder / f"{name}.npy"
    np.save(path, np.zeros(int(megabytes * 1e6 / 4), dtype=np.float32))
    os.utime(path, (path.stat().st_atime - age_s, path.stat().st_mtime - age_s))
    return path


def test_the_least_recently_used_files_go_until_the_cache_fits(tmp_path, monkeypatch):
    monkeypatch.setenv(LIMIT_ENV, "0.0025")  # 2.5 MB
    folder = tmp_path / "features"
    old, older, recent = cache_file(folder, "old", 1, 100), cache_file(folder, "older", 1, 200), cache_file(folder, "recent", 1, 10)
    new = cache_file(folder, "new", 1, 0)
    said = []

    removed = prune(folder, keep=new, say=said.append)

    assert removed == [older, old]  # 4 MB -> at most 2.5 MB: the two oldest uses go
    assert sorted(p.name for p in folder.iterdir()) == ["new.npy", "recent.npy"] and recent.exists()
    assert "removed 2 least recently used file(s)" in said[0] and "2.5 MB" not in said[0] and "0.0025 GB" in said[0]


def test_the_file_just_written_stays_even_alone_over_the_limit(tmp_path, monkeypatch):
    monkeypatch.setenv(LIMIT_ENV, "0")
    new = cache_file(tmp_path / "features", "new", 1, 0)
    other = cache_file(tmp_path / "features", "other", 1, 50)
    assert prune(tmp_path / "features", keep=new) == [other] and new.exists()


def test_the_limit_defaults_to_4_gb_and_a_bad_value_is_named(monkeypatch):
    monkeypatch.delenv(LIMIT_ENV, raising=False)
    assert cache_limit_bytes() == 4_000_000_000
    monkeypatch.setenv(LIMIT_ENV, "lots")
    with pytest.raises(UsageError, match=r"\$TRAINLAB_FEATURE_CACHE_GB='lots': expected .* a number >= 0"):
        cache_limit_bytes()
