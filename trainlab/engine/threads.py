"""Share the CPU with other busy processes instead of fighting them.

Every torch process starts one OpenMP thread per core. Two such processes on the same cores
do not each run at half speed: each parallel region waits at a barrier for a thread that the
kernel has given to the other process, and both slow down 10-100x (PERF-NOTES.md). So a run
watches how much CPU the rest of the machine uses and trains with the cores left free:
with another busy process on a 2-core machine, one thread; alone again, two.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import torch

from trainlab.engine.loop import Callback, Trainer
from trainlab.utils.processes import usable_cores

_BUSY_FIELDS = (0, 1, 2, 5, 6)  # user, nice, system, irq, softirq of /proc/stat's "cpu" line (not idle, iowait, steal)


class OtherLoad:
    """How many cores the other processes of this machine kept busy since the last reading.
    Reads the machine's busy time (/proc/stat) and this process's (/proc/self/stat): a few
    microseconds. Unavailable (None) where /proc is missing."""

    def __init__(self) -> None:
        self.ticks_per_s = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self.last = self._read()

    @staticmethod
    def _read() -> tuple[float, int, int] | None:
        try:
            cpu = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
            own = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            return None
        machine = sum(int(cpu[i]) for i in _BUSY_FIELDS if i < len(cpu))
        return time.monotonic(), machine, sum(int(own[i]) for i in (11, 12, 13, 14))  # utime, stime: ours and our reaped children

    def cores(self) -> float | None:
        """Cores used by others since the previous call (0.0 = an idle machine besides us)."""
        now = self._read()
        if now is None or self.last is None:
            return None
        (t0, machine0, own0), (t1, machine1, own1) = self.last, now
        self.last = now
        if t1 - t0 <= 0:
            return None
        others = (machine1 - machine0) - (own1 - own0)
        return max(0.0, others / self.ticks_per_s / (t1 - t0))


def threads_for(free_cores: float, current: int, ceiling: int) -> int:
    """Threads to use when `free_cores` are left by the others: go down as soon as a half core is
    missing, go back up only when nearly all of it is free again (no flapping at the boundary)."""
    down = math.floor(free_cores + 0.5)
    up = math.floor(free_cores + 0.2)
    wanted = down if down < current else up if up > current else current
    return max(1, min(ceiling, wanted))


class CPUThreads(Callback):
    """Adapts torch's thread count to the load of the machine, measured once a second during
    training (`threads: auto`), or fixes it (`threads: N`). The count at the end of each epoch
    goes into the history (metrics.csv `threads`); `summary()` says what was used."""

    def __init__(self, threads: int | str | None = "auto", interval: float = 1.0):
        threads = None if threads in (None, "auto") else int(threads)
        self.fixed, self.interval = threads, interval
        self.initial = torch.get_num_threads()
        self.ceiling = threads or self.initial
        self.load = OtherLoad() if threads is None else None
        self.next_check = time.monotonic() + interval
        self.used: dict[int, float] = {}  # threads -> seconds trained with that count
        self.since = time.monotonic()
        self.changes = 0
        if threads:
            torch.set_num_threads(threads)

    def _wanted(self, current: int) -> int:
        others = self.load.cores() if self.load is not None else None
        if others is None:
            return current
        return threads_for(usable_cores() - others, current, self.ceiling)

    def _set(self, threads: int) -> None:
        now = time.monotonic()
        current = torch.get_num_threads()
        self.used[current] = self.used.get(current, 0.0) + now - self.since
        self.since = now
        if threads != current:
            torch.set_num_threads(threads)
            self.changes += 1

    def check(self, min_window: float | None = None) -> None:
        """Measure the others' load once `interval` seconds have passed (or `min_window` seconds, if given)."""
        now = time.monotonic()
        due = self.next_check if min_window is None else self.next_check - self.interval + min_window
        if self.load is None or now < due:
            return
        self.next_check = now + self.interval
        self._set(self._wanted(torch.get_num_threads()))

    def on_fit_start(self, trainer: Trainer) -> None:
        self.check(min_window=0.25)  # the time spent since the run began (sample grid, summary) is a first reading

    def on_train_batch_end(self, trainer: Trainer) -> None:
        self.check()

    def on_validation_end(self, trainer: Trainer) -> None:
        self.check()

    def on_epoch_end(self, trainer: Trainer) -> None:
        trainer.history[-1]["threads"] = torch.get_num_threads()

    def summary(self) -> dict[str, object]:
        self._set(torch.get_num_threads())  # books the time since the last change
        total = sum(self.used.values()) or 1.0
        return {
            "mode": "auto" if self.fixed is None else "fixed", "max": self.ceiling, "cores": usable_cores(),
            "changes": self.changes,
            "share": {str(k): round(v / total, 3) for k, v in sorted(self.used.items()) if round(v / total, 3) > 0},
        }  # fmt: skip

    def restore(self) -> None:
        torch.set_num_threads(self.initial)
