"""One sentence's attention weights drawn per layer (rows) and head (columns): query down, key across."""

from __future__ import annotations

from collections.abc import Sequence

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torch import Tensor

CELL = 1.6  # inches per map
LABELLED = 40  # tokens beyond which the axes carry no labels


def attention_maps_figure(attentions: Sequence[Tensor], tokens: Sequence[str], *, title: str = "") -> Figure:
    """A grid of the (heads, S, S) weights of each layer; `tokens` names the S positions."""
    layers, heads = len(attentions), attentions[0].shape[0]
    fig = Figure(figsize=(1.0 + CELL * heads, 0.8 + CELL * layers), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(layers, heads, squeeze=False)
    labels = [t.replace("$", r"\$") for t in tokens]
    for layer, weights in enumerate(attentions):
        for head in range(heads):
            ax = axes[layer][head]
            ax.imshow(weights[head].numpy(), cmap="viridis", vmin=0.0, vmax=1.0)
            ax.set_xticks([])
            ax.set_yticks([])
            if layer == 0:
                ax.set_title(f"head {head + 1}", fontsize=8)
            if head == 0:
                ax.set_ylabel(f"layer {layer + 1}", fontsize=8)
    if len(tokens) <= LABELLED:  # the first map of each row and column names its positions
        for head in range(heads):
            axes[-1][head].set_xticks(range(len(labels)), labels, rotation=90, fontsize=5)
        for layer in range(layers):
            axes[layer][0].set_yticks(range(len(labels)), labels, fontsize=5)
    fig.suptitle(f"attention per layer and head{': ' + title if title else ''} (rows: queries, columns: keys)", fontsize=10)
    return fig
