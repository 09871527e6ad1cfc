"""Atomic file writes: every file trainlab writes appears whole or not at all."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from trainlab.errors import UsageError
from trainlab.utils.processes import pid_alive


# A file is written to `.<name>.<host>.<pid>.tmp` first, so that a later run can tell the leftover of a
# killed writer (its process is gone) from a file being written, and remove it.
_TEMPORARY = re.compile(r"\.(?P<name>.+)\.(?P<host>[A-Za-z0-9_-]+)\.(?P<pid>[0-9]+)\.tmp")
_OLD_TEMPORARY = re.compile(r"\..+\.[a-z0-9_]{8}\.tmp")  # tempfile.mkstemp's names, used before
OLD_TEMPORARY_S = 3600  # an old-style temporary file untouched this long is a killed writer's


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9-]+", "_", socket.gethostname()) or "_"


def remove_stale_temporaries(folder: str | os.PathLike) -> int:
    """Delete the temporary files (and folders) that killed writers left in `folder` (not below it); returns how many."""
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return 0  # no folder yet, or one that cannot be read: nothing to clean
    host, removed = _host(), 0
    for entry in entries:
        match = _TEMPORARY.fullmatch(entry.name)
        try:
            if match and match["host"] == host and not pid_alive(int(match["pid"])):
                shutil.rmtree(entry.path) if entry.is_dir(follow_symlinks=False) else os.unlink(entry.path)
                removed += 1
            elif _OLD_TEMPORARY.fullmatch(entry.name) and time.time() - entry.stat().st_mtime > OLD_TEMPORARY_S:
                os.unlink(entry.path)
                removed += 1
        except OSError:
            pass  # removed by another process meanwhile, or a read-only folder
    return removed


def temporary_name(name: str) -> str:
    """`.<name>.<host>.<pid>.tmp`: what this process writes before renaming it to `name`."""
    return f".{name}.{_host()}.{os.getpid()}.tmp"


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it is renamed onto `path`, on error removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = path.with_name(temporary_name(path.name))
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp_path.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", **kwargs: Any) -> Iterator[IO]:
    """Like open(path, mode), but the file appears only once it is completely written."""
    with atomic_path(path) as tmp, open(tmp, mode, **kwargs) as f:
        yield f


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_open(path, "w", encoding="utf-8") as f:
        f.write(text)


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_open(path, "wb") as f:
        f.write(data)


def write_json(path: str | os.PathLike, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


def fresh_folder(parent: Path, name: str) -> Path:
    """A new temporary folder for `name` in `parent` (one a killed writer left is removed first), to be renamed
    onto `name` by `publish_folder` once complete; a UsageError at once if `parent` cannot be written."""
    remove_stale_temporaries(parent)
    target = Path(parent) / temporary_name(name)
    shutil.rmtree(target, ignore_errors=True)
    try:
        target.mkdir()
    except OSError as e:
        raise UsageError(f"cannot write into {parent}: {e.strerror or e}") from None
    return target


def publish_folder(target: Path, final: Path) -> Path:
    """Replace `final` with the completed `target`: the old folder stays whole until the new one is."""
    old = final.with_name(temporary_name(f"{final.name}-old"))
    if final.exists():
        final.rename(old)
    target.rename(final)
    shutil.rmtree(old, ignore_errors=True)
    return final
