"""`trainlab export RUN`: the run's model as ONNX (fp32) and int8, each checked on the run's test set.

RUN/export/ gets model.onnx, model.int8.onnx, the run's preprocessing (preprocess.json and what it names:
the model's input is what preprocessing makes of a raw image or text) and export.json: opset, input and
output, the largest logit difference from PyTorch on the test inputs, the test accuracy and size of each
model beside the original's, the versions. The folder is written whole or not at all.
"""

from __future__ import annotations

import platform
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from trainlab.build import load_data
from trainlab.config import load_config
from trainlab.data.loader import ArrayLoader
from trainlab.errors import DataError, TrainlabError, UsageError
from trainlab.export.onnx_model import OPSET, export_onnx, logits_of
from trainlab.export.quantize import quantize_dynamic_int8, quantize_static_int8
from trainlab.export.runtime import INPUT, OUTPUT, OnnxModel, onnxruntime
from trainlab.inference import Predictor, check_shippable
from trainlab.run_folder import RunFolder
from trainlab.run_records import read_run_record
from trainlab.tools.evaluate import check_data_overrides, load_test_split
from trainlab.utils.io import fresh_folder, publish_folder, write_json
from trainlab.utils.machine import package_version

EXPORT_DIR, EXPORT_JSON = "export", "export.json"
FP32_FILE, INT8_FILE = "model.onnx", "model.int8.onnx"
TOLERANCE = 1e-3  # the largest absolute logit difference allowed between ONNX Runtime fp32 and PyTorch fp32
CALIBRATION_IMAGES = 512


@dataclass
class Export:
    path: Path  # RUN/export/
    record: dict  # export.json

    def table(self) -> str:
        rows = [f"{'model':<12} {'file':<18} {'size':>9} {'test accuracy':>14}"]
        for name, entry in self.record["models"].items():
            size = f"{entry['bytes'] / 1e6:.2f} MB" if entry.get("bytes") else "-"
            rows.append(f"{name:<12} {entry.get('file') or '(checkpoint)':<18} {size:>9} {entry['test_acc']:>14.4f}")
        return "\n".join(rows)


def export_run(run_dir: Path, overrides: Sequence[str] = (), *, checkpoint: str = "best", tolerance: float = TOLERANCE,
               calibration: int = CALIBRATION_IMAGES, threads: int | None = None) -> Export:  # fmt: skip
    """Export the run's `checkpoint` to RUN/export/ (see the module's docstring); `overrides` are data.* keys
    for data that moved. Fails (nothing written) when ONNX Runtime's logits differ from PyTorch's by more
    than `tolerance`."""
    onnxruntime()  # a missing extra is said before any work
    folder = RunFolder.open(run_dir)
    check_data_overrides(overrides, "export")
    config, _ = load_config(str(folder.path / "config.yaml"), list(overrides))
    predictor = Predictor.from_run(folder.path, checkpoint, device="cpu")
    check_shippable(predictor, "export")
    model = predictor.model.float().eval()
    test, dataset = load_test_split(folder, config, predictor, overrides, command="export")
    target = fresh_folder(folder.path, EXPORT_DIR)  # before the work: a folder that cannot be written fails at once
    try:
        batches = [(inputs.cpu().contiguous(), labels.cpu()) for inputs, labels in test]
        if not batches:
            raise DataError(f"the test split of {dataset.source} is empty: nothing to check the export on")
        example = _example(batches)
        export_onnx(model, example, target / FP32_FILE, name=config.model.name)
        fp32 = OnnxModel(target / FP32_FILE, threads)
        labels = torch.cat([y for _, y in batches]).numpy()
        torch_logits, fp32_logits = [], []
        for inputs, _ in batches:
            torch_logits.append(logits_of(model, inputs))
            fp32_logits.append(fp32(inputs))
        difference = max(float(np.abs(a - b).max()) for a, b in zip(torch_logits, fp32_logits))
        if not difference <= tolerance:
            raise TrainlabError(
                f"the exported model's logits differ from PyTorch's by up to {difference:.3g} on the test inputs, "
                f"more than the tolerance {tolerance:g}: not exported (--tolerance sets it)"
            )
        images = example.is_floating_point()
        if images:
            quantize_static_int8(target / FP32_FILE, target / INT8_FILE, _calibration_batches(config, predictor, calibration))
            how = f"static, QDQ, weights int8 per channel, activations uint8 calibrated on {calibration} training images"
        else:
            quantize_dynamic_int8(target / FP32_FILE, target / INT8_FILE)
            how = "dynamic: weights int8, activations quantised at run time"
        int8 = OnnxModel(target / INT8_FILE, threads)
        int8_logits = [int8(inputs) for inputs, _ in batches]
        predictor.preprocess.save(target)  # what turns a raw image or text into the model's input
        record = {
            "run": folder.path.name, "checkpoint": checkpoint, "epoch": predictor.epoch, "model": config.model.name,
            "opset": OPSET, "input": _input_record(example), "output": {"name": OUTPUT, "shape": ["batch", len(predictor.classes)],
            "classes": predictor.classes}, "preprocess": "preprocess.json",
            "parity": {"max_abs_logit_difference": difference, "tolerance": tolerance, "inputs": int(len(labels))},
            "quantization": how, "test_split": dataset.source, "test_size": int(len(labels)),
            "run_test_acc": (read_run_record(folder.path, missing_ok=True) or {}).get("test_acc"),
            "models": {
                "torch fp32": {"file": None, "test_acc": _accuracy(torch_logits, labels)},
                "onnx fp32": {"file": FP32_FILE, "bytes": (target / FP32_FILE).stat().st_size, "test_acc": _accuracy(fp32_logits, labels)},
                "onnx int8": {"file": INT8_FILE, "bytes": (target / INT8_FILE).stat().st_size, "test_acc": _accuracy(int8_logits, labels)},
            },
            "threads": fp32.threads, "versions": versions(),
        }  # fmt: skip
        write_json(target / EXPORT_JSON, record)
        final = publish_folder(target, folder.path / EXPORT_DIR)
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)  # no half-written export left behind
        raise
    return Export(final, record)


def _example(batches: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """At least 2 real test inputs to trace the export with (a batch of 1 would fix the batch size)."""
    first = batches[0][0]
    if len(first) >= 2 or len(batches) == 1:
        return first if len(first) >= 2 else torch.cat([first, first])
    second = batches[1][0]
    if second.shape[1:] != first.shape[1:]:  # token ids padded to another length
        return torch.cat([first, first])
    return torch.cat([first, second[:1]])


def _calibration_batches(config, predictor: Predictor, count: int) -> Iterator[np.ndarray]:
    """`count` training images spread evenly over the split (its files may come sorted by class), not augmented,
    prepared as the run prepared them."""
    data = load_data(config)
    if not isinstance(data.train, ArrayLoader):
        raise UsageError(f"static int8 quantization calibrates on images; {config.data.name} does not give images")
    chosen = torch.linspace(0, len(data.train.labels) - 1, min(count, len(data.train.labels))).long()
    images, labels = data.train.images[chosen.to(data.train.images.device)], data.train.labels[chosen]
    for inputs, _ in ArrayLoader(images, labels, 64, preprocess=predictor.preprocess):
        yield inputs.contiguous().numpy()


def _accuracy(logits: list[np.ndarray], labels: np.ndarray) -> float:
    return float((np.concatenate(logits).argmax(1) == labels).mean())


def _input_record(example: torch.Tensor) -> dict:
    if example.is_floating_point():
        return {"name": INPUT, "shape": ["batch", *example.shape[1:]], "dtype": "float32",
                "meaning": "images as preprocess.json makes them: resized, scaled to 0..1, normalised"}  # fmt: skip
    return {"name": INPUT, "shape": ["batch", "length"], "dtype": "int64",
            "meaning": "token ids as preprocess.json makes them, padded with its pad id"}  # fmt: skip


def versions() -> dict:
    return {"python": platform.python_version(), **{p: package_version(p) for p in ("torch", "onnx", "onnxruntime")}}
