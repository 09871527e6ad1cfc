"""What the machine is: the CPU's name and the instruction sets that decide bf16 and int8 speed, package versions."""

from __future__ import annotations

import platform
from importlib import metadata
from pathlib import Path

# /proc/cpuinfo flags that decide how fast bf16 and int8 run: VNNI (int8 dot products), AVX-512 BF16, AMX tiles
SPEED_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8")


def _cpuinfo_field(name: str) -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(name):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_name() -> str:
    return _cpuinfo_field("model name") or platform.processor() or platform.machine()


def cpu_flags() -> list[str]:
    """The SPEED_FLAGS this CPU has (empty where /proc/cpuinfo cannot be read)."""
    flags = set((_cpuinfo_field("flags") or "").split())
    return [flag for flag in SPEED_FLAGS if flag in flags]


def package_version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None
