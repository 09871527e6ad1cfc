"""`trainlab run --nproc N`: the same run in N processes on this machine, started as `torchrun --standalone` starts
them (torch's elastic launcher: a free port on localhost, the rank variables), each process running `trainlab run`.

What can be checked before any process starts is checked here, so that a mistake is told once with exit 2.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import tempfile
import uuid
from pathlib import Path

import torch

from trainlab.config import ExperimentConfig
from trainlab.engine.distributed import check_batch
from trainlab.errors import TrainlabError, UsageError
from trainlab.utils.processes import usable_cores
from trainlab.utils.ranks import FAILURES, first_failure


class ProcessKilled(TrainlabError):
    """A process of the run was killed by a signal (kill -9, out of memory) before it could report anything."""

    def __init__(self, rank: int, signum: int):
        try:
            name = signal.Signals(signum).name
        except ValueError:
            name = f"signal {signum}"
        super().__init__(f"process {rank} of the run was killed by {name}, so the others were stopped"
                         + (" (out of memory?)" if signum == signal.SIGKILL else ""))  # fmt: skip
        self.exit_code = 128 + signum  # the shell's convention


def trained_world_size(run_folder: Path) -> int:
    """The number of processes that trained a run (1 for a run that run.json does not say it of)."""
    try:
        return int(json.loads((run_folder / "run.json").read_text()).get("world_size", 1))
    except (OSError, ValueError, TypeError, AttributeError):
        return 1  # the resume itself reports a broken run folder


def check_nproc(nproc: int, config: ExperimentConfig, resume: Path | None) -> None:
    """The mistakes `--nproc` can make: more processes than cores (CPU) or GPUs, a batch they cannot share, a run
    resumed by another number of processes than trained it."""
    gpus = torch.cuda.device_count() if config.device != "cpu" else 0
    if config.device == "cuda" or gpus:
        if nproc > gpus:
            raise UsageError(f"--nproc {nproc}: torch sees {gpus} GPU{'s' * (gpus != 1)}, and each process needs its own "
                             f"(NCCL); use --nproc {max(gpus, 1)} or fewer")  # fmt: skip
    elif nproc > usable_cores():
        raise UsageError(
            f"--nproc {nproc}: this machine lets trainlab use {usable_cores()} CPU core{'s' * (usable_cores() != 1)}, and "
            f"each process needs at least one; use --nproc {usable_cores()} or fewer"
        )
    check_batch(config.data.batch_size, nproc)
    if resume is not None and (trained := trained_world_size(resume)) != nproc:
        raise UsageError(f"{resume} was trained by {trained} process{'es' * (trained > 1)}; resume it with the same "
                         f"number: trainlab run --resume {resume}" + (f" --nproc {trained}" if trained > 1 else ""))  # fmt: skip


def launch(nproc: int, arguments: list[str]) -> int:
    """Run `trainlab ARGUMENTS` in `nproc` local processes (ranks 0..nproc-1); returns the exit code: 0, or that of
    the process that failed first (each process prints its own error; rank 0 prints the run's output)."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    for name in list(logging.root.manager.loggerDict):  # the processes report for themselves
        if name.startswith("torch.distributed.elastic"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
    if "OMP_NUM_THREADS" not in os.environ:  # the cores shared out, as torchrun does
        os.environ["OMP_NUM_THREADS"] = str(max(1, usable_cores() // nproc))
    config = LaunchConfig(
        min_nodes=1, max_nodes=1, nproc_per_node=nproc, run_id=f"trainlab-{uuid.uuid4().hex[:8]}",
        rdzv_backend="c10d", rdzv_endpoint="localhost:0", max_restarts=0, monitor_interval=0.1,
    )  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="trainlab-failures-") as failures:
        os.environ[FAILURES] = failures
        try:
            elastic_launch(config, sys.executable)("-m", "trainlab", *arguments)
        except ChildFailedError as e:
            return _exit_code(e, first_failure(failures))
        except SignalException as e:  # Ctrl-C or SIGTERM: the processes stop after their step, rank 0 says how to resume
            return 128 + int(e.sigval)
        finally:
            del os.environ[FAILURES]
    return 0


def _exit_code(error, recorded: int | None) -> int:  # noqa: ANN001  (torch's ChildFailedError, imported late)
    """The exit code of the process whose own error stopped the run: the one it recorded (the launcher may have
    stopped it before it exited, and the others exit 1 when they learn of it), else the first positive exit code."""
    if recorded is not None:
        return recorded
    reported = sorted((f.timestamp, rank, f.exitcode) for rank, f in error.failures.items() if f.exitcode > 0)
    if reported:  # the first process that failed and said why (the others were stopped by the launcher)
        return reported[0][2]
    rank, failure = error.get_first_failure()  # killed by a signal: it could say nothing itself
    raise ProcessKilled(rank, -failure.exitcode) from None
