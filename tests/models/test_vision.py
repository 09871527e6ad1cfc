import pydantic
import pytest
import torch

from trainlab.models import MODELS, build_model
from trainlab.models.vision import PreActBlock


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


def kinds(model):
    return [type(m).__name__ for m in model]


def test_workshop_architecture_2_uses_sigmoid_in_the_fc_layers_only():
    model = build_model("workshop_cnn", in_channels=3, num_classes=10, image_size=(32, 32), fc_activation="sigmoid")
    assert kinds(model)[:11] == ["Conv2d", "ReLU", "Conv2d", "ReLU", "MaxPool2d", "Conv2d", "ReLU", "Conv2d", "ReLU",
                                 "MaxPool2d", "Flatten"]
    assert kinds(model)[11:] == ["Linear", "Sigmoid", "Linear", "Sigmoid", "Linear"]


def test_workshop_architecture_3_adds_a_conv_relu_before_the_flatten():
    model = build_model("workshop_cnn", in_channels=3, num_classes=10, image_size=(32, 32),
                        fc_activation="sigmoid", extra_conv=True)
    assert kinds(model) == ["Conv2d", "ReLU", "Conv2d", "ReLU", "MaxPool2d", "Conv2d", "ReLU", "Conv2d", "ReLU",
                            "MaxPool2d", "Conv2d", "ReLU", "Flatten", "Linear", "Sigmoid", "Linear", "Sigmoid", "Linear"]
    assert (model[10].in_channels, model[10].out_channels, model[10].kernel_size, model[10].padding) == (64, 64, (3, 3), (1, 1))
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_workshop_architecture_4_puts_batchnorm_between_each_fc_and_its_activation():
    model = build_model("workshop_cnn", in_channels=3, num_classes=10, image_size=(32, 32),
                        fc_activation="sigmoid", extra_conv=True, fc_batchnorm=True)
    assert kinds(model)[12:] == ["Flatten", "Linear", "BatchNorm1d", "Sigmoid", "Linear", "BatchNorm1d", "Sigmoid", "Linear"]
    assert model[14].num_features == 256 and model[17].num_features == 128
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_workshop_dropout_follows_each_fc_activation_only_when_positive():
    model = build_model("workshop_cnn", in_channels=3, num_classes=10, image_size=(32, 32), dropout=0.3, fc_batchnorm=True)
    assert kinds(model)[11:] == ["Linear", "BatchNorm1d", "ReLU", "Dropout", "Linear", "BatchNorm1d", "ReLU", "Dropout", "Linear"]
    assert all(m.p == 0.3 for m in model if isinstance(m, torch.nn.Dropout))
    plain = build_model("workshop_cnn", in_channels=3, num_classes=10, image_size=(32, 32), dropout=0.0)
    assert "Dropout" not in kinds(plain)


@pytest.mark.parametrize(("name", "kind"), [("relu", "ReLU"), ("sigmoid", "Sigmoid"), ("tanh", "Tanh"),
                                            ("leaky_relu", "LeakyReLU"), ("elu", "ELU"), ("gelu", "GELU")])
def test_every_fc_activation_name_gives_its_module(name, kind):
    model = build_model("workshop_cnn", in_channels=1, num_classes=3, image_size=(8, 8), fc_activation=name)
    assert kinds(model)[12] == kind and kinds(model)[14] == kind


def test_workshop_switches_are_validated_from_their_annotations():
    MODELS.validate("workshop_cnn", {"fc_activation": "tanh", "extra_conv": True, "dropout": 0.5})
    for bad in ({"fc_activation": "swish"}, {"dropout": 1.0}, {"dropout": -0.1}):
        with pytest.raises(pydantic.ValidationError):
            MODELS.validate("workshop_cnn", bad)


def test_mnist_mlp_784_256_128_10_has_235146_parameters():
    model = build_model("mnist_mlp", in_channels=1, num_classes=10, image_size=(28, 28))
    assert kinds(model) == ["Flatten", "Linear", "ReLU", "Linear", "ReLU", "Linear"]
    assert sum(p.numel() for p in model.parameters()) == 784 * 256 + 256 + 256 * 128 + 128 + 128 * 10 + 10 == 235_146
    assert model(torch.randn(4, 1, 28, 28)).shape == (4, 10)


def test_mnist_mlp_hidden_activation_and_dropout_are_arguments():
    model = build_model("mnist_mlp", in_channels=3, num_classes=5, image_size=(4, 4),
                        hidden=[7, 6, 5], activation="tanh", dropout=0.2)
    assert kinds(model) == ["Flatten", "Linear", "Tanh", "Dropout", "Linear", "Tanh", "Dropout", "Linear", "Tanh", "Dropout",
                            "Linear"]
    assert model[1].in_features == 3 * 4 * 4
    logistic = build_model("mnist_mlp", in_channels=1, num_classes=10, image_size=(28, 28), hidden=[])
    assert kinds(logistic) == ["Flatten", "Linear"]


def test_preact_resnet_default_is_the_deck_layout_with_677738_parameters():
    model = build_model("preact_resnet", in_channels=3, num_classes=10, image_size=(32, 32))
    blocks = [m for m in model if isinstance(m, PreActBlock)]
    assert [(b.conv1.in_channels, b.conv1.out_channels, b.conv1.stride[0]) for b in blocks] == [
        (32, 32, 1), (32, 64, 2), (64, 64, 1), (64, 128, 2), (128, 128, 1)]
    assert [type(b.shortcut).__name__ for b in blocks] == ["Identity", "Conv2d", "Identity", "Conv2d", "Identity"]
    # Convs have no bias (BN follows); BN has 2 per channel.
    # stem conv 3*32*9 = 864, BN 64
    # (32->32)     BN 64 + 32*32*9 + BN 64 + 32*32*9                  = 18,560
    # (32->64, /2) BN 64 + 32*64*9 + BN 128 + 64*64*9 + proj 32*64     = 57,536
    # (64->64)     BN 128 + 64*64*9 + BN 128 + 64*64*9                 = 73,984
    # (64->128,/2) BN 128 + 64*128*9 + BN 256 + 128*128*9 + proj 64*128 = 229,760
    # (128->128)   BN 256 + 128*128*9 + BN 256 + 128*128*9             = 295,424
    # final BN 256; linear 128*10+10 = 1,290
    expected = 864 + 64 + 18_560 + 57_536 + 73_984 + 229_760 + 295_424 + 256 + 1_290
    assert sum(p.numel() for p in model.parameters()) == expected == 677_738


@pytest.mark.parametrize(("channels", "size"), [(1, 28), (3, 32)])
def test_preact_resnet_classifies_mnist_and_cifar_shapes(channels, size):
    model = build_model("preact_resnet", in_channels=channels, num_classes=10, image_size=(size, size))
    assert model(torch.randn(2, channels, size, size)).shape == (2, 10)


def test_preact_resnet_widths_set_the_stages():
    model = build_model("preact_resnet", in_channels=1, num_classes=4, image_size=(16, 16), widths=[8, 16, 24, 32])
    blocks = [m for m in model if isinstance(m, PreActBlock)]
    assert [(b.conv1.in_channels, b.conv1.out_channels, b.conv1.stride[0]) for b in blocks] == [
        (8, 8, 1), (8, 16, 2), (16, 16, 1), (16, 24, 2), (24, 24, 1), (24, 32, 2), (32, 32, 1)]
    assert model[-1].in_features == 32
    assert model(torch.randn(2, 1, 16, 16)).shape == (2, 4)


def test_preact_block_with_a_zero_last_conv_passes_its_input_through():
    block = PreActBlock(4, 4)
    torch.nn.init.zeros_(block.conv2.weight)
    x = torch.randn(2, 4, 5, 5)
    assert torch.equal(block(x), x)
