"""int8 models by ONNX Runtime's quantization: static for conv nets, dynamic for text models.

Conv nets get static QDQ quantization, per channel, with activation ranges calibrated on training images:
their convolutions then run in int8 (VNNI where the CPU has it). Dynamic quantization quantises activations
at run time; for a small conv net on this CPU it was 6x slower than fp32, so it is only the default for
models of matrix products (LSTM, transformer, BERT), whose weights dominate.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from trainlab.export.runtime import INPUT, onnxruntime


def quantize_static_int8(source: Path, target: Path, calibration: Iterable[np.ndarray]) -> None:
    """`source` quantised to int8 at `target`: QDQ format, weights per channel (int8), activations (uint8) with
    ranges from running `calibration` (batches of model inputs) through the fp32 model."""
    onnxruntime()
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Batches(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches: Iterator[np.ndarray] = iter(calibration)

        def get_next(self) -> dict[str, np.ndarray] | None:
            batch = next(self.batches, None)
            return None if batch is None else {INPUT: np.ascontiguousarray(batch, dtype=np.float32)}

    with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
        prepared = Path(scratch) / "prepared.onnx"
        quant_pre_process(str(source), str(prepared))  # shapes inferred, graph optimised: better quantisation
        quantize_static(
            str(prepared), str(target), Batches(), quant_format=QuantFormat.QDQ, per_channel=True,
            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
        )  # fmt: skip


def quantize_dynamic_int8(source: Path, target: Path) -> None:
    """`source` with int8 weights at `target`; activations are quantised at run time."""
    onnxruntime()
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8)
