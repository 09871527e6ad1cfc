"""How a run ends, whatever ends it: Ctrl-C, SIGTERM, SIGHUP, kill -9, a full disk, a folder it cannot
write. Real processes, real signals, real read-only and full filesystems."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import TINY
from trainlab.run_folder import DIED, RunFolder
from trainlab.utils import io

LONG = [*TINY, "epochs=100000"]


def start(*args, cwd=None, env=None):
    return subprocess.Popen([sys.executable, "-m", "trainlab", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=cwd, env={**os.environ, "COLUMNS": "40", **(env or {})})


def trainlab(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "trainlab", *args], capture_output=True, text=True, cwd=cwd, timeout=300)


def end(process):
    """A process a failed test leaves running is killed, so that it does not slow the tests after it."""
    if process.poll() is None:
        process.kill()
        process.communicate()


def wait_for_epochs(root, count=1, timeout=120, process=None):
    """The run folder once `count` epochs are in its metrics.csv (`process`: the run's, whose end says why not)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and (process is None or process.poll() is None):
        for metrics in root.glob("*/metrics.csv"):
            if len(metrics.read_text().splitlines()) > count:
                return metrics.parent
        time.sleep(0.1)
    if process is not None:
        if process.poll() is None:
            process.kill()
        _, stderr = process.communicate()
        raise AssertionError(f"no epoch finished under {root}; the run's process: exit {process.returncode}, {stderr[-2000:]}")
    raise AssertionError(f"no epoch finished under {root}")


def read_run(folder):
    return json.loads((folder / "run.json").read_text())


@pytest.mark.parametrize("signum, code, words", [
    (signal.SIGTERM, 143, "stopped by SIGTERM"), (signal.SIGHUP, 129, "stopped by SIGHUP"), (signal.SIGINT, 130, "interrupted"),
])  # fmt: skip
def test_a_signal_ends_the_run_as_interrupted_with_the_resume_command_on_one_line(isolated, signum, code, words):
    process = start("run", *LONG)
    try:
        folder = wait_for_epochs(isolated / "runs")
        process.send_signal(signum)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        end(process)
    assert process.returncode == code, stderr
    assert "Traceback" not in stderr
    resume_line = next(line for line in stdout.splitlines() if "continue with" in line)
    assert resume_line.startswith(words) and resume_line.endswith(f"trainlab run --resume runs/{folder.name}")  # unwrapped
    record = read_run(folder)
    assert record["status"] == "interrupted" and record["epochs_completed"] >= 1
    assert not list(folder.rglob(".*.tmp"))


def test_a_killed_run_is_recognised_as_dead_and_resumes(isolated):
    process = start("run", *TINY, "epochs=100000")
    folder = wait_for_epochs(isolated / "runs", process=process)
    deadline = time.monotonic() + 60
    while not (folder / "checkpoints" / "last.pt").is_file() and time.monotonic() < deadline:
        time.sleep(0.05)  # the epoch's row in metrics.csv comes before its checkpoint
    assert RunFolder(folder).status()[0] == "running"
    process.kill()  # SIGKILL: no chance to record anything
    process.communicate()
    assert read_run(folder)["status"] == "running"
    status, reason = RunFolder(folder).status()
    assert status == DIED and str(process.pid) in reason
    compared = trainlab("compare", "runs")
    assert compared.returncode == 0 and DIED in compared.stdout
    leftover = folder / "checkpoints" / f".last.pt.{io._host()}.{process.pid}.tmp"  # a write the kill cut short
    leftover.write_bytes(b"half a checkpoint")
    resumed = start("run", "--resume", str(folder))
    epochs_before = len((folder / "metrics.csv").read_text().splitlines())
    wait_for_epochs(isolated / "runs", count=epochs_before, process=resumed)  # one more epoch
    resumed.send_signal(signal.SIGTERM)
    resumed.communicate(timeout=60)
    assert read_run(folder)["status"] == "interrupted"
    assert not leftover.exists()


def test_resuming_a_run_that_is_still_training_is_refused(isolated):
    process = start("run", *LONG)
    try:
        folder = wait_for_epochs(isolated / "runs")
        result = trainlab("run", "--resume", str(folder))
        assert result.returncode == 2 and "Traceback" not in result.stderr
        assert f"being trained by process {process.pid}" in result.stderr
        assert read_run(folder)["pid"] == process.pid  # the refused resume changed nothing
    finally:
        process.terminate()
        process.communicate(timeout=60)


def test_a_full_disk_fails_the_run_with_one_message_and_no_partial_file(isolated, full_disk_dir):
    disk = full_disk_dir(isolated / "disk", size=400 * 1024)
    result = trainlab("run", "epochs=100", "progress=false", f"output_dir={disk}")
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    folder = next(disk.iterdir())
    assert f"cannot write to {folder}: No space left on device" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not [p for p in folder.rglob("*") if p.name.endswith(".tmp")]
    record = read_run(folder)  # rewritten in place: no room for a new file beside it
    assert record["status"] == "failed" and "No space left" in record["error"]


def test_an_output_dir_that_is_a_file_or_read_only_is_a_usage_error(isolated, read_only_dir):
    (isolated / "taken").write_text("a file")
    result = trainlab("run", *TINY, "output_dir=taken")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "output_dir taken: is a file" in result.stderr
    locked = read_only_dir(isolated / "locked")
    result = trainlab("run", *TINY, f"output_dir={locked}")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"output_dir {locked}" in result.stderr and "set output_dir=" in result.stderr


def test_a_read_only_working_directory_is_a_usage_error(isolated, read_only_dir):
    here = read_only_dir(isolated / "readonly-cwd")
    result = trainlab("run", *TINY, cwd=here)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "cannot create a run folder there" in result.stderr


def test_the_run_folder_records_the_threads_it_used(isolated):
    result = trainlab("run", *TINY)
    assert result.returncode == 0, result.stderr
    folder = next((isolated / "runs").iterdir())
    threads = read_run(folder)["threads"]
    assert threads["mode"] == "auto" and 1 <= threads["max"] <= threads["cores"]
    assert abs(sum(threads["share"].values()) - 1) < 0.01
    rows = (folder / "metrics.csv").read_text().splitlines()
    assert rows[0].endswith(",threads") and all(int(r.rsplit(",", 1)[1]) >= 1 for r in rows[1:])
    result = trainlab("run", *TINY, "threads=1")
    fixed = read_run(max((isolated / "runs").iterdir()))["threads"]
    assert fixed["mode"] == "fixed" and fixed["share"] == {"1": 1.0}


def test_a_closed_terminal_interrupts_the_run_instead_of_failing_it(isolated):
    import pty

    import fcntl
    import termios

    controller, terminal = pty.openpty()

    def own_terminal():  # a session of its own, with the pseudo-terminal as its controlling terminal
        os.setsid()
        fcntl.ioctl(terminal, termios.TIOCSCTTY, 0)

    process = subprocess.Popen([sys.executable, "-m", "trainlab", "run", *LONG], stdin=terminal, stdout=terminal,
                               stderr=terminal, preexec_fn=own_terminal)  # fmt: skip
    os.close(terminal)
    try:
        try:
            folder = wait_for_epochs(isolated / "runs")
        finally:
            os.close(controller)  # the terminal goes away: the kernel sends SIGHUP, and writing to it fails (EIO)
        assert process.wait(timeout=60) == 129
    finally:
        end(process)
    record = read_run(folder)
    assert record["status"] == "interrupted", record.get("error")


def test_a_run_on_another_machine_is_dead_once_its_heartbeat_is_old_and_after_a_restart_at_once():
    import datetime as dt

    from trainlab.run_folder import STALE_HEARTBEAT_SECONDS, process_identity, run_status

    def ago(seconds):
        return (dt.datetime.now().astimezone() - dt.timedelta(seconds=seconds)).isoformat(timespec="seconds")

    elsewhere = {"status": "running", "pid": 4242, "host": "another-machine", "boot_id": "x"}
    assert run_status({**elsewhere, "heartbeat": ago(60)})[0] == "running"
    status, reason = run_status({**elsewhere, "heartbeat": ago(STALE_HEARTBEAT_SECONDS + 60)})
    assert status == DIED and "another-machine" in reason
    here = {"status": "running", **process_identity(), "heartbeat": ago(0)}
    assert run_status(here)[0] == "running"  # this very process
    assert run_status({**here, "boot_id": "an-earlier-boot"})[0] == DIED  # the machine restarted since
    assert run_status({**here, "process_start": here["process_start"] + 1})[0] == DIED  # the pid was reused
    assert run_status({"status": "finished", "pid": 1})[0] == "finished"
