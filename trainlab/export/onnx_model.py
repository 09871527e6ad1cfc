"""A trained model as ONNX: exported with a dynamic batch dimension (and a dynamic length for token ids),
the opset pinned, and checked against PyTorch on real inputs."""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from trainlab.errors import TrainlabError
from trainlab.export.runtime import INPUT, OUTPUT, OnnxModel

OPSET = 17  # onnxruntime 1.17+ runs it; torch's TorchScript exporter writes it


def export_onnx(model: nn.Module, example: Tensor, path: Path, name: str = "the model") -> None:
    """`model` (eval mode, float32, on the CPU) to ONNX at `path`, traced on `example`, a batch of at least 2
    model inputs (a batch of 1 lets the exporter fold the batch size into constants)."""
    if len(example) < 2:
        raise ValueError("the example batch needs at least 2 inputs")
    axes = {0: "batch"}
    if not example.is_floating_point() and example.dim() == 2:  # token ids (batch, length)
        axes[1] = "length"
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the tracer's notes on Python values it keeps: checked by parity instead
            torch.onnx.export(
                model, (example.contiguous(),), str(path), input_names=[INPUT], output_names=[OUTPUT],
                dynamic_axes={INPUT: axes, OUTPUT: {0: "batch"}}, opset_version=OPSET, dynamo=False,
            )  # fmt: skip
    except Exception as e:  # noqa: BLE001 - an operator the exporter does not know, a trace that fails
        first = str(e).strip().splitlines()[0][:300] if str(e).strip() else type(e).__name__
        raise TrainlabError(f"{name} could not be exported to ONNX (opset {OPSET}): {first}") from None


def logits_of(model: nn.Module, inputs: Tensor) -> np.ndarray:
    """PyTorch's float32 logits of a batch, as the exported model computes them (no autocast)."""
    with torch.inference_mode():
        return model(inputs.contiguous()).float().numpy()


def compare(model: nn.Module, exported: OnnxModel, batches: Iterable[Tensor]) -> float:
    """The largest absolute difference between PyTorch's and ONNX Runtime's logits over `batches`."""
    worst = 0.0
    for inputs in batches:
        worst = max(worst, float(np.abs(logits_of(model, inputs) - exported(inputs)).max()))
    return worst
