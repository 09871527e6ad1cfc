"""Which process of a data-parallel run this is, from the variables torchrun sets (no torch import: the CLI asks
before it loads anything)."""

from __future__ import annotations

import os

# Set by torchrun (and `trainlab run --nproc N`) for every process it starts.
RANK, WORLD_SIZE, LOCAL_RANK = "RANK", "WORLD_SIZE", "LOCAL_RANK"


def started_by_torchrun() -> bool:
    return WORLD_SIZE in os.environ and RANK in os.environ


def env_world_size() -> int:
    return int(os.environ.get(WORLD_SIZE, "1"))


def env_rank() -> int:
    return int(os.environ.get(RANK, "0"))


# Set by `trainlab run --nproc N` to a folder where a process whose own error stops the run leaves its exit code:
# the launcher may stop that process before it exits, so the code the user sees cannot come from its exit alone.
FAILURES = "TRAINLAB_FAILURES"


def record_failure(exit_code: int) -> None:
    """This process's error stops the run: its exit code for the launcher (nothing outside `--nproc`)."""
    folder = os.environ.get(FAILURES)
    if not folder or not os.path.isdir(folder):
        return
    import time

    temporary = os.path.join(folder, f".rank-{env_rank()}.tmp")
    try:
        with open(temporary, "w") as file:
            file.write(f"{time.time()} {exit_code}")
        os.replace(temporary, os.path.join(folder, f"rank-{env_rank()}"))
    except OSError:
        pass  # the error being reported matters more; the launcher falls back to the exit codes it saw


def first_failure(folder: str) -> int | None:
    """The exit code of the process that recorded its failure first in `folder`, or None."""
    recorded = []
    for name in os.listdir(folder):
        if name.startswith("rank-"):
            with open(os.path.join(folder, name)) as file:
                seconds, code = file.read().split()
            recorded.append((float(seconds), int(name.removeprefix("rank-")), int(code)))
    return min(recorded)[2] if recorded else None
