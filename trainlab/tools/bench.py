"""`trainlab bench RUN`: latency and throughput of a run's model on each backend this CPU has.

Backends: torch eager fp32, torch bf16 autocast (where the CPU runs bf16 natively), and the ONNX Runtime
fp32 and int8 models of `trainlab export`. For each batch size, the backends take turns in blocks of 50 calls
(interleaved, so that a slower period of the machine hits all of them alike) after warm-up calls that are
not counted; each block starts after a pause that lets the previous backend's idle threads stop spinning
(without it, ONNX Runtime's threads took a core from torch's: torch's p90 at batch 1 read 5 ms, 0.63 alone).
Every backend runs on the same number of threads, set explicitly (ONNX Runtime ignores OMP_NUM_THREADS).
Inputs are the shape preprocessing makes: an image, or token ids of the training texts' median length.
Figures go to RUN/export/bench.json with the CPU's name and flags and the versions.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from trainlab.engine.device import cpu_has_bf16
from trainlab.errors import UsageError
from trainlab.export.runtime import OnnxModel
from trainlab.inference import Predictor
from trainlab.tools.export import EXPORT_DIR, FP32_FILE, INT8_FILE, versions
from trainlab.utils.io import write_json
from trainlab.utils.machine import cpu_flags, cpu_name

BENCH_JSON = "bench.json"
WARMUP = 5  # calls per backend not counted: allocations, kernel choice, caches
BLOCK = 50  # calls in a row before the next backend's turn
SETTLE = 3  # calls at the start of a block not counted
PAUSE_S = 0.05  # before each block: longer than the thread pools of torch and ONNX Runtime spin when idle


@dataclass
class Bench:
    path: Path  # RUN/export/bench.json
    record: dict

    def table(self) -> str:
        rows = [f"{'backend':<12} {'batch':>5} {'p50 ms':>9} {'p90 ms':>9} {'p99 ms':>9} {'items/s':>10} {'vs fp32':>8} "
                f"{'p50 vs fp32':>11}"]  # fmt: skip
        for row in self.record["results"]:
            rows.append(f"{row['backend']:<12} {row['batch']:>5} {row['p50_ms']:>9.3f} {row['p90_ms']:>9.3f} "
                        f"{row['p99_ms']:>9.3f} {row['throughput']:>10,.0f} {row['speedup_vs_torch_fp32']:>7.2f}x "
                        f"{row['p50_speedup_vs_torch_fp32']:>10.2f}x")  # fmt: skip
        return "\n".join(rows)


def backends(predictor: Predictor, folder: Path, threads: int) -> dict[str, Callable[[torch.Tensor], object]]:
    model = predictor.model.float().eval()

    def torch_fp32(x: torch.Tensor) -> object:
        with torch.inference_mode():
            return model(x)

    def torch_bf16(x: torch.Tensor) -> object:
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
            return model(x)

    found = {"torch fp32": torch_fp32, **({"torch bf16": torch_bf16} if cpu_has_bf16() else {})}
    for name, file in (("onnx fp32", FP32_FILE), ("onnx int8", INT8_FILE)):
        onnx_model = OnnxModel(folder / file, threads)
        found[name] = lambda x, m=onnx_model: m(x)
    return found


def bench_run(run_dir: Path, batches: Sequence[int] = (1, 64), seconds: float = 10.0, threads: int | None = None) -> Bench:
    """Time the run's model and its exports (`trainlab export` first) at each batch size, about `seconds` per size."""
    folder = Path(run_dir) / EXPORT_DIR
    missing = [name for name in (FP32_FILE, INT8_FILE) if not (folder / name).is_file()]
    if missing:
        raise UsageError(f"{folder} has no {' or '.join(missing)}: export the run first with `trainlab export {run_dir}`")
    threads = threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    predictor = Predictor.from_run(run_dir, device="cpu")
    runners = backends(predictor, folder, threads)
    example = predictor.preprocess.example()
    results = []
    for batch in batches:
        inputs = example.unsqueeze(0).repeat(batch, *[1] * example.dim()).contiguous()
        times = _interleaved(runners, inputs, seconds)
        seconds_per_call = {name: (float(np.mean(samples)), float(np.median(samples))) for name, samples in times.items()}
        base_mean, base_p50 = seconds_per_call["torch fp32"]
        for name, samples in times.items():
            ms = np.asarray(samples) * 1000
            mean, p50 = seconds_per_call[name]
            results.append({
                "backend": name, "batch": batch, "calls": len(samples), "p50_ms": p50 * 1000,
                "p90_ms": float(np.percentile(ms, 90)), "p99_ms": float(np.percentile(ms, 99)),
                "throughput": batch / mean, "speedup_vs_torch_fp32": base_mean / mean,
                "p50_speedup_vs_torch_fp32": base_p50 / p50,
            })  # fmt: skip
    record = {
        "run": Path(run_dir).name, "input_shape": list(example.shape), "threads": threads, "warmup_calls": WARMUP,
        "cpu": cpu_name(), "cpu_flags": cpu_flags(), "versions": versions(), "results": results,
    }  # fmt: skip
    write_json(folder / BENCH_JSON, record)
    return Bench(folder / BENCH_JSON, record)


def _interleaved(runners: dict[str, Callable], inputs: torch.Tensor, seconds: float) -> dict[str, list[float]]:
    """Seconds per call of each runner after WARMUP uncounted calls each, the runners taking turns in blocks of
    BLOCK calls, each after a pause of PAUSE_S and SETTLE uncounted calls; as many calls as fit in `seconds`
    (at least 10 each)."""
    started = time.perf_counter()
    for _ in range(WARMUP):
        for run in runners.values():
            run(inputs)
    round_time = max((time.perf_counter() - started) / WARMUP, 1e-6)
    calls = int(min(max(seconds / (round_time + len(runners) * PAUSE_S / BLOCK), 10), 2000))
    times: dict[str, list[float]] = {name: [] for name in runners}
    while any(len(samples) < calls for samples in times.values()):
        for name, run in runners.items():
            time.sleep(PAUSE_S)
            for _ in range(SETTLE):
                run(inputs)
            for _ in range(min(BLOCK, calls - len(times[name]))):
                start = time.perf_counter()
                run(inputs)
                times[name].append(time.perf_counter() - start)
    return times
