"""The run folder: `runs/<name>-<YYYYmmdd-HHMMSS>/` and the records in it."""

from __future__ import annotations

import datetime as dt
import errno
import json
import os
import platform
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

from trainlab.engine.loop import Callback, Trainer
from trainlab.errors import TrainlabError, UsageError
from trainlab.run_records import RUN_JSON, read_run_record
from trainlab.utils.io import remove_stale_temporaries, write_json, write_text
from trainlab.utils.machine import cpu_name, package_version
from trainlab.utils.processes import pid_alive

STATUSES = ("running", "finished", "interrupted", "failed")
DIED = "died"  # shown for a run whose run.json says running but whose process is gone (kill -9, power loss)
HEARTBEAT_SECONDS = 60
STALE_HEARTBEAT_SECONDS = 30 * 60  # a run on another machine that has not written for this long is taken as dead


class RunFolder:
    def __init__(self, path: Path):
        self.path = Path(path)

    @classmethod
    def create(cls, output_dir: Path, name: str) -> RunFolder:
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        if output_dir.exists() and not output_dir.is_dir():
            raise UsageError(f"output_dir {output_dir}: is a file, expected a folder for run folders (set output_dir=...)")
        try:
            output_dir.mkdir(parents=True, exist_ok=True)
            for attempt in range(100):  # two runs started in the same second get -2, -3, ...
                path = output_dir / (f"{name}-{stamp}" + (f"-{attempt + 1}" if attempt else ""))
                try:
                    path.mkdir()
                    return cls(path)
                except FileExistsError:
                    continue
        except OSError as e:
            raise UsageError(
                f"output_dir {output_dir.absolute()}: cannot create a run folder there ({e.strerror}); "
                "set output_dir=... to a folder you can write to"
            ) from None
        raise UsageError(f"cannot create a run folder in {output_dir}")

    @classmethod
    def open(cls, path: Path) -> RunFolder:
        path = Path(path)
        if not (path / "config.yaml").is_file():
            raise UsageError(f"{path} is not a run folder (no config.yaml in it)")
        return cls(path)

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    def read_run(self, *, missing_ok: bool = False) -> dict[str, Any]:
        """run.json; with `missing_ok`, {} when there is none yet (a folder being set up). A missing (without
        `missing_ok`) or corrupt run.json is a DataError naming it (see run_records)."""
        return read_run_record(self.path, missing_ok=missing_ok) or {}

    def update_run(self, **fields: Any) -> dict[str, Any]:
        """Merge `fields` into run.json (status, timings, final metrics). Two processes may update it at
        once (the training and a `trainlab eval`): a short lock keeps each one's fields."""
        import fcntl

        path = self.path / RUN_JSON
        with open(self.path / ".run.json.lock", "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            record = (read_run_record(self.path, missing_ok=True) or {}) | fields  # a corrupt run.json is not overwritten
            try:
                write_json(path, record)
            except OSError as e:
                if e.errno not in (errno.ENOSPC, errno.EDQUOT) or not _overwrite_in_place(path, record):
                    raise
        return record

    def write_config(self, config_yaml: str) -> None:
        write_text(self.path / "config.yaml", config_yaml)

    def claim(self) -> None:
        """Hold the run folder for this process until it exits (an exclusive lock on `.lock`) and record
        who trains it, so that a second `--resume` is refused and a killed run is recognised as dead."""
        import fcntl

        self._lock = open(self.path / ".lock", "a+")  # closed (and released) by the OS when the process ends
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            owner = self.read_run(missing_ok=True)
            raise UsageError(
                f"{self.path} is being trained by process {owner.get('pid', '?')} on {owner.get('host', '?')} "
                "(started {started}); wait for it, or stop it first (Ctrl-C or kill {pid})".format(
                    started=owner.get("heartbeat") or owner.get("started", "?"), pid=owner.get("pid", "PID"))
            ) from None
        for folder in (self.path, self.checkpoints):
            remove_stale_temporaries(folder)  # the half-written files of a killed run
        self.update_run(**process_identity(), heartbeat=_now())

    def status(self) -> tuple[str, str]:
        """The run's status and why: run.json's, except `died` for a run whose process is gone."""
        return run_status(self.read_run(missing_ok=True))


def _overwrite_in_place(path: Path, record: dict[str, Any]) -> bool:
    """On a full disk, a new run.json cannot be written beside the old one, but the old one's blocks can be
    reused: the only way left to record how the run ended. Not atomic; False when it does not fit."""
    text = (json.dumps(record, indent=2, default=str) + "\n").encode()
    try:
        if len(text) > path.stat().st_blocks * 512:
            return False
        with open(path, "r+b") as f:
            f.write(text)
            f.truncate()
        return True
    except OSError:
        return False


def _now() -> str:
    return dt.datetime.now().astimezone().isoformat(timespec="seconds")


def _boot_id() -> str | None:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None


def _process_start(pid: int) -> int | None:
    """Start time of process `pid` in clock ticks after boot: tells a reused pid from the original."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def process_identity() -> dict[str, Any]:
    pid = os.getpid()
    return {"pid": pid, "host": socket.gethostname(), "boot_id": _boot_id(), "process_start": _process_start(pid)}


def _process_alive(record: dict[str, Any]) -> bool | None:
    """Whether the process that wrote `record` still runs; None when that cannot be told from here."""
    pid = record.get("pid")
    if not isinstance(pid, int) or record.get("host") != socket.gethostname():
        return None
    if record.get("boot_id") and _boot_id() and record["boot_id"] != _boot_id():
        return False  # the machine restarted since
    if not pid_alive(pid):
        return False
    start = _process_start(pid)
    return start is None or record.get("process_start") in (None, start)


def run_status(record: dict[str, Any]) -> tuple[str, str]:
    """(status, reason): `running` only while the training process lives (same machine) or keeps
    writing its heartbeat (another machine); otherwise `died`."""
    status = record.get("status") or "unknown"
    if status != "running":
        return status, ""
    alive = _process_alive(record)
    if alive is False:
        return DIED, f"its process {record.get('pid')} is gone without recording an end (killed, or the machine stopped)"
    if alive is None and record.get("heartbeat"):
        try:
            age = time.time() - dt.datetime.fromisoformat(record["heartbeat"]).timestamp()
        except (TypeError, ValueError):
            return status, ""
        if age > STALE_HEARTBEAT_SECONDS:
            return DIED, f"no sign of life from {record.get('host', 'its machine')} for {age / 60:.0f} min"
    return status, ""


class Heartbeat(Callback):
    """Writes the time into run.json after every epoch and at least once a minute, so that a run on
    another machine can be told alive from dead."""

    def __init__(self, folder: RunFolder, every: float = HEARTBEAT_SECONDS):
        self.folder, self.every = folder, every
        self.last = time.monotonic()

    def beat(self) -> None:
        self.last = time.monotonic()
        self.folder.update_run(heartbeat=_now())

    def on_train_batch_end(self, trainer: Trainer) -> None:
        if time.monotonic() - self.last >= self.every:
            self.beat()

    def on_epoch_end(self, trainer: Trainer) -> None:
        self.beat()


def disk_error(folder: RunFolder | Path, error: OSError) -> TrainlabError:
    """A write that failed in a run folder (disk full, read-only, quota), as one message naming the folder."""
    path = folder.path if isinstance(folder, RunFolder) else folder
    message = f"cannot write to {path}: {error.strerror or error}"
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        message += "; free some space (or set output_dir=... to another disk)"
        if (path / "checkpoints" / "last.pt").is_file():
            message += f", then continue with: trainlab run --resume {path}"
    return TrainlabError(message)


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=True)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def environment(seed: int, placement: Any) -> dict[str, Any]:
    """Everything that could change a result: versions, hardware, threads, commit, seed, command line."""
    from trainlab.engine.device import cpu_has_bf16

    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": {p: package_version(p) for p in ("trainlab", "torch", "numpy", "scikit-learn", "pillow", "pydantic")},
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "cpu_bf16": cpu_has_bf16(),
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "device": str(placement.device),
        "precision": placement.precision,
        "channels_last": placement.channels_last,
        "git_commit": _git_commit(),
        "seed": seed,
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "cwd": os.getcwd(),
        "started": _now(),
    }
