import pydantic
import pytest
import torch

from trainlab.models import MODELS
from trainlab.models.registry import IMAGE_MODEL_INPUTS
from trainlab.models.vision import PreActBlock


# Models that cannot be tiny at their defaults: vgg16 needs 32x32 images, and its 4096-wide classifier
# would make the test slow; airbench pools three times after its unpadded whitening conv, so needs 9x9.
TINY_ARGUMENTS = {"vgg16": {"image_size": (32, 32), "hidden": 16}, "airbench": {"image_size": (9, 9), "widths": [4, 8, 8]}}


@pytest.mark.parametrize("name", [n for n in MODELS.names() if MODELS.injected(n) == IMAGE_MODEL_INPUTS])
def test_every_registered_image_model_trains_at_a_tiny_size(name):
    """Forward gives (B, classes); backward reaches every parameter."""
    arguments = {"in_channels": 3, "num_classes": 5, "image_size": (8, 8), **TINY_ARGUMENTS.get(name, {})}
    model = MODELS.build(name, **arguments)
    logits = model(torch.randn(2, 3, *arguments["image_size"]))
    assert logits.shape == (2, 5)
    logits.sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_workshop_cnn_has_the_workshop_layout_and_parameter_count():
    model = MODELS.build("workshop_cnn", in_channels=3, num_classes=10, image_size=(32, 32))
    kinds = [type(m).__name__ for m in model]
    assert kinds == ["Conv2d", "ReLU", "Conv2d", "ReLU", "MaxPool2d", "Conv2d", "ReLU", "Conv2d", "ReLU", "MaxPool2d",
                     "Flatten", "Linear", "ReLU", "Linear", "ReLU", "Linear"]
    # conv 3*32*9+32, 32*32*9+32, 32*64*9+64, 64*64*9+64; FC 4096*256+256, 256*128+128, 128*10+10
    assert sum(p.numel() for p in model.parameters()) == 896 + 9_248 + 18_496 + 36_928 + 1_048_832 + 32_896 + 1_290


def test_workshop_cnn_widths_are_arguments():
    model = MODELS.build("workshop_cnn", in_channels=1, num_classes=3, image_size=(8, 8), channels=[2, 3, 4, 5], hidden=[6, 7])
    assert model(torch.randn(4, 1, 8, 8)).shape == (4, 3)
    assert model[0].out_channels == 2 and model[11].in_features == 5 * 2 * 2 and model[13].out_features == 7


def test_images_too_small_for_two_poolings_are_refused():
    with pytest.raises(ValueError, match="at least 4x4"):
        MODELS.build("workshop_cnn", in_channels=1, num_classes=3, image_size=(3, 3))


def kinds(model):
    return [type(m).__name__ for m in model]


def test_workshop_architecture_2_uses_sigmoid_in_the_fc_layers_only():
    model = MODELS.build("workshop_cnn", in_channels=3, num_classes=10, image_size=(32, 32), fc_activation="sigmoid")
    assert kinds(model)[:11] == ["Conv2d", "ReLU", "Conv2d", "ReLU", "MaxPool2d", "Conv2d", "ReLU", "Conv2d", "ReLU",
                                 "MaxPool2d", "Flatten"]
    assert kinds(model)[11:] == ["Linear", "Sigmoid", "Linear", "Sigmoid", "Linear"]


def test_workshop_architecture_3_adds_a_conv_relu_before_the_flatten():
    model = MODELS.build("workshop_cnn", in_channels=3, num_classes=10, image_size=(32, 32),
                        fc_activation="sigmoid", extra_conv=True)
    assert kinds(model) == ["Conv2d", "ReLU", "Conv2d", "ReLU", "MaxPool2d", "Conv2d", "ReLU", "Conv2d", "ReLU",
                            "MaxPool2d", "Conv2d", "ReLU", "Flatten", "Linear", "Sigmoid", "Linear", "Sigmoid", "Linear"]
    assert (model[10].in_channels, model[10].out_channels, model[10].kernel_size, model[10].padding) == (64, 64, (3, 3), (1, 1))
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_workshop_architecture_4_puts_batchnorm_between_each_fc_and_its_activation():
    model = MODELS.build("workshop_cnn", in_channels=3, num_classes=10, image_size=(32, 32),
                        fc_activation="sigmoid", extra_conv=True, fc_batchnorm=True)
    assert kinds(model)[12:] == ["Flatten", "Linear", "BatchNorm1d", "Sigmoid", "Linear", "BatchNorm1d", "Sigmoid", "Linear"]
    assert model[14].num_features == 256 and model[17].num_features == 128
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_workshop_dropout_follows_each_fc_activation_only_when_positive():
    model = MODELS.build("workshop_cnn", in_channels=3, num_classes=10, image_size=(32, 32), dropout=0.3, fc_batchnorm=True)
    assert kinds(model)[11:] == ["Linear", "BatchNorm1d", "ReLU", "Dropout", "Linear", "BatchNorm1d", "ReLU", "Dropout", "Linear"]
    assert all(m.p == 0.3 for m in model if isinstance(m, torch.nn.Dropout))
    plain = MODELS.build("workshop_cnn", in_channels=3, num_classes=10, image_size=(32, 32), dropout=0.0)
    assert "Dropout" not in kinds(plain)


@pytest.mark.parametrize(("name", "kind"), [("relu", "ReLU"), ("sigmoid", "Sigmoid"), ("tanh", "Tanh"),
                                            ("leaky_relu", "LeakyReLU"), ("elu", "ELU"), ("gelu", "GELU")])
def test_every_fc_activation_name_gives_its_module(name, kind):
    model = MODELS.build("workshop_cnn", in_channels=1, num_classes=3, image_size=(8, 8), fc_activation=name)
    assert kinds(model)[12] == kind and kinds(model)[14] == kind


def test_workshop_switches_are_validated_from_their_annotations():
    MODELS.validate("workshop_cnn", {"fc_activation": "tanh", "extra_conv": True, "dropout": 0.5})
    for bad in ({"fc_activation": "swish"}, {"dropout": 1.0}, {"dropout": -0.1}):
        with pytest.raises(pydantic.ValidationError):
            MODELS.validate("workshop_cnn", bad)


def test_mnist_mlp_784_256_128_10_has_235146_parameters():
    model = MODELS.build("mnist_mlp", in_channels=1, num_classes=10, image_size=(28, 28))
    assert kinds(model) == ["Flatten", "Linear", "ReLU", "Linear", "ReLU", "Linear"]
    assert sum(p.numel() for p in model.parameters()) == 784 * 256 + 256 + 256 * 128 + 128 + 128 * 10 + 10 == 235_146
    assert model(torch.randn(4, 1, 28, 28)).shape == (4, 10)


def test_mnist_mlp_hidden_activation_and_dropout_are_arguments():
    model = MODELS.build("mnist_mlp", in_channels=3, num_classes=5, image_size=(4, 4),
                        hidden=[7, 6, 5], activation="tanh", dropout=0.2)
    assert kinds(model) == ["Flatten", "Linear", "Tanh", "Dropout", "Linear", "Tanh", "Dropout", "Linear", "Tanh", "Dropout",
                            "Linear"]
    assert model[1].in_features == 3 * 4 * 4
    logistic = MODELS.build("mnist_mlp", in_channels=1, num_classes=10, image_size=(28, 28), hidden=[])
    assert kinds(logistic) == ["Flatten", "Linear"]


def test_preact_resnet_default_is_the_deck_layout_with_677738_parameters():
    model = MODELS.build("preact_resnet", in_channels=3, num_classes=10, image_size=(32, 32))
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
    model = MODELS.build("preact_resnet", in_channels=channels, num_classes=10, image_size=(size, size))
    assert model(torch.randn(2, channels, size, size)).shape == (2, 10)


def test_preact_resnet_widths_set_the_stages():
    model = MODELS.build("preact_resnet", in_channels=1, num_classes=4, image_size=(16, 16), widths=[8, 16, 24, 32])
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


VGG16_BN_FEATURES = [  # torchvision.models.vgg16_bn(): conv, batch norm, ReLU; max-pools at 6, 13, 23, 33, 43
    0, 1, 3, 4, 7, 8, 10, 11, 14, 15, 17, 18, 20, 21, 24, 25, 27, 28, 30, 31, 34, 35, 37, 38, 40, 41,
]


def test_vgg16_is_torchvisions_layout_and_initialisation():
    with torch.device("meta"):  # 138M parameters, no memory
        model = MODELS.build("vgg16", in_channels=3, num_classes=1000, image_size=(224, 224))
    convs = [m for m in model.features if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [
        (3, 64), (64, 64), (64, 128), (128, 128), (128, 256), (256, 256), (256, 256),
        (256, 512), (512, 512), (512, 512), (512, 512), (512, 512), (512, 512)]  # fmt: skip
    assert all(c.kernel_size == (3, 3) and c.padding == (1, 1) for c in convs)
    assert [i for i, m in enumerate(model.features) if isinstance(m, torch.nn.MaxPool2d)] == [4, 9, 16, 23, 30]
    assert model.avgpool.output_size == (7, 7)
    assert kinds(model.classifier) == ["Linear", "ReLU", "Dropout", "Linear", "ReLU", "Dropout", "Linear"]
    assert [(m.in_features, m.out_features) for m in model.classifier[::3]] == [(25_088, 4_096), (4_096, 4_096), (4_096, 1_000)]
    conv_params = sum(c.in_channels * c.out_channels * 9 + c.out_channels for c in convs)
    assert conv_params == 14_714_688
    assert sum(p.numel() for p in model.parameters()) == conv_params + 25_089 * 4_096 + 4_097 * 4_096 + 4_097 * 1_000 == 138_357_544

    small = MODELS.build("vgg16", in_channels=1, num_classes=3, image_size=(32, 32), hidden=64, dropout=0.2)
    assert small.classifier[0].in_features == 512 * 7 * 7 and small.classifier[2].p == 0.2  # 1x1 features, pooled to 7x7
    assert small(torch.randn(2, 1, 32, 32)).shape == (2, 3)
    assert all(m.bias.abs().sum() == 0 for m in small.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)))
    assert small.classifier[0].weight.std().item() == pytest.approx(0.01, rel=0.05)  # N(0, 0.01)
    assert small.features[2].weight.std().item() == pytest.approx((2 / (64 * 9)) ** 0.5, rel=0.05)  # Kaiming, fan-out


def test_vgg16_batchnorm_is_torchvisions_vgg16_bn():
    with torch.device("meta"):
        model = MODELS.build("vgg16", in_channels=3, num_classes=1000, image_size=(224, 224), batchnorm=True)
    features = sorted({int(key.split(".")[1]) for key in model.state_dict() if key.startswith("features.")})
    assert features == VGG16_BN_FEATURES
    assert [key for key in model.state_dict() if key.startswith("features.1.")] == [
        "features.1.weight", "features.1.bias", "features.1.running_mean", "features.1.running_var",
        "features.1.num_batches_tracked"]  # fmt: skip
    assert sum(p.numel() for p in model.parameters()) == 138_357_544 + 2 * (2 * 64 + 2 * 128 + 3 * 256 + 6 * 512) == 138_365_992


def test_vgg16_refuses_images_smaller_than_its_five_poolings_allow():
    with pytest.raises(ValueError, match="at least 32x32"):
        MODELS.build("vgg16", in_channels=3, num_classes=10, image_size=(28, 28))
