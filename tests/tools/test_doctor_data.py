import numpy as np
import torch

from trainlab.evaluation.grid import cell_origin
from trainlab.tools.doctor.checks import FAIL, PASS, WARN
from trainlab.tools.doctor.data_checks import check_data

CLASSES = ["zero", "one", "two", "three"]


def images(n=128, seed=0):
    """Normalised 1x8x8 "images" (mean 0, std 1) and shuffled labels of 4 classes."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, 8, 8, generator=g), torch.randperm(n, generator=g) % len(CLASSES)


def batched(inputs, targets, size=32):
    return [(inputs[i : i + size], targets[i : i + size]) for i in range(0, len(targets), size)]


def test_healthy_data_passes_with_the_balance_and_a_picture():
    inputs, targets = images()
    check = check_data(batched(inputs, targets), targets, CLASSES)
    assert check.status == PASS, check.summary
    assert check.evidence["class_counts"] == {name: 32 for name in CLASSES}
    assert abs(check.evidence["channel_mean"][0]) < 0.1 and abs(check.evidence["channel_std"][0] - 1) < 0.1
    assert "data_batch" in check.figures


def test_the_picture_uses_the_preview_as_the_model_gets_it():
    inputs, targets = images()
    preview = (torch.rand(8, 1, 8, 8), targets[:8])
    check = check_data(batched(inputs, targets), targets, CLASSES, preview)
    figure = check.figures["data_batch"]
    assert len(figure.axes[0].texts) == 8, "one title per preview image"
    top, left = cell_origin(7, 8, 8, columns=8)
    np.testing.assert_allclose(figure.axes[0].images[0].get_array()[top : top + 8, left : left + 8], preview[0][7, 0].numpy(), atol=1e-6)


def test_nan_inputs_fail():
    inputs, targets = images()
    inputs[3, 0, 2, 2] = float("nan")
    check = check_data(batched(inputs, targets), targets, CLASSES)
    assert check.status == FAIL and check.evidence["nan_values"] == 1


def test_labels_out_of_range_fail():
    inputs, targets = images()
    targets = targets + 1  # 1-based labels
    check = check_data(batched(inputs, targets), targets, CLASSES)
    assert check.status == FAIL
    assert "labels span 1..4 for 4 classes" in check.summary


def test_a_class_without_training_examples_fails():
    inputs, targets = images()
    targets[targets == 3] = 2
    check = check_data(batched(inputs, targets), targets, CLASSES)
    assert check.status == FAIL and "three" in check.summary


def test_raw_pixels_warn_that_inputs_are_not_normalised():
    inputs, targets = images()
    check = check_data(batched(inputs * 60 + 120, targets), targets, CLASSES)  # 0..255 pixels, not standardised
    assert check.status == WARN and "not normalised" in check.summary


def test_an_unshuffled_sorted_loader_warns():
    inputs, targets = images()
    order = targets.argsort(stable=True)  # all zeros first, as a class-folder listing is
    check = check_data(batched(inputs[order], targets[order]), targets, CLASSES)
    assert check.status == WARN and "one class" in check.summary


def test_imbalanced_classes_warn():
    inputs, targets = images()
    targets[:100] = 0  # class 0 about 10x the others
    check = check_data(batched(inputs, targets), targets, CLASSES)
    assert check.status == WARN
    assert check.evidence["imbalance"] >= 3
