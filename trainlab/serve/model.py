"""The model a server answers with: a run's Predictor for preprocessing, and ONNX Runtime or torch for the forward pass.

`backend="auto"` takes the run's exported fp32 ONNX model when `trainlab export` wrote one for the checkpoint being
served (same epoch), else torch; "onnx" and "onnx-int8" insist on the export. Inference is serialised by a lock:
on a CPU, two forward passes at once only fight for the same cores.
"""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from trainlab.data.preprocess import ImagePreprocess
from trainlab.errors import UsageError
from trainlab.inference import Predictor, check_shippable
from trainlab.run_records import read_run_record

BACKENDS = ("auto", "torch", "onnx", "onnx-int8")
EXPORT_DIR, EXPORT_JSON = "export", "export.json"
ONNX_FILES = {"onnx": "model.onnx", "onnx-int8": "model.int8.onnx"}


class BadInput(ValueError):
    """A request's input that the model cannot take: the server answers 400 with this message."""


class ServedModel:
    def __init__(self, predictor: Predictor, run_dir: Path, backend: str, threads: int, *, name: str | None = None):
        self.predictor, self.run_dir, self.threads = predictor, run_dir, threads
        self.name = name or run_dir.name
        self.preprocess = predictor.preprocess
        self.kind = "image" if isinstance(self.preprocess, ImagePreprocess) else "text"
        self.backend, self._onnx = backend, None
        if backend.startswith("onnx"):
            from trainlab.export.runtime import OnnxModel

            self._onnx = OnnxModel(run_dir / EXPORT_DIR / ONNX_FILES[backend], threads)
        self._lock = threading.Lock()
        record = read_run_record(run_dir, missing_ok=True) or {}
        self.test_acc = record.get("test_acc")

    @classmethod
    def from_run(cls, run_dir: str | Path, *, backend: str = "auto", checkpoint: str = "best",
                 threads: int | None = None, name: str | None = None) -> ServedModel:  # fmt: skip
        if backend not in BACKENDS:
            raise UsageError(f"--backend '{backend}': expected one of {', '.join(BACKENDS)}")
        run_dir = Path(run_dir)
        threads = threads or torch.get_num_threads()
        torch.set_num_threads(threads)
        predictor = Predictor.from_run(run_dir, checkpoint, device="cpu")
        check_shippable(predictor, "serve")
        predictor.model.float()
        return cls(predictor, run_dir, _pick_backend(run_dir, backend, checkpoint, predictor.epoch), threads, name=name)

    @property
    def classes(self) -> list[str]:
        return self.preprocess.classes

    def probabilities(self, model_inputs: torch.Tensor) -> np.ndarray:
        """(N, classes) float32 probabilities of a batch of model inputs (normalised images, or token ids)."""
        if len(model_inputs) == 0:
            return np.zeros((0, len(self.classes)), np.float32)
        with self._lock:
            if self._onnx is not None:
                logits = torch.from_numpy(self._onnx(model_inputs))
            else:
                with torch.inference_mode():
                    logits = self.predictor.model(model_inputs).float()
        return logits.softmax(1).numpy()

    def batch_inputs(self, parts: Sequence[np.ndarray | torch.Tensor]) -> torch.Tensor:
        """One batch of model inputs from several requests' inputs: model inputs already made, or (N, H, W, C) uint8
        images of the model's size, normalised here all at once (per request, it costs more than the forward pass)."""
        if all(isinstance(part, np.ndarray) for part in parts):
            return self.preprocess.encode(np.concatenate(parts))
        return torch.cat([self.preprocess.encode(part) if isinstance(part, np.ndarray) else part for part in parts])

    def image_inputs(self, images: Sequence[np.ndarray | Image.Image]) -> torch.Tensor:
        """Model inputs of decoded images: PIL images, or (H, W, C) uint8 arrays of the model's size."""
        return self.preprocess.encode(list(images))

    def text_inputs(self, texts: Sequence[str]) -> torch.Tensor:
        for index, text in enumerate(texts):
            if not isinstance(text, str):
                raise BadInput(f"text {index}: expected a string, got {type(text).__name__}")
            if not text.strip():
                raise BadInput(f"text {index} is empty")
        return self.preprocess.encode(list(texts))

    def metadata(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "name": self.name, "run": self.run_dir.name, "kind": self.kind, "classes": self.classes,
            "backend": self.backend, "threads": self.threads, "epoch": self.predictor.epoch, "test_acc": self.test_acc,
        }  # fmt: skip
        if self.kind == "image":
            channels, height, width = self.preprocess.shape
            record["image"] = {"height": height, "width": width, "channels": channels, "mode": self.preprocess.mode}
        return record


def decode_image(data: bytes, name: str) -> Image.Image:
    """An uploaded file as a PIL image (decoded now, so that a broken file is found here); not an image: BadInput."""
    if not data:
        raise BadInput(f"file '{name}' is empty")
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
        return image
    except Image.UnidentifiedImageError:
        raise BadInput(f"file '{name}' is not an image this server can read (PNG, JPEG, GIF, BMP, TIFF, WebP, ...)") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise BadInput(f"file '{name}' is not an image this server can read ({e})") from None


def _pick_backend(run_dir: Path, backend: str, checkpoint: str, epoch: int | None) -> str:
    export = run_dir / EXPORT_DIR / EXPORT_JSON
    fresh, why = False, f"{run_dir} has no export (`trainlab export {run_dir}`)"
    if export.is_file():
        try:
            record = json.loads(export.read_text())
            fresh = record.get("checkpoint") == checkpoint and record.get("epoch") == epoch
            why = (f"{export} is of the {record.get('checkpoint')} checkpoint at epoch {record.get('epoch')}, not of the "
                   f"{checkpoint} checkpoint at epoch {epoch}: export it again")  # fmt: skip
        except (OSError, ValueError, AttributeError):
            why = f"{export} cannot be read: export the run again"
    if backend == "auto":
        return "onnx" if fresh and (run_dir / EXPORT_DIR / ONNX_FILES["onnx"]).is_file() else "torch"
    if backend.startswith("onnx"):
        if not fresh:
            raise UsageError(f"--backend {backend}: {why}")
        if not (run_dir / EXPORT_DIR / ONNX_FILES[backend]).is_file():
            raise UsageError(f"--backend {backend}: {run_dir / EXPORT_DIR / ONNX_FILES[backend]} not found: export the run again")
    return backend
