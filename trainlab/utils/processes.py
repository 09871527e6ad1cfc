"""What a process may know about the machine's CPUs and about other processes."""

from __future__ import annotations

import os


def usable_cores() -> int:
    """The CPUs this process may run on, which a container or job scheduler can set below the machine's count."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this machine (another user's included)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: another user's process
        return True
    return True
