"""Fetch a published file once, check it against its MD5 or SHA-256, and unpack an archive safely."""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import tarfile
import tempfile
import urllib.request
from pathlib import Path

from trainlab.errors import DataError, UsageError
from trainlab.utils.io import atomic_path

TIMEOUT_S = 30  # per blocking network operation, not for the whole download
CHUNK_BYTES = 1 << 20


def _digest_of(path: Path, algorithm: str) -> str:
    digest = hashlib.new(algorithm, usedforsecurity=False)
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def check_md5(path: str | os.PathLike, md5: str) -> bool:
    """Whether `path` is a file whose MD5 is `md5`."""
    path = Path(path)
    return path.is_file() and _digest_of(path, "md5") == md5.lower()


def check_sha256(path: str | os.PathLike, sha256: str) -> bool:
    """Whether `path` is a file whose SHA-256 is `sha256`."""
    path = Path(path)
    return path.is_file() and _digest_of(path, "sha256") == sha256.lower()


def download(url: str, dest: Path, md5: str | None = None, *, sha256: str | None = None) -> Path:
    """Download `url` to `dest` unless it is already there with the right checksum; returns `dest`.

    The checksum is `sha256` when given, else `md5`; with neither, a file already at `dest` is kept
    and a download is not verified. Raises UsageError when the network fails (the message says how
    to fetch the file by hand) and DataError when the downloaded bytes do not have the expected checksum.
    """
    dest = Path(dest)
    algorithm, expected = ("sha256", sha256) if sha256 else ("md5", md5)
    if dest.is_file() and (expected is None or _digest_of(dest, algorithm) == expected.lower()):
        return dest
    name = {"md5": "MD5", "sha256": "SHA-256"}[algorithm]
    try:
        with atomic_path(dest) as tmp, urllib.request.urlopen(url, timeout=TIMEOUT_S) as response, open(tmp, "wb") as f:
            digest = hashlib.new(algorithm, usedforsecurity=False)
            while chunk := response.read(CHUNK_BYTES):
                digest.update(chunk)
                f.write(chunk)
            actual = digest.hexdigest()
            if expected is not None and actual != expected.lower():
                raise DataError(f"download of {url} is corrupt: expected {name} {expected}, got {actual}")
    except (OSError, http.client.HTTPException) as e:  # URLError and timeouts are OSErrors
        reason = getattr(e, "reason", None) or e
        raise UsageError(
            f"missing file: {dest}\n"
            f"the download from {url} failed ({reason})\n"
            f"download it by hand from {url}{f' ({name} {expected})' if expected else ''} and put it at {dest}"
        ) from e
    return dest


def extract_tar(archive: Path, into: Path) -> None:
    """Unpack `archive` under `into`; each top-level entry of the archive appears whole or not at all.

    Members that would land outside `into`, links to outside it, devices and the like
    are refused (tarfile's "data" filter), and raise DataError naming the archive.
    """
    archive, into = Path(archive), Path(into)
    into.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{into.name}.", suffix=".extract", dir=into.parent))
    try:
        try:
            with tarfile.open(archive) as tar:
                tar.extractall(tmp, filter="data")
        except (tarfile.TarError, EOFError, OSError) as e:
            raise DataError(f"cannot extract {archive}: {e}") from e
        for entry in tmp.iterdir():
            target = into / entry.name
            # A re-extraction replaces what an earlier, perhaps interrupted, one left.
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            elif target.exists() or target.is_symlink():
                target.unlink()
            os.replace(entry, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
