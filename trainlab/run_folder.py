"""The run folder: `runs/<name>-<YYYYmmdd-HHMMSS>/` and the records in it."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from trainlab.errors import UsageError
from trainlab.utils.io import write_json, write_text

STATUSES = ("running", "finished", "interrupted", "failed")


class RunFolder:
    def __init__(self, path: Path):
        self.path = Path(path)

    @classmethod
    def create(cls, output_dir: Path, name: str) -> RunFolder:
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        output_dir.mkdir(parents=True, exist_ok=True)
        for attempt in range(100):  # two runs started in the same second get -2, -3, ...
            path = output_dir / (f"{name}-{stamp}" + (f"-{attempt + 1}" if attempt else ""))
            try:
                path.mkdir()
                return cls(path)
            except FileExistsError:
                continue
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

    def read_run(self) -> dict[str, Any]:
        try:
            return json.loads((self.path / "run.json").read_text())
        except (OSError, ValueError):
            return {}

    def update_run(self, **fields: Any) -> dict[str, Any]:
        """Merge `fields` into run.json (status, timings, final metrics)."""
        record = self.read_run() | fields
        write_json(self.path / "run.json", record)
        return record

    def write_config(self, config_yaml: str) -> None:
        write_text(self.path / "config.yaml", config_yaml)


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=True)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def environment(seed: int, placement: Any) -> dict[str, Any]:
    """Everything that could change a result: versions, hardware, threads, commit, seed, command line."""
    from trainlab.engine.device import cpu_has_bf16

    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": {p: _version(p) for p in ("trainlab", "torch", "numpy", "scikit-learn", "pillow", "pydantic")},
        "cpu": _cpu_name(),
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
        "started": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
    }
