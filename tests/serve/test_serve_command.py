"""`trainlab serve` as a user starts it: it says where it listens, answers, and stops on SIGTERM without a
traceback; a port in use or a run that cannot be served is one line and exit 2."""

import json
import os
import re
import pickle
import select
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.serve.conftest import running_server  # noqa: F401  (the conftest's importorskip applies)
from trainlab.serve.server import WorkerSocket, bind

TRAINLAB = [sys.executable, "-m", "trainlab.cli"]


def start(*arguments, env=None):
    return subprocess.Popen([*TRAINLAB, "serve", *map(str, arguments)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})})  # fmt: skip


@pytest.mark.parametrize("workers", [1, 2])
def test_the_command_serves_and_stops_on_sigterm(serve_runs, workers):
    server = start(serve_runs["image"], "--port", 0, "--quiet", "--workers", workers)
    try:
        line = server.stdout.readline()
        match = re.search(r"at http://127\.0\.0\.1:(\d+)/", line)
        assert match, line + server.stderr.read()
        assert "onnx" in line  # the run's export, of its best checkpoint
        url = f"http://127.0.0.1:{match[1]}"
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{url}/v2/health/ready", timeout=5) as response:
                    assert json.load(response) == {"ready": True}
                    break
            except OSError:
                assert time.monotonic() < deadline and server.poll() is None, server.stderr.read()
                time.sleep(0.1)
        with urllib.request.urlopen(f"{url}/", timeout=5) as response:
            assert b"<title>trainlab serve</title>" in response.read()
        assert len(worker_processes(server.pid)) == (workers if workers > 1 else 0)
    finally:
        server.send_signal(signal.SIGTERM)
        _, errors = server.communicate(timeout=30)
    assert server.returncode in (0, 128 + signal.SIGTERM)
    assert "Traceback" not in errors


def worker_processes(pid: int) -> list[int]:
    """The spawned worker processes among a process's children (multiprocessing's resource tracker is not one)."""
    children = [int(c) for task in os.listdir(f"/proc/{pid}/task") for c in open(f"/proc/{pid}/task/{task}/children").read().split()]
    return [c for c in children if b"spawn_main" in open(f"/proc/{c}/cmdline", "rb").read()]


def test_a_port_in_use_and_a_wrong_backend_are_one_line(serve_runs):
    taken = bind("127.0.0.1", 0)
    try:
        port = taken.getsockname()[1]
        result = subprocess.run([*TRAINLAB, "serve", str(serve_runs["image"]), "--port", str(port)], capture_output=True,
                                text=True, timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"})  # fmt: skip
    finally:
        taken.close()
    assert result.returncode == 2
    assert f"port {port} on 127.0.0.1 is in use: choose another with --port" in result.stderr
    assert "Traceback" not in result.stderr
    result = subprocess.run([*TRAINLAB, "serve", str(serve_runs["text"]), "--backend", "onnx"], capture_output=True,
                            text=True, timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"})  # fmt: skip
    assert result.returncode == 2 and "has no export" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.skipif(not hasattr(socket, "SO_REUSEPORT"), reason="SO_REUSEPORT is Linux and BSD")
def test_each_worker_listens_on_a_socket_of_its_own_and_connections_spread_over_them():
    probe = bind("127.0.0.1", 0)
    port = probe.getsockname()[1]
    probe.close()
    listeners = [pickle.loads(pickle.dumps(WorkerSocket("127.0.0.1", port))) for _ in range(2)]  # as each worker gets it
    clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(32)]
    accepted = [0, 0]
    while sum(accepted) < len(clients):
        ready, _, _ = select.select(listeners, [], [], 5)
        assert ready, f"only {sum(accepted)} of {len(clients)} connections reached a worker"
        for sock in ready:
            sock.accept()[0].close()
            accepted[listeners.index(sock)] += 1
    assert min(accepted) >= 4, accepted  # spread by address hash: fewer than 4 of 32 on one socket is a 1 in 400,000 chance
    for sock in [*clients, *listeners]:
        sock.close()
