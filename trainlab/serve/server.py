"""Start the server: the model loaded once, the socket bound before uvicorn starts (so a port in use is one clear
error), uvicorn's graceful shutdown on Ctrl-C or SIGTERM."""

from __future__ import annotations

import errno
import importlib.util
import json
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from trainlab.errors import UsageError


def bind(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY on accepted connections only when the listening socket says TCP;
    # without it a kept-alive connection waits ~40 ms per response (Nagle against the client's delayed ACK).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            raise UsageError(f"port {port} on {host} is in use: choose another with --port") from None
        if e.errno == errno.EACCES:
            raise UsageError(f"port {port} needs privileges on this machine: choose one above 1023 with --port") from None
        raise UsageError(f"--host {host} --port {port}: cannot listen there ({e.strerror or e})") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


WORKERS_ENV = "TRAINLAB_SERVE_WORKER"  # how a worker process learns what to serve


class WorkerSocket:
    """A listening socket of each worker's own on one port (SO_REUSEPORT), in place of one socket shared by all.

    uvicorn hands every worker the sockets it was given; this one turns into a new socket when a worker unpickles it.
    The kernel then spreads new connections over the workers' sockets. With one shared socket, the worker that
    wakes first accepts every connection waiting, and clients that keep their connections (a pool, a proxy, the
    load benchmark's 32 clients) all stay on that one worker while the others idle."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port

    def __reduce__(self):
        return _worker_socket, (self.host, self.port)


def _worker_socket(host: str, port: int) -> socket.socket:
    return bind(host, port, reuse_port=True)


def serve_run(run_dir: Path, *, host: str, port: int, backend: str, checkpoint: str, threads: int | None,
              max_request_bytes: int, name: str | None, access_log: bool, announce: Callable[[str], None],
              workers: int = 1, max_batch: int = 1, batch_wait_ms: float = 0.0) -> None:  # fmt: skip
    missing = [module for module in ("fastapi", "uvicorn", "multipart") if importlib.util.find_spec(module) is None]
    if missing:
        raise UsageError(f'serving needs fastapi, uvicorn and python-multipart ({", ".join(missing)} missing): pip install -e ".[serve]"')
    import uvicorn

    from trainlab.serve.app import create_app
    from trainlab.serve.model import ServedModel

    served = ServedModel.from_run(run_dir, backend=backend, checkpoint=checkpoint, threads=threads, name=name)
    sock = bind(host, port)
    port = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    processes = f", {workers} worker processes" if workers > 1 else ""
    if max_batch > 1 and served.kind == "image":
        processes += f", concurrent images in batches of up to {max_batch}" + (f" (waiting {batch_wait_ms:g} ms)" if batch_wait_ms else "")
    batching = {"max_batch": max_batch, "batch_wait_ms": batch_wait_ms}
    announce(f"serving {served.name} ({served.kind}s, {len(served.classes)} classes; {served.backend}, {served.threads} "
             f"threads{processes}) at http://{shown}:{port}/ : the page at /, /predict, the Open Inference Protocol at /v2, "
             f"the API's docs at /docs; Ctrl-C stops")  # fmt: skip
    log = {"log_level": "info" if access_log else "warning", "access_log": access_log, "timeout_graceful_shutdown": 5}
    loaded = None
    try:
        if workers == 1:
            uvicorn.Server(uvicorn.Config(create_app(served, max_request_bytes=max_request_bytes, **batching), **log)).run(sockets=[sock])
            return
        # Each worker is a fresh process (spawned: no fork of torch's threads) that loads the model once; they share the
        # socket, and uvicorn's supervisor restarts a worker that dies and stops them all on Ctrl-C or SIGTERM.
        from uvicorn.supervisors import Multiprocess

        del served
        loaded = tempfile.mkdtemp(prefix="trainlab-serve-")
        os.environ[WORKERS_ENV] = json.dumps({"run_dir": str(run_dir), "backend": backend, "checkpoint": checkpoint,
                                              "threads": threads, "name": name, "max_request_bytes": max_request_bytes,
                                              **batching, "workers": workers, "loaded": loaded})  # fmt: skip
        config = uvicorn.Config("trainlab.serve.server:worker_app", factory=True, workers=workers, **log)
        sockets: list = [sock]
        if hasattr(socket, "SO_REUSEPORT"):  # the port was free (bind said so): the workers open their own on it
            sock.close()
            sockets = [WorkerSocket(host, port)]
        Multiprocess(config, sockets=sockets).run()
    finally:
        sock.close()
        if loaded:
            shutil.rmtree(loaded, ignore_errors=True)


def worker_app():
    """The app of one worker process, from what `serve_run` put in the environment. The workers start accepting
    connections together, once each has its model loaded: a worker that is ready first would accept every
    connection waiting, and clients that keep their connections (a pool, a proxy) would stay on it alone."""
    from trainlab.serve.app import create_app
    from trainlab.serve.model import ServedModel

    options = json.loads(os.environ[WORKERS_ENV])
    app_options = {key: options.pop(key) for key in ("max_request_bytes", "max_batch", "batch_wait_ms")}
    workers, loaded = options.pop("workers"), Path(options.pop("loaded"))
    app = create_app(ServedModel.from_run(**options), **app_options)
    wait_for_each_other(loaded, workers)
    return app


def wait_for_each_other(folder: Path, workers: int, timeout_s: float = 300.0) -> None:
    """Mark this worker loaded in `folder`, then wait until `workers` are (a restarted worker finds them all there)."""
    (folder / str(os.getpid())).touch()
    deadline = time.monotonic() + timeout_s  # a worker that never loads is uvicorn's to restart; the others go on
    while len(os.listdir(folder)) < workers and time.monotonic() < deadline:
        time.sleep(0.02)
