"""Ctrl-C, SIGTERM (kill, timeout, a batch scheduler) and SIGHUP (a closed terminal, a dropped ssh
session) all stop a run the same way: the run folder records `interrupted` and says how to resume.

While the training loop runs, a stop waits for the end of the current batch (a "safe point"):
raised in the middle of a file write or of TensorBoard's writer thread hand-off, the exception
could leave a half-written file or a lock held, and the clean-up that follows would hang.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import sys
from typing import Any

from trainlab.errors import TrainlabError

STOP_SIGNALS = tuple(s for s in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGHUP", None)) if s is not None)

_safe_points = 0  # > 0 while a loop checks for a pending stop at the end of each step
_pending: KeyboardInterrupt | None = None
_stopping = False


class Stopped(KeyboardInterrupt):
    """A stop asked for by a signal; everything that handles Ctrl-C handles it."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum  # the shell's convention: 143 for SIGTERM, 129 for SIGHUP


def interruption(error: BaseException) -> str:
    """How to name a stop in a message: 'interrupted' (Ctrl-C) or 'stopped by SIGTERM'."""
    return f"stopped by {error}" if isinstance(error, Stopped) else "interrupted"


def exit_code(error: BaseException) -> int:
    return error.exit_code if isinstance(error, Stopped) else 130


class Interrupted(TrainlabError):
    """A command stopped by Ctrl-C or a signal, as an error the CLI prints in one line (`reported`:
    the run already printed how to resume) and exits with 130, 143 or 129."""

    def __init__(self, cause: BaseException):
        super().__init__(interruption(cause))
        self.exit_code = exit_code(cause)
        self.reported = getattr(cause, "reported", False)


def mark_reported(error: BaseException) -> None:
    """The run has printed where it stopped and how to resume: nothing more to say."""
    error.reported = True


def _detach_from_closed_terminal() -> None:
    """After SIGHUP the terminal is gone and writing to it fails (EIO): send what is left to /dev/null."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    for fd in (1, 2):
        with contextlib.suppress(OSError):
            if os.isatty(fd):
                os.dup2(devnull, fd)
    os.close(devnull)


class _TerminalStream:
    """sys.stdout/stderr that fall silent instead of raising when their terminal has gone (EIO): the
    SIGHUP that comes with it then stops the run cleanly, wherever the next print happened to be."""

    def __init__(self, stream: Any):
        self._stream = stream

    def _fall_silent(self) -> None:
        self._stream = open(os.devnull, "w")

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except OSError as e:
            if e.errno != errno.EIO:
                raise
            self._fall_silent()
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except OSError as e:
            if e.errno != errno.EIO:
                raise
            self._fall_silent()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def guard_terminal_streams() -> None:
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is not None and not isinstance(stream, _TerminalStream) and stream.isatty():
            setattr(sys, name, _TerminalStream(stream))


def _handler(signum: int, frame: Any) -> None:
    global _pending, _stopping
    if signum == getattr(signal, "SIGHUP", None):
        _detach_from_closed_terminal()
    interrupt = KeyboardInterrupt() if signum == signal.SIGINT else Stopped(signum)
    if _pending is not None or _stopping:
        if signum == signal.SIGINT:
            raise interrupt  # Ctrl-C pressed again: the user insists
        return  # a repeated SIGTERM/SIGHUP while stopping: let the clean-up finish
    if _safe_points:
        _pending = interrupt
        return
    _stopping = True
    raise interrupt


def stop_on_signals() -> None:
    """Turn Ctrl-C, SIGTERM and SIGHUP into KeyboardInterrupt/`Stopped` in the main thread."""
    guard_terminal_streams()
    for signum in (signal.SIGINT, *STOP_SIGNALS):
        current = signal.getsignal(signum)
        if current in (signal.SIG_DFL, signal.default_int_handler, None):  # leave a handler someone else installed alone
            signal.signal(signum, _handler)


def hold_stops() -> None:
    """From here until `release_stops()`, a stop is held until `check()` (the end of a training step) raises it."""
    global _safe_points
    _safe_points += 1


def release_stops() -> None:
    global _safe_points
    _safe_points = max(0, _safe_points - 1)


def stop_pending() -> bool:
    """Whether a stop arrived since the last safe point (`check()` would raise it)."""
    return _pending is not None


def check() -> None:
    """Raise the stop that arrived since the last safe point, if any."""
    global _pending, _stopping
    if _pending is not None:
        interrupt, _pending = _pending, None
        _stopping = True
        raise interrupt
