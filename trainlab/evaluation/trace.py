"""One traced forward pass: every module call, its shapes, the calls it takes data from, the multiply-adds.

Forward hooks record each call of each module and the calls nested in it. A TorchFunctionMode
follows every tensor from call to call, so the functional code of a `forward` (torch.cat, +,
flatten) still connects the layers it joins. torch's FlopCounterMode counts multiply-adds.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor, nn
from torch.overrides import TorchFunctionMode
from torch.utils.flop_counter import FlopCounterMode

from trainlab.errors import UsageError

Shape = tuple[int | None, ...]  # None where the batch goes


@dataclass(eq=False)
class Call:
    """One call of a module in the traced pass, or one input of the model (kind "Input", no module)."""

    index: int  # in the order the calls began
    name: str  # qualified module name ("features.0"); "" for the model itself; an input's argument name
    kind: str  # class name
    module: nn.Module | None
    parent: Call | None
    depth: int  # 0 for the model, 1 for its children and for the inputs
    repeat: int = 1  # n for the n-th call of the same module
    inputs: list[tuple[int, ...]] = field(default_factory=list)
    outputs: list[tuple[int, ...]] = field(default_factory=list)
    output_bytes: int = 0
    sources: set[int] = field(default_factory=set)  # indices of the calls whose outputs reach this call's inputs
    children: list[Call] = field(default_factory=list)

    @property
    def label(self) -> str:
        """The name, with "#2" for the second call of the same module."""
        return self.name + (f"#{self.repeat}" if self.repeat > 1 else "")

    def within(self, other: Call) -> bool:
        """True when this call is `other` or runs inside it."""
        call: Call | None = self
        while call is not None and call is not other:
            call = call.parent
        return call is other


@dataclass
class Trace:
    calls: list[Call]  # the inputs first, then the model itself, then every module call in order
    output_sources: set[int]  # the calls the model's output comes from
    multiply_adds: int  # for the whole batch


def tensors_in(value: Any) -> list[Tensor]:
    """The tensors in a (nested) tuple, list or dict, in order."""
    if isinstance(value, Tensor):
        return [value]
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (list, tuple)):
        return [t for item in value for t in tensors_in(item)]
    return []


class _Tracer(TorchFunctionMode):
    """Module hooks record the calls. With `follow`, it also counts FLOPs and, as a TorchFunctionMode
    (when entered), tags each tensor with the calls it was computed from."""

    def __init__(self, model: nn.Module, follow: bool):
        super().__init__()
        self.calls: list[Call] = []
        self.stack: list[Call] = []
        self.counter = FlopCounterMode(display=False) if follow else None
        self._origins: dict[int, tuple[Tensor, frozenset[int]]] = {}  # id -> (tensor, kept alive so ids stay unique; calls)
        self._names = {module: name for name, module in model.named_modules()}
        self._count: dict[nn.Module, int] = {}
        self._flops_before: dict[int, int] = {}
        self.recurrent_correction = 0
        self._handles = [
            handle
            for module in self._names
            for handle in (
                module.register_forward_pre_hook(self._enter, with_kwargs=True),
                module.register_forward_hook(self._leave, with_kwargs=True),
            )
        ]

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()

    def add_input(self, name: str, x: Tensor) -> None:
        call = Call(len(self.calls), name, "Input", None, None, depth=1, outputs=[tuple(x.shape)])
        self.calls.append(call)
        self._tag(x, frozenset([call.index]))

    def sources(self, value: Any) -> frozenset[int]:
        found: frozenset[int] = frozenset()
        for t in tensors_in(value):
            entry = self._origins.get(id(t))
            if entry is not None and entry[0] is t:
                found |= entry[1]
        return found

    def _tag(self, t: Tensor, sources: frozenset[int]) -> None:
        self._origins[id(t)] = (t, sources)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        output = func(*args, **kwargs)
        sources = self.sources((args, kwargs))
        if sources:
            for t in tensors_in(output):
                self._tag(t, sources)
        return output

    def _enter(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        parent = self.stack[-1] if self.stack else None
        self._count[module] = repeat = self._count.get(module, 0) + 1
        call = Call(len(self.calls), self._names[module], type(module).__name__, module, parent, len(self.stack), repeat)
        call.inputs = [tuple(t.shape) for t in tensors_in((args, kwargs))]
        call.sources = set(self.sources((args, kwargs)))
        if parent is not None:
            parent.children.append(call)
        self.calls.append(call)
        self.stack.append(call)
        if self.counter is not None and isinstance(module, nn.RNNBase):
            self._flops_before[call.index] = self.counter.get_total_flops()

    def _leave(self, module: nn.Module, args: tuple, kwargs: dict, output: Any) -> None:
        call = self.stack.pop()
        outputs = tensors_in(output)
        call.outputs = [tuple(t.shape) for t in outputs]
        # An output in its input's memory (in-place ReLU, Identity, a flatten view) takes none of its own.
        def memory(t: Tensor) -> int | None:
            return None if t.device.type == "meta" else t.untyped_storage().data_ptr()

        taken = {memory(t) for t in tensors_in((args, kwargs))} - {None}
        call.output_bytes = sum(t.numel() * t.element_size() for t in outputs if memory(t) not in taken)
        for t in outputs if self.counter is not None else ():
            # A tensor computed inside this call keeps its finer sources (the layers in here that made
            # it); one passed through unchanged (Identity, in-place ReLU, eval dropout) now comes from here.
            if max(self.sources(t), default=-1) <= call.index:
                self._tag(t, frozenset([call.index]))
        if call.index in self._flops_before:
            counted = (self.counter.get_total_flops() - self._flops_before.pop(call.index)) // 2
            self.recurrent_correction += _recurrent_multiply_adds(module, call.inputs[0]) - counted


def _recurrent_multiply_adds(module: nn.Module, shape: tuple[int, ...]) -> int:
    """RNN/LSTM/GRU: every weight matrix once per time step (the FLOP counter cannot see into the fused LSTM)."""
    batched = len(shape) == 3
    steps = shape[1] if batched and module.batch_first else shape[0]  # (B, L, I), (L, B, I), (L, I) or packed (ΣL, I)
    batch = shape[0 if module.batch_first else 1] if batched else 1
    weights = sum(p.numel() for name, p in module.named_parameters() if name.startswith("weight"))
    return batch * steps * weights


def input_names(model: nn.Module, count: int) -> list[str]:
    """The names of the first `count` arguments of `model.forward`; a UsageError when it takes another number."""
    signature = inspect.signature(model.forward)
    try:
        signature.bind(*range(count))
    except TypeError:
        positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        wanted = [p.name for p in signature.parameters.values() if p.default is p.empty and p.kind in positional]
        raise UsageError(
            f"{type(model).__name__} takes {len(wanted)} input{'s' * (len(wanted) != 1)} ({', '.join(wanted)}), "
            f"got {count}: give one --input for each"
        ) from None
    positional = [p.name for p in signature.parameters.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return [positional[i] if i < len(positional) else f"input_{i + 1}" for i in range(count)]


def trace(model: nn.Module, batch: list[Tensor], *, follow: bool) -> Trace:
    """Run `model` on `batch` once (eval mode and no_grad are up to the caller), recording every call.

    `follow` also tags tensors (for the connections) and counts multiply-adds; without it, only
    calls and shapes are recorded. A forward pass that fails on a shape is a UsageError naming the
    layer, what it expects and what it got.
    """
    tracer = _Tracer(model, follow)
    for name, x in zip(input_names(model, len(batch)), batch, strict=True):
        tracer.add_input(name, x)
    try:
        if tracer.counter is not None:
            with tracer.counter, tracer:
                output = model(*batch)
        else:
            output = model(*batch)
    except (RuntimeError, ValueError, IndexError) as e:
        raise UsageError(_mismatch(model, tracer, batch, e)) from None
    finally:
        tracer.remove()
    counter = tracer.counter
    multiply_adds = counter.get_total_flops() // 2 + tracer.recurrent_correction if counter is not None else 0
    return Trace(tracer.calls, set(tracer.sources(output)), multiply_adds)


# ---------------------------------------------------------------- shapes that do not fit


def show_shape(shape: tuple[int | str | None, ...]) -> str:
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def _batch_dim(module: nn.Module | None) -> int:
    sequence_first = isinstance(module, (nn.RNNBase, nn.MultiheadAttention)) and not module.batch_first
    return 1 if sequence_first else 0


def _mismatch(model: nn.Module, tracer: _Tracer, batch: list[Tensor], error: Exception) -> str:
    shapes = ", ".join(show_shape((None, *x.shape[1:])) for x in batch)
    given = f"inputs {shapes} do" if len(batch) > 1 else f"input {shapes} does"
    torch_says = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    failing = tracer.stack[-1] if tracer.stack else None
    if failing is None or failing.depth == 0:
        done = [c for c in tracer.calls if c.depth > 0 and c.module is not None and c.outputs]
        after = f", after layer {done[-1].name} ({done[-1].kind})" if done else ""
        return f"{given} not fit {type(model).__name__}: in its forward{after}: {torch_says}"
    dim = _batch_dim(failing.module)
    got_shapes = [tuple(None if i == dim else d for i, d in enumerate(s)) for s in failing.inputs]
    got = ", ".join(map(show_shape, got_shapes)) or "no tensor"
    expected = _expected(failing.module, failing.inputs[0]) if failing.inputs else None
    layer = f"layer {failing.name} ({failing.kind})"
    if expected is None:
        return f"{given} not fit the model: {layer} cannot take {got}: {torch_says}"
    return f"{given} not fit the model: {layer} expects {expected} but got {got}"


_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
_POOLS = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d)


def _expected(module: nn.Module, shape: tuple[int, ...]) -> str | None:
    """What `module` takes, written like the shape it got (batch None); None when its rule is unknown
    or the shape it got follows it (the error lies elsewhere)."""
    dims: list[int | str | None] = [None, *shape[1:]] if shape else []
    if isinstance(module, nn.Linear):
        return None if shape[-1] == module.in_features else show_shape((*dims[:-1], module.in_features))
    if isinstance(module, nn.RNNBase):
        dims = [None if i == _batch_dim(module) else d for i, d in enumerate(shape)]
        return None if shape[-1] == module.input_size else show_shape((*dims[:-1], module.input_size))
    if isinstance(module, nn.LayerNorm):
        normalized = tuple(module.normalized_shape)
        return None if tuple(shape[-len(normalized) :]) == normalized else show_shape((*dims[: -len(normalized)], *normalized))
    if isinstance(module, nn.Embedding):
        return f"integer indices below {module.num_embeddings}"
    if isinstance(module, _NORMS):
        return None if shape[1:2] == (module.num_features,) else show_shape((None, module.num_features, *shape[2:]))
    if isinstance(module, _CONVS + _POOLS):
        spatial = int(type(module).__name__[-2])  # "Conv2d" -> 2
        channels = getattr(module, "in_channels", None)  # pools take any
        letters = ("L",) if spatial == 1 else ("H", "W") if spatial == 2 else ("D", "H", "W")
        if len(shape) != spatial + 2:
            return f"a {spatial + 2}-D input {show_shape((None, channels or 'C', *letters))}"
        if channels is not None and shape[1] != channels:
            return show_shape((None, channels, *shape[2:]))
        least = _least_size(module, spatial)
        if any(size < m for size, m in zip(shape[2:], least)):
            return "at least " + show_shape((None, shape[1], *least))
    return None


def _least_size(module: nn.Module, spatial: int) -> tuple[int, ...]:
    """The smallest input size per spatial dimension that gives an output of at least 1."""
    def each(value: Any) -> tuple[int, ...]:
        return tuple(value) if isinstance(value, (tuple, list)) else (value,) * spatial

    if isinstance(getattr(module, "padding", 0), str) or "Transpose" in type(module).__name__:
        return (1,) * spatial
    kernel, padding = each(module.kernel_size), each(module.padding)
    dilation = each(getattr(module, "dilation", 1))
    return tuple(max(1, d * (k - 1) + 1 - 2 * p) for k, p, d in zip(kernel, padding, dilation))
