import pytest
import torch

from trainlab.models import MODELS, build_model


@pytest.mark.parametrize("name", MODELS.names())
def test_every_registered_model_trains_at_a_tiny_size(name):
    """Forward gives (B, classes); backward reaches every parameter."""
    model = build_model(name, in_channels=3, num_classes=5, image_size=(8, 8))
    logits = model(torch.randn(2, 3, 8, 8))
    assert logits.shape == (2, 5)
    logits.sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_workshop_cnn_has_the_workshop_layout_and_parameter_count():
    model = build_model("workshop_cnn", in_channels=3, num_classes=10, image_size=(32, 32))
    kinds = [type(m).__name__ for m in model]
    assert kinds == ["Conv2d", "ReLU", "Conv2d", "ReLU", "MaxPool2d", "Conv2d", "ReLU", "Conv2d", "ReLU", "MaxPool2d",
                     "Flatten", "Linear", "ReLU", "Linear", "ReLU", "Linear"]
    # conv 3*32*9+32, 32*32*9+32, 32*64*9+64, 64*64*9+64; FC 4096*256+256, 256*128+128, 128*10+10
    assert sum(p.numel() for p in model.parameters()) == 896 + 9_248 + 18_496 + 36_928 + 1_048_832 + 32_896 + 1_290


def test_workshop_cnn_widths_are_arguments():
    model = build_model("workshop_cnn", in_channels=1, num_classes=3, image_size=(8, 8), channels=[2, 3, 4, 5], hidden=[6, 7])
    assert model(torch.randn(4, 1, 8, 8)).shape == (4, 3)
    assert model[0].out_channels == 2 and model[11].in_features == 5 * 2 * 2 and model[13].out_features == 7


def test_images_too_small_for_two_poolings_are_refused():
    with pytest.raises(ValueError, match="at least 4x4"):
        build_model("workshop_cnn", in_channels=1, num_classes=3, image_size=(3, 3))
