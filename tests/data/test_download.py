import hashlib
import io
import tarfile
from pathlib import Path

import pytest

from trainlab.data.download import check_md5, download, extract_tar
from trainlab.errors import DataError, UsageError

PAYLOAD = b"pretend this is a dataset archive\n"
PAYLOAD_MD5 = hashlib.md5(PAYLOAD).hexdigest()


@pytest.fixture(autouse=True)
def isolated_dirs(tmp_path, monkeypatch):
    monkeypatch.setenv("TRAINLAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TRAINLAB_DATA", str(tmp_path / "data"))


@pytest.fixture
def source(tmp_path) -> Path:
    path = tmp_path / "server" / "archive.bin"
    path.parent.mkdir()
    path.write_bytes(PAYLOAD)
    return path


def test_download_fetches_a_file_url_and_checks_its_md5(source, tmp_path):
    dest = tmp_path / "out" / "archive.bin"
    assert download(source.as_uri(), dest, PAYLOAD_MD5) == dest
    assert dest.read_bytes() == PAYLOAD
    assert [p.name for p in dest.parent.iterdir()] == ["archive.bin"]  # no temporary file left


def test_download_skips_a_dest_that_already_has_the_right_md5(tmp_path):
    dest = tmp_path / "archive.bin"
    dest.write_bytes(PAYLOAD)
    assert download("http://127.0.0.1:9/never-asked", dest, PAYLOAD_MD5) == dest


def test_download_replaces_a_dest_with_the_wrong_md5(source, tmp_path):
    dest = tmp_path / "archive.bin"
    dest.write_bytes(b"half a download")
    download(source.as_uri(), dest, PAYLOAD_MD5)
    assert dest.read_bytes() == PAYLOAD


def test_md5_mismatch_is_a_data_error_and_leaves_no_file(source, tmp_path):
    dest = tmp_path / "out" / "archive.bin"
    with pytest.raises(DataError) as error:
        download(source.as_uri(), dest, "0" * 32)
    message = str(error.value)
    assert source.as_uri() in message and "0" * 32 in message and PAYLOAD_MD5 in message
    assert list(dest.parent.iterdir()) == []


def test_unreachable_url_is_a_usage_error_saying_how_to_fetch_by_hand(tmp_path):
    dest = tmp_path / "archive.bin"
    url = "http://127.0.0.1:9/archive.bin"
    with pytest.raises(UsageError) as error:
        download(url, dest, PAYLOAD_MD5)
    message = str(error.value)
    assert str(dest) in message and url in message and PAYLOAD_MD5 in message
    assert "by hand" in message
    assert not dest.exists()


def test_missing_file_url_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="failed"):
        download((tmp_path / "nowhere.bin").as_uri(), tmp_path / "archive.bin", PAYLOAD_MD5)


def test_check_md5_compares_file_contents(source, tmp_path):
    assert check_md5(source, PAYLOAD_MD5)
    assert check_md5(source, PAYLOAD_MD5.upper())
    assert not check_md5(source, "0" * 32)
    assert not check_md5(tmp_path / "missing.bin", PAYLOAD_MD5)


def _tar(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_extract_tar_unpacks_and_replaces_an_earlier_partial_extraction(tmp_path):
    archive = _tar(tmp_path / "a.tar.gz", {"batches/one": b"1", "batches/two": b"2"})
    into = tmp_path / "dataset"
    (into / "batches").mkdir(parents=True)
    (into / "batches" / "stale").write_bytes(b"from an interrupted run")
    (into / "archive-sibling").write_bytes(b"kept")
    extract_tar(archive, into)
    assert sorted(p.name for p in (into / "batches").iterdir()) == ["one", "two"]
    assert (into / "archive-sibling").read_bytes() == b"kept"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left


def test_extract_tar_refuses_members_outside_the_destination(tmp_path):
    archive = _tar(tmp_path / "evil.tar.gz", {"../escaped": b"x"})
    with pytest.raises(DataError, match="evil.tar.gz"):
        extract_tar(archive, tmp_path / "dataset")
    assert not (tmp_path / "escaped").exists()


def test_extract_tar_of_a_corrupt_archive_is_a_data_error(tmp_path):
    archive = tmp_path / "broken.tar.gz"
    archive.write_bytes(b"not a tarball")
    with pytest.raises(DataError, match="broken.tar.gz"):
        extract_tar(archive, tmp_path / "dataset")
