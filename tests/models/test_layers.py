import pydantic
import pytest
import torch

from trainlab.models import MODELS
from trainlab.models.layers import ACTIVATIONS


def sequential(*layers, channels=3, size=8, classes=10):
    return MODELS.build("sequential", in_channels=channels, num_classes=classes, image_size=(size, size), layers=list(layers))


def kinds(model):
    return [type(m).__name__ for m in model]


def test_a_small_cnn_is_built_from_strings_with_sizes_inferred_and_trains_one_step():
    torch.manual_seed(0)
    model = sequential("conv 8 3", "batchnorm", "relu", "maxpool 2", "conv 16 3 stride 2 pad 0", "relu",
                       "flatten", "linear 32", "batchnorm", "relu", "dropout 0.1", channels=1, size=12)
    assert kinds(model) == ["Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d", "Conv2d", "ReLU",
                            "Flatten", "Linear", "BatchNorm1d", "ReLU", "Dropout", "Linear"]
    # 12x12 -> conv same 12x12 -> pool 6x6 -> conv k3 s2 p0 2x2, so 16*2*2 features
    assert model[4].in_channels == 8 and model[7].in_features == 16 * 2 * 2 and model[-1].in_features == 32
    x, y = torch.randn(16, 1, 12, 12), torch.randint(0, 10, (16,))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    before = torch.nn.functional.cross_entropy(model(x), y)
    before.backward()
    optimizer.step()
    assert torch.nn.functional.cross_entropy(model(x), y) < before


def test_the_head_flattens_an_image_and_adds_linear_to_the_classes():
    model = sequential("conv 4 3", "relu")
    assert kinds(model)[-2:] == ["Flatten", "Linear"]
    assert (model[-1].in_features, model[-1].out_features) == (4 * 8 * 8, 10)
    assert model(torch.randn(2, 3, 8, 8)).shape == (2, 10)


def test_globalavgpool_gives_one_feature_per_channel():
    model = sequential("conv 6 3", "avgpool 2", "globalavgpool", "linear 5")
    assert model[-2].in_features == 6 and model(torch.randn(2, 3, 8, 8)).shape == (2, 10)


def test_every_activation_name_is_a_layer():
    model = sequential("flatten", *ACTIVATIONS)
    assert kinds(model)[1:-1] == [cls.__name__ for cls in ACTIVATIONS.values()]


def test_building_leaves_batchnorm_statistics_untouched():
    model = sequential("conv 4 3", "batchnorm")
    assert torch.equal(model[1].running_mean, torch.zeros(4)) and model[1].num_batches_tracked == 0
    assert model.training


def test_an_unknown_layer_names_its_index_and_the_closest_name():
    with pytest.raises(ValueError, match=r"layer 2 \('rlu'\): unknown layer 'rlu' \(did you mean 'relu'\?\); known layers: conv"):
        sequential("conv 8 3", "rlu")


def test_softmax_is_refused_because_the_loss_takes_it():
    with pytest.raises(ValueError, match=r"layer 3 \('softmax'\): .*the loss .* takes the softmax"):
        sequential("flatten", "linear 8", "softmax")


@pytest.mark.parametrize(("text", "problem"), [
    ("conv 8", r"takes OUT and K.*got 1 arguments; expected the form 'conv OUT K \[stride S\] \[pad P\]'"),
    ("conv 8 three", r"K must be a whole number, got 'three'; expected the form 'conv OUT K"),
    ("conv 8 3 strde 2", r"unknown option 'strde' \(did you mean 'stride'\?\); expected the form 'conv OUT K"),
    ("conv 0 3", r"OUT must be at least 1, got 0"),
    ("maxpool", r"takes 1 argument, got 0; expected the form 'maxpool K'"),
    ("linear 64 32", r"takes 1 argument, got 2; expected the form 'linear OUT'"),
    ("dropout 1.5", r"P is a probability in \[0, 1\), got 1.5; expected the form 'dropout P'"),
    ("relu 2", r"takes 0 arguments, got 1; expected the form 'relu'"),
])
def test_wrong_arguments_name_the_index_the_text_and_the_expected_form(text, problem):
    with pytest.raises(ValueError, match=rf"layer 2 \('{text}'\): {problem}"):
        sequential("conv 4 3", text)


@pytest.mark.parametrize(("layers", "message"), [
    (["conv 32 3", "relu", "linear 64"],
     r"layer 3 \('linear 64'\) expects a flat input of shape \(features,\) but receives shape \(32, 8, 8\); put 'flatten'"),
    (["conv 16 3", "maxpool 4", "maxpool 4"],
     r"layer 3 \('maxpool 4'\) expects an image of at least 4x4 but receives shape \(16, 2, 2\)"),
    (["flatten", "conv 8 3"],
     r"layer 2 \('conv 8 3'\) expects an image of shape \(channels, height, width\) but receives shape \(192,\)"),
    (["conv 8 11 pad 0"],
     r"layer 1 \('conv 8 11 pad 0'\) expects an image of at least 11x11 \(kernel 11, pad 0\) but receives shape \(3, 8, 8\)"),
    (["flatten", "globalavgpool"],
     r"layer 2 \('globalavgpool'\) expects an image of shape \(channels, height, width\) but receives shape \(192,\)"),
])
def test_a_shape_that_does_not_fit_names_the_layer_and_both_shapes(layers, message):
    with pytest.raises(ValueError, match=message):
        sequential(*layers)


def test_an_empty_layer_list_is_refused_by_the_config_schema():
    with pytest.raises(pydantic.ValidationError):
        MODELS.validate("sequential", {"layers": []})
    assert MODELS.validate("sequential", {"layers": ["flatten"]}) == {"layers": ["flatten"]}
