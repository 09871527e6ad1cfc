"""Models of tables: rows of encoded columns (B, F), standardised numbers and one-hot categories."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field
from torch import nn

from trainlab.models.layers import Activation, Probability, dense_layers
from trainlab.models.registry import MODELS, TABLE_MODEL_INPUTS


@MODELS.register(injected=TABLE_MODEL_INPUTS)
def table_mlp(
    *,
    in_features: int,
    num_classes: int,
    hidden: list[Annotated[int, Field(gt=0)]] = [64, 64],  # noqa: B006
    activation: Activation = "relu",
    dropout: Probability = 0.0,
    batchnorm: bool = False,
) -> nn.Sequential:
    """A multilayer perceptron on a table's encoded columns: FC(-batch norm)-act(-dropout) per hidden width, then FC
    to the outputs (one score per class, or one value per target column).

    An empty `hidden` gives logistic regression (linear regression for values targets)."""
    layers: list[nn.Module] = []
    width = in_features
    for size in hidden:
        layers += dense_layers(width, size, activation, batchnorm=batchnorm, dropout=dropout)
        width = size
    layers.append(nn.Linear(width, num_classes))  # (B, F) -> (B, num_classes)
    return nn.Sequential(*layers)
