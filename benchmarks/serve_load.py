"""`trainlab serve` under load: requests/s and client-side latency with many clients at once.

    python -m benchmarks.serve_load RUN_FOLDER [--clients 32] [--seconds 60] [--route infer|predict]
                                    [--tensors json|binary] [--backend auto] [--threads N] [--batch 1]

Starts `trainlab serve RUN_FOLDER --quiet` on a free port in another process, waits for /v2/health/ready, then
`--clients` clients (asyncio, one kept-alive connection each) send requests back to back for `--seconds`, after an
uncounted warm-up of 2 s. `--route infer` (default) sends Open Inference Protocol v2 JSON (UINT8 [N, H, W, C]
images, as numbers or with `--tensors binary` as raw bytes after the JSON; or BYTES texts); `--route predict`
sends PNG files as multipart (or {"texts": [...]}). Images are random uint8 pixels of the model's size (the latency does not depend on them); texts are a few fixed sentences. Bodies
are encoded before the clock starts. Latency is per request, from the client; the server's CPU time is read from
/proc. Goal: p95 < 20 ms and no errors. Figures go to benchmarks/results/serve_load-<run name>.json. The clients
share the machine with the server: run it alone on the machine, and read the client CPU share in the table.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx
import numpy as np

from benchmarks.common import save, table
from trainlab.utils.machine import cpu_flags, cpu_name, package_version

WARMUP_S, READY_TIMEOUT_S, GOAL_P95_MS = 2.0, 180.0, 20.0
SENTENCES = ["i feel so happy and grateful today", "this is the worst day i have had in years",
             "i am a little nervous about the interview tomorrow", "that was a surprisingly lovely evening",
             "i cannot believe how angry that made me", "i miss my family so much it hurts"]  # fmt: skip
POOL = 32  # distinct request bodies, cycled


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cpu_seconds(pid: int) -> float | None:
    """utime + stime of a process and its descendants (the server's worker processes) from /proc; None off Linux."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    children = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children += [int(child) for child in (task / "children").read_text().split()]
        except OSError:
            pass
    return own + sum(cpu_seconds(child) or 0.0 for child in children)


def start_server(args: argparse.Namespace, port: int, log: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "trainlab", "serve", str(args.run), "--port", str(port), "--quiet",
               "--backend", args.backend, *(["--threads", str(args.threads)] if args.threads else []), "--workers", str(args.workers),
               "--max-batch", str(args.max_batch), "--batch-wait-ms", str(args.batch_wait_ms)]  # fmt: skip
    with open(log, "w") as out:
        server = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    started = time.perf_counter()
    while time.perf_counter() - started < READY_TIMEOUT_S:
        if server.poll() is not None:
            sys.exit(f"the server exited ({server.returncode}) before it was ready:\n{log_text(log)}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v2/health/ready", timeout=2).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    stop_server(server)
    sys.exit(f"the server was not ready after {READY_TIMEOUT_S:.0f} s:\n{log_text(log)}")


def log_text(log: Path) -> str:
    """The server's output, and its file removed."""
    text = log.read_text().strip()
    log.unlink(missing_ok=True)
    return text


def stop_server(server: subprocess.Popen) -> int | None:
    if server.poll() is None:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    return server.returncode


def request_bodies(meta: dict, route: str, batch: int, url: str, tensors: str) -> tuple[list[tuple[bytes, dict]], str]:
    """POOL (body, headers) pairs, encoded now, and what they hold."""
    rng = np.random.default_rng(0)
    bodies = []
    for i in range(POOL):
        if meta["kind"] == "text":
            texts = [SENTENCES[(i + j) % len(SENTENCES)] for j in range(batch)]
            if route == "infer":
                body = {"id": str(i), "inputs": [{"name": "text", "datatype": "BYTES", "shape": [batch], "data": texts}]}
            else:
                body = {"texts": texts}
            bodies.append((json.dumps(body).encode(), {"content-type": "application/json"}))
            continue
        h, w, c = meta["image"]["height"], meta["image"]["width"], meta["image"]["channels"]
        images = rng.integers(0, 256, (batch, h, w, c), dtype=np.uint8)
        if route == "infer" and tensors == "binary":  # as tritonclient sends them by default
            body = {"id": str(i), "inputs": [{"name": "input", "datatype": "UINT8", "shape": [batch, h, w, c],
                                              "parameters": {"binary_data_size": images.nbytes}}]}  # fmt: skip
            header = json.dumps(body).encode()
            bodies.append((header + images.tobytes(), {"content-type": "application/octet-stream",
                                                       "Inference-Header-Content-Length": str(len(header))}))  # fmt: skip
        elif route == "infer":
            body = {"id": str(i), "inputs": [{"name": "input", "datatype": "UINT8", "shape": [batch, h, w, c],
                                              "data": images.ravel().tolist()}]}  # fmt: skip
            bodies.append((json.dumps(body).encode(), {"content-type": "application/json"}))
        else:
            files = [("file", (f"{i}-{j}.png", png(image), "image/png")) for j, image in enumerate(images)]
            request = httpx.Request("POST", url, files=files)
            bodies.append((request.read(), {"content-type": request.headers["content-type"]}))
    what = (f"{len(SENTENCES)} fixed sentences" if meta["kind"] == "text"
            else f"random uint8 {meta['image']['height']}x{meta['image']['width']}x{meta['image']['channels']} images"
                 + (" as PNG files" if route == "predict" else f" as {tensors} tensors"))  # fmt: skip
    return bodies, what


def png(image: np.ndarray) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(out, format="PNG")
    return out.getvalue()


async def drive(port: int, path: str, bodies: list, clients: int, seconds: float, on_measure, rate: float | None) -> dict:
    """Clients back to back until the deadline, each on its own kept-alive connection; requests started after
    the warm-up are counted. A minimal HTTP/1.1 client on asyncio streams: httpx spent about 4 ms of CPU per
    request, more than the server, on the same 2 cores."""
    latencies, statuses, errors = [], Counter(), Counter()
    requests = [(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(body)}\r\n"
                 + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n").encode() + body
                for body, headers in bodies]  # fmt: skip
    loop_start = time.perf_counter()
    measure_start, deadline = loop_start + WARMUP_S, loop_start + WARMUP_S + seconds
    asyncio.get_running_loop().call_later(WARMUP_S, on_measure)

    due = iter(range(10**12))

    async def next_start(n: int) -> float:
        if rate is None:
            return time.perf_counter()
        at = loop_start + next(due) / rate
        await asyncio.sleep(max(0.0, at - time.perf_counter()))
        return at

    async def one_client(index: int) -> None:
        n, reader, writer = index, None, None
        while (started := await next_start(n)) < deadline:
            request = requests[n % len(requests)]
            n += clients
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(request)
                status, close = await read_response(reader)
                error = None if status == 200 else f"HTTP {status}"
                if close:
                    writer.close()
                    reader = writer = None
            except Exception as e:  # noqa: BLE001: every failure is counted by kind
                status, error = None, type(e).__name__
                if writer is not None:
                    writer.close()
                reader = writer = None
            if started >= measure_start:
                latencies.append((time.perf_counter() - started) * 1000)
                statuses[str(status)] += 1
                if error:
                    errors[error] += 1
        if writer is not None:
            writer.close()

    await asyncio.gather(*(one_client(i) for i in range(clients)))
    elapsed = time.perf_counter() - measure_start
    return {"latencies": latencies, "statuses": statuses, "errors": errors, "elapsed": elapsed}


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """The status of one response, its body read whole (by Content-Length), and whether the server closes."""
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    status = int(head[0].split()[1])
    fields = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in head[1:] if line)}
    if "content-length" not in fields:
        raise ValueError("a response without Content-Length")
    await reader.readexactly(int(fields["content-length"]))
    return status, fields.get("connection", "").lower() == "close"


def run_loop(coroutine):
    try:
        import uvloop  # the serve extra's event loop: the client's CPU share matters on 2 cores

        return uvloop.run(coroutine)
    except ImportError:
        return asyncio.run(coroutine)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="a run folder")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--route", choices=["infer", "predict"], default="infer")
    parser.add_argument("--tensors", choices=["json", "binary"], default="json", help="infer: images as JSON numbers or raw bytes")
    parser.add_argument("--backend", default="auto", choices=["auto", "torch", "onnx", "onnx-int8"])
    parser.add_argument("--threads", type=int, help="the server's model threads (default: torch's)")
    parser.add_argument("--rate", type=float, help="requests/s in all, due at fixed times (open loop); default: back to back")
    parser.add_argument("--workers", type=int, default=1, help="the server's worker processes")
    parser.add_argument("--batch", type=int, default=1, help="images or texts per request")
    parser.add_argument("--max-batch", type=int, default=32, help="the server's dynamic batching: images per forward pass (1: off; 32: the server's default)")
    parser.add_argument("--batch-wait-ms", type=float, default=0.0, help="the server's wait for more requests to batch")
    args = parser.parse_args()
    port = free_port()
    log = Path(tempfile.mkstemp(prefix="serve_load-", suffix=".log")[1])
    server = start_server(args, port, log)
    try:
        base = f"http://127.0.0.1:{port}"
        meta = httpx.get(f"{base}/metadata", timeout=10).json()
        url = f"{base}/v2/models/{meta['name']}/infer" if args.route == "infer" else f"{base}/predict"
        bodies, inputs = request_bodies(meta, args.route, args.batch, url, args.tensors)
        print(f"{meta['name']}: {meta['kind']} model on {meta['backend']} ({meta['threads']} threads); {args.clients} "
              f"clients on {args.route} for {args.seconds:g} s after {WARMUP_S:g} s of warm-up; inputs: {inputs}", flush=True)  # fmt: skip
        cpu = {}

        def on_measure() -> None:  # CPU clocks at the end of the warm-up
            cpu.update(server=cpu_seconds(server.pid), client=time.process_time())

        path = url.removeprefix(base)
        result = run_loop(drive(port, path, bodies, args.clients, args.seconds, on_measure, args.rate))
        server_cpu = cpu_seconds(server.pid)
        client_cpu = time.process_time() - cpu["client"]
    finally:
        server_total_cpu = cpu_seconds(server.pid)
        code = stop_server(server)
        server_log = log_text(log)
    latencies, n, errors = np.array(result["latencies"]), len(result["latencies"]), result["errors"]
    if n == 0:
        sys.exit(f"no request was counted\n{server_log}")
    p50, p95, p99 = np.percentile(latencies, [50, 95, 99])
    error_count = sum(errors.values())
    met = bool(p95 < GOAL_P95_MS and error_count == 0)
    server_s = None if server_cpu is None or cpu["server"] is None else server_cpu - cpu["server"]
    row = {"route": args.route + (f" ({args.tensors})" if args.route == "infer" else ""), "backend": meta["backend"], "threads": meta["threads"], "workers": args.workers, "clients": args.clients, "rate": args.rate or "max",
           "batch": args.batch, "max batch": args.max_batch, "requests": n, "req/s": n / result["elapsed"],
           "inputs/s": n * args.batch / result["elapsed"], "p50 ms": float(p50), "p95 ms": float(p95),
           "p99 ms": float(p99), "max ms": float(latencies.max()), "errors": error_count,
           "server CPU ms/req": None if server_s is None else 1000 * server_s / n,
           "server CPU %": None if server_s is None else 100 * server_s / result["elapsed"],
           "client CPU %": 100 * client_cpu / result["elapsed"]}  # fmt: skip
    figures = {
        "run": str(args.run), "model": meta["name"], "kind": meta["kind"], "inputs": inputs,
        "arguments": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "warmup_s": WARMUP_S, "measured_s": result["elapsed"], "row": row, "statuses": dict(result["statuses"]),
        "errors": dict(errors), "goal": {"p95_ms_below": GOAL_P95_MS, "no_errors": True, "met": met},
        "server": {"exit_code": code, "cpu_s_total": server_total_cpu, "log_tail": server_log[-4000:]},
    }  # fmt: skip
    name = args.run.resolve().name or "default"
    variant = (f"{args.route}{'-binary' if args.route == 'infer' and args.tensors == 'binary' else ''}-{meta['backend']}"
               f"-w{args.workers}-c{args.clients}" + (f"-r{args.rate:g}" if args.rate else "")
               + (f"-mb{args.max_batch}" + (f"-wait{args.batch_wait_ms:g}" if args.batch_wait_ms else "") if args.max_batch > 1 else ""))
    serving = {"cpu": cpu_name(), "cpu_flags": cpu_flags(), "serving_packages": {
        p: package_version(p) for p in ("fastapi", "starlette", "uvicorn", "python-multipart", "onnxruntime", "httpx")}}  # fmt: skip
    path = save(f"serve_load-{name}-{variant}", figures, environment_extra=serving)
    print(table([{k: "-" if v is None else v for k, v in row.items()}]))
    if errors:
        print("errors: " + ", ".join(f"{kind} x{count}" for kind, count in errors.most_common()))
    unusual = [line for line in server_log.splitlines() if not line.startswith(("serving ", "stopped by SIGTERM"))]
    if unusual:
        print("server output (last lines):\n" + "\n".join(unusual[-30:]))
    print(f"goal p95 < {GOAL_P95_MS:g} ms and no errors: {'met' if met else 'NOT met'} "
          f"(p95 {p95:.1f} ms, {error_count} errors); {path}")


if __name__ == "__main__":
    main()
