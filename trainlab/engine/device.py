"""Pick the device, the autocast precision and the memory format for a run."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from trainlab.errors import UsageError


def cpu_has_bf16() -> bool:
    """True when oneDNN runs bf16 natively on this CPU (AVX-512 BF16 or AMX)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


@dataclass(frozen=True)
class Placement:
    device: torch.device
    autocast_dtype: torch.dtype | None  # None: plain fp32
    channels_last: bool

    @property
    def precision(self) -> str:
        return "bf16" if self.autocast_dtype == torch.bfloat16 else "fp32"

    def autocast(self) -> torch.autocast:
        return torch.autocast(self.device.type, dtype=self.autocast_dtype or torch.float32, enabled=self.autocast_dtype is not None)


def resolve_placement(device: str = "auto", precision: str = "auto", channels_last: str | bool = "auto") -> Placement:
    if device == "cuda" and not torch.cuda.is_available():
        raise UsageError("device: cuda was asked for, but torch sees no CUDA GPU (use device=auto or device=cpu)")
    dev = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else device if device != "auto" else "cpu")
    bf16_native = torch.cuda.is_bf16_supported() if dev.type == "cuda" else cpu_has_bf16()
    if precision == "auto":
        precision = "bf16" if bf16_native else "fp32"
    if channels_last == "auto":
        channels_last = dev.type == "cuda" or bf16_native
    if dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    return Placement(dev, torch.bfloat16 if precision == "bf16" else None, bool(channels_last))
