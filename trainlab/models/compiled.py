"""A frozen backbone compiled for the passes that only read it: computing features, testing.

`torch.compile` with Inductor's freezing treats the weights as constants: batch norm is folded into the
convolutions, activations are fused into them and the weights are packed once for oneDNN. That is safe only
while the weights cannot change, so a `CompiledBackbone` serves a backbone frozen for the whole run, under
no gradient (`transfer.compile_backbone`, on by default). On this 2-core CPU the forward pass alone is
0.95-1.3x as fast as eager bf16 at the same batch of 32 (`python -m benchmarks.backbone_speed`), but a whole
`transfer/efficientnet_frozen` run took 290-316 s compiled against 446 s eager: features 264 s eager, about
200 s compiled with its 30 s of compilation, and the test pass goes through the same chunks of 32 instead of
the loader's batches of 256.

Batches go through in chunks of one fixed size (the last one padded) so that the compiled graph is built
once, whatever the loader's batch size. If compilation fails (no C++ compiler, an unsupported operator), the
backbone runs uncompiled and the run says so.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

CHUNK = 32  # images a compiled call takes: small batches keep the activations in cache (see features.BATCH)


class CompiledBackbone:
    """`extract` compiled for inference, called in fixed-size chunks; falls back to `extract` itself."""

    def __init__(self, extract: Callable[[Tensor], Tensor], say: Callable[[str], None] = lambda line: None,
                 chunk: int = CHUNK):  # fmt: skip
        self.extract, self.say, self.chunk = extract, say, chunk
        self.compiled: Callable[[Tensor], Tensor] | None = torch.compile(
            extract, dynamic=False, options={"freezing": True}
        )

    @property
    def active(self) -> bool:
        """Whether the compiled graph is in use (False after a failed compilation)."""
        return self.compiled is not None

    def __call__(self, x: Tensor) -> Tensor:
        if self.compiled is None:
            return self.extract(x)
        with torch.inference_mode():
            outputs = [self._chunk(part) for part in x.split(self.chunk)]
        features = torch.cat(outputs) if len(outputs) > 1 else outputs[0]
        return features if torch.is_inference_mode_enabled() else features.clone()  # a normal tensor again

    def _chunk(self, part: Tensor) -> Tensor:
        if self.compiled is None:  # an earlier chunk failed to compile
            return self.extract(part)
        count = len(part)
        if count < self.chunk:
            padding = part.new_zeros((self.chunk - count, *part.shape[1:]))
            part = torch.cat([part, padding]).contiguous(memory_format=_memory_format(part))
        try:
            return self.compiled(part)[:count]
        except Exception as e:  # noqa: BLE001 - any compiler failure: the eager backbone gives the same features
            self.compiled = None
            reason = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
            self.say(f"the frozen backbone could not be compiled ({reason}); it runs uncompiled")
            return self.extract(part[:count])


def _memory_format(x: Tensor) -> torch.memory_format:
    if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        return torch.channels_last
    return torch.contiguous_format
