"""Start the server: the model loaded once, the socket bound before uvicorn starts (so a port in use is one clear
error), uvicorn's graceful shutdown on Ctrl-C or SIGTERM."""

from __future__ import annotations

import errno
import importlib.util
import socket
from collections.abc import Callable
from pathlib import Path

from trainlab.errors import UsageError


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY on accepted connections only when the listening socket says TCP;
    # without it a kept-alive connection waits ~40 ms per response (Nagle against the client's delayed ACK).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
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


def serve_run(run_dir: Path, *, host: str, port: int, backend: str, checkpoint: str, threads: int | None,
              max_request_bytes: int, name: str | None, access_log: bool, announce: Callable[[str], None]) -> None:  # fmt: skip
    missing = [name for name in ("fastapi", "uvicorn", "multipart") if importlib.util.find_spec(name) is None]
    if missing:
        raise UsageError(f'serving needs fastapi, uvicorn and python-multipart ({", ".join(missing)} missing): pip install -e ".[serve]"')
    import uvicorn

    from trainlab.serve.app import create_app
    from trainlab.serve.model import ServedModel

    served = ServedModel.from_run(run_dir, backend=backend, checkpoint=checkpoint, threads=threads, name=name)
    app = create_app(served, max_request_bytes=max_request_bytes)
    sock = bind(host, port)
    port = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    announce(f"serving {served.name} ({served.kind}s, {len(served.classes)} classes; {served.backend}, {served.threads} "
             f"threads) at http://{shown}:{port}/ : the page at /, /predict, the Open Inference Protocol at /v2, "
             f"the API's docs at /docs; Ctrl-C stops")  # fmt: skip
    config = uvicorn.Config(app, log_level="info" if access_log else "warning", access_log=access_log,
                            timeout_graceful_shutdown=5)  # fmt: skip
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
