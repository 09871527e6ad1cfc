import pytest
import torch

from trainlab.models import MODELS, fits, models_for
from trainlab.models.registry import TABLE_MODEL_INPUTS


@pytest.mark.parametrize("name", [n for n in MODELS.names() if MODELS.injected(n) == TABLE_MODEL_INPUTS])
@pytest.mark.parametrize("arguments", [{}, {"batchnorm": True, "dropout": 0.2, "activation": "gelu"}])
def test_every_registered_table_model_trains_at_a_tiny_size(name, arguments):
    """Forward gives (B, outputs); backward reaches every parameter."""
    model = MODELS.build(name, in_features=7, num_classes=3, hidden=[5, 4], **arguments)
    outputs = model(torch.randn(6, 7))
    assert outputs.shape == (6, 3)
    outputs.sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_table_mlp_without_hidden_layers_is_logistic_regression():
    model = MODELS.build("table_mlp", in_features=4, num_classes=2, hidden=[])
    assert [type(m).__name__ for m in model] == ["Linear"] and sum(p.numel() for p in model.parameters()) == 4 * 2 + 2


def test_table_mlp_layout_follows_its_arguments():
    model = MODELS.build("table_mlp", in_features=13, num_classes=3, batchnorm=True, dropout=0.1)
    assert [type(m).__name__ for m in model] == ["Linear", "BatchNorm1d", "ReLU", "Dropout"] * 2 + ["Linear"]
    assert model[0].in_features == 13 and model[0].out_features == 64 and model[-1].out_features == 3


def test_only_table_models_fit_a_tables_inputs():
    inputs = {"in_features": 5, "num_classes": 2, "num_outputs": 2, "load_pretrained": True}
    assert "table_mlp" in models_for(inputs) and not fits("mnist_mlp", inputs)
    assert not fits("table_mlp", {"in_channels": 1, "num_classes": 10, "image_size": (8, 8)})
