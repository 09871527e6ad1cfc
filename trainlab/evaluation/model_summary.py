"""Keras's model.summary() for PyTorch models, exact, from a traced forward pass (`trainlab summary`).

How the table counts
- One row per module call, nested modules indented under their parent; `depth` folds deeper
  modules into the row of their ancestor at that depth.
- Output shapes show the batch as None: the sizes that differ between a pass with one example and
  a pass with two (so an LSTM's (layers, batch, hidden) state is shown right).
- Each parameter is counted once, on the deepest row that holds it (the first one called); a row
  that uses parameters counted on another row says "(+N shared)"; a container shown with its
  children and no parameters of its own says "--". Trainable means requires_grad. Buffers
  (batch-norm running statistics) are not parameters; they get a line of their own.
- Multiply-adds, for one input: those of matrix products and convolutions wherever they run
  (linear, conv, attention and recurrent layers, a matmul in `forward`); a dot product of n terms
  plus a bias is n multiply-adds. Normalisation, activations, pooling and additions are not counted.
- "Connected to", and a row per input, appear for models that are not a plain chain of layers.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from trainlab.errors import UsageError
from trainlab.evaluation.trace import Call, Shape, Trace, show_shape, trace


@dataclass
class Row:
    call: Call
    shapes: list[Shape]
    params: int | None  # None: a container shown with its children, holding no parameter of its own
    shared: int  # parameters it uses that another row counts
    trainable: str  # "Y", "N", "partly", or "" without parameters
    connected: list[Call]
    leaf: bool  # no row below it: a step of the data flow

    @property
    def name(self) -> str:
        return self.call.label


@dataclass
class ModelSummary:
    name: str
    rows: list[Row]  # the inputs first, then the layers in the order they run
    chain: bool  # every layer takes the output of the one before: no "Connected to" needed
    total_params: int
    trainable_params: int
    param_bytes: int
    trainable_bytes: int
    buffers: int
    buffer_bytes: int
    multiply_adds: int  # for one input
    uncalled: dict[str, int]  # module -> parameters of it that no row holds (not called in the forward pass)
    batch_size: int | None
    output_bytes: int  # of the layer outputs for a batch of `batch_size`

    @property
    def inputs(self) -> list[Row]:
        return [row for row in self.rows if row.call.module is None]

    @property
    def layers(self) -> list[Row]:
        return [row for row in self.rows if row.call.module is not None]

    def text(self) -> str:
        """The table of layers, then the totals, as Keras prints them."""
        header, *rows = self._table()
        rule = max(map(len, [header, *rows]))
        return "\n".join([f'Model: "{self.name}", {self._inputs()}', "_" * rule, header, "=" * rule, *rows, "=" * rule,
                          *self._totals(), "_" * rule]) + "\n"  # fmt: skip

    def _inputs(self) -> str:
        if len(self.inputs) == 1:
            return f"input {format_shapes(self.inputs[0].shapes)}"
        return "inputs " + ", ".join(f"{row.name} {format_shapes(row.shapes)}" for row in self.inputs)

    def _table(self) -> list[str]:
        """The header line, then a line per row, and one more per further connection of a row."""
        frozen = self.trainable_params < self.total_params
        cells = [["Layer (type)", "Output Shape", "Param #", *["Trainable"] * frozen, *["Connected to"] * (not self.chain)]]
        for row in self.layers if self.chain else self.rows:
            params = "--" if row.params is None else f"{row.params:,}" + (f" (+{row.shared:,} shared)" if row.shared else "")
            connected = [call.label for call in row.connected] or ["-"]
            indent = "  " * (row.call.depth - 1)
            cells.append([f"{indent}{row.name} ({row.call.kind})", format_shapes(row.shapes), params,
                          *[row.trainable] * frozen, *connected[:1] * (not self.chain)])  # fmt: skip
            if not self.chain:
                cells += [[""] * (len(cells[0]) - 1) + [more] for more in connected[1:]]
        widths = [max(map(len, column)) for column in zip(*cells)]
        return [
            "  ".join(cell.rjust(w) if i == 2 else cell.ljust(w) for i, (cell, w) in enumerate(zip(line, widths))).rstrip()
            for line in cells
        ]

    def _totals(self) -> list[str]:
        frozen, frozen_bytes = self.total_params - self.trainable_params, self.param_bytes - self.trainable_bytes
        lines = [
            f"Total params: {self.total_params:,} ({_memory(self.param_bytes)})",
            f"Trainable params: {self.trainable_params:,} ({_memory(self.trainable_bytes)})",
            f"Non-trainable params: {frozen:,} ({_memory(frozen_bytes)})",
        ]
        if self.buffers:
            lines.append(f"Buffers, not parameters (batch-norm statistics): {self.buffers:,} ({_memory(self.buffer_bytes)})")
        lines.append(f"Multiply-adds for one input: {_count(self.multiply_adds)}")
        if self.batch_size is not None:
            lines.append(f"Layer outputs for a batch of {self.batch_size}: {_memory(self.output_bytes)}")
        if self.uncalled:
            missing = ", ".join(f"{name} ({count:,})" for name, count in self.uncalled.items())
            lines.append(f"Parameters in no row (their module is not called in the forward pass): {missing}")
        return lines


def summarize(
    model: nn.Module, *inputs: tuple[int, ...] | Tensor, depth: int | None = None, batch_size: int | None = None,
    name: str | None = None,
) -> ModelSummary:  # fmt: skip
    """Trace `model` and count its layers, output shapes, parameters and multiply-adds.

    Each input is the shape of one example without the batch, (3, 32, 32), or a tensor holding one
    example (token ids, say); the batch is added as the first dimension. The model runs in eval
    mode without gradients on the device of its parameters, and is left in the mode it was in; the
    global random generator is not used.
    `batch_size` shows that size instead of None and adds the memory of the layer outputs for it.
    """
    if not inputs:
        raise UsageError("give the shape of each input of the model, e.g. (3, 32, 32)")
    if depth is not None and depth < 1:
        raise UsageError(f"depth must be at least 1, got {depth}")
    generator = torch.Generator().manual_seed(0)
    examples = [x.detach() if isinstance(x, Tensor) else torch.randn(tuple(x), generator=generator) for x in inputs]
    device = next(itertools.chain(model.parameters(), model.buffers()), torch.empty(0)).device
    training = {module: module.training for module in model.modules()}
    model.eval()
    try:
        with torch.no_grad():
            one = trace(model, _batch(examples, 1, device), follow=True)
            several = trace(model, _batch(examples, max(batch_size or 2, 2), device), follow=False)
    finally:
        for module, mode in training.items():
            module.training = mode
    return _summary(model, one, several, depth, batch_size, name or type(model).__name__)


def _batch(examples: list[Tensor], size: int, device: torch.device) -> list[Tensor]:
    return [x.unsqueeze(0).expand(size, *x.shape).clone().to(device) for x in examples]  # (size, *example)


def _summary(
    model: nn.Module, one: Trace, several: Trace, depth: int | None, batch_size: int | None, name: str
) -> ModelSummary:
    root = next(call for call in one.calls if call.depth == 0)
    if not root.children:  # the model is a single layer (an nn.LSTM, say): its one row
        root.depth, root.name = 1, type(model).__name__.lower()
    limit = depth or max(call.depth for call in one.calls)
    shown = [call for call in one.calls if 1 <= call.depth <= limit]
    expanded = {call for call in shown if call.children and call.depth < limit}
    shapes = _batch_shapes(one, several, batch_size)

    # Each parameter goes to the deepest shown call that holds it, the first one called among equals.
    holder: dict[int, Call] = {}
    for call in sorted((c for c in shown if c.module is not None), key=lambda c: (-c.depth, c.index)):
        for p in call.module.parameters():
            holder.setdefault(id(p), call)

    def shown_as(index: int) -> Call:
        call = one.calls[index]
        while call.depth > limit:
            call = call.parent
        return call

    def connected(sources: set[int], call: Call | None = None) -> list[Call]:
        found = {shown_as(s) for s in sources} - {call}
        return sorted((c for c in found if c.depth >= 1), key=lambda c: c.index)

    rows = []
    for call in shown:
        params = list(call.module.parameters()) if call.module is not None else []
        own = [p for p in params if holder[id(p)] is call]
        shared = sum(p.numel() for p in params if not holder[id(p)].within(call))
        rows.append(Row(
            call, shapes[call.index], None if call in expanded and not own and not shared else sum(p.numel() for p in own),
            shared, _trainable(own), connected(call.sources, call), leaf=call not in expanded,
        ))  # fmt: skip
    flow = [row for row in rows if row.leaf]  # the inputs, then the layers in the order they run
    chain = (
        sum(row.call.module is None for row in flow) == 1
        and all(row.connected == [before.call] for before, row in zip(flow, flow[1:]))
        and connected(one.output_sources) == [flow[-1].call]
    )

    parameters = list(model.parameters())  # each shared parameter once
    buffers = list(model.buffers())
    uncalled: dict[str, int] = {}
    for qualified, p in model.named_parameters():
        if id(p) not in holder:
            owner = qualified.rpartition(".")[0] or type(model).__name__
            uncalled[owner] = uncalled.get(owner, 0) + p.numel()
    batch_pass = several if batch_size and batch_size > 1 else one
    leaf_calls = [c for c in batch_pass.calls if c.module is not None and not c.children]
    return ModelSummary(
        name=name, rows=rows, chain=chain,
        total_params=sum(p.numel() for p in parameters),
        trainable_params=sum(p.numel() for p in parameters if p.requires_grad),
        param_bytes=sum(p.numel() * p.element_size() for p in parameters),
        trainable_bytes=sum(p.numel() * p.element_size() for p in parameters if p.requires_grad),
        buffers=sum(b.numel() for b in buffers), buffer_bytes=sum(b.numel() * b.element_size() for b in buffers),
        multiply_adds=one.multiply_adds, uncalled=uncalled, batch_size=batch_size,
        output_bytes=sum(c.output_bytes for c in leaf_calls) if batch_size else 0,
    )  # fmt: skip


def _batch_shapes(one: Trace, several: Trace, batch_size: int | None) -> list[list[Shape]]:
    """Each call's output shapes, with `batch_size` (None by default) for the sizes that change with the batch."""
    aligned = len(one.calls) == len(several.calls) and all(a.module is b.module for a, b in zip(one.calls, several.calls))
    result = []
    for index, call in enumerate(one.calls):
        twins = several.calls[index].outputs if aligned else []
        shapes = []
        for k, shape in enumerate(call.outputs):
            other = twins[k] if k < len(twins) and len(twins[k]) == len(shape) else None
            if other is None:  # the two passes differ: take the batch to be the first dimension
                shapes.append((batch_size, *shape[1:]) if shape else shape)
            else:
                shapes.append(tuple(batch_size if a != b else a for a, b in zip(shape, other)))
        result.append(shapes)
    return result


def _trainable(params: list[nn.Parameter]) -> str:
    if not params:
        return ""
    trainable = sum(p.requires_grad for p in params)
    return "Y" if trainable == len(params) else "N" if not trainable else "partly"


def format_shapes(shapes: list[Shape]) -> str:
    if not shapes:
        return "-"
    return show_shape(shapes[0]) if len(shapes) == 1 else "[" + ", ".join(map(show_shape, shapes)) + "]"


def _memory(size: float) -> str:
    """Bytes in Keras's units: 1 KB = 1,024 bytes."""
    for unit in ("B", "KB", "MB"):
        if size < 1024:
            return f"{size:.2f} {unit}"
        size /= 1024
    return f"{size:.2f} GB"


def _count(count: int) -> str:
    """12,345,678 (12.35 M): exact, then readable."""
    for power, unit in ((12, "T"), (9, "G"), (6, "M"), (3, "K")):
        if count >= 10**power:
            return f"{count:,} ({count / 10**power:.2f} {unit})"
    return f"{count:,}"
