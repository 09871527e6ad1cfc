"""An ONNX model run by ONNX Runtime on the CPU, with its thread count set explicitly.

ONNX Runtime ignores OMP_NUM_THREADS: without `intra_op_num_threads` it takes every core it sees, which on a
shared machine is not what the user asked torch for. The default here is torch's own thread count.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from trainlab.errors import UsageError

INPUT, OUTPUT = "input", "logits"  # the names every exported model uses


def onnxruntime():
    try:
        import onnxruntime
    except ImportError:
        raise UsageError('exporting and serving need onnxruntime and onnx: pip install -e ".[export]"') from None
    return onnxruntime


class OnnxModel:
    """`model(inputs)` -> logits (N, classes) as float32 numpy, for a batch of model inputs (numpy or tensor)."""

    def __init__(self, path: Path, threads: int | None = None):
        ort = onnxruntime()
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # warnings about unused initialisers are not the user's business
        self.path, self.threads = path, options.intra_op_num_threads
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def __call__(self, inputs: np.ndarray | torch.Tensor) -> np.ndarray:
        if isinstance(inputs, torch.Tensor):
            inputs = inputs.detach().cpu().contiguous().numpy()
        return self.session.run([OUTPUT], {INPUT: np.ascontiguousarray(inputs)})[0]
