import math

import pytest
import torch
from torch import nn

from trainlab.engine.losses import OneHotLoss
from trainlab.tools.doctor.checks import FAIL, PASS
from trainlab.tools.doctor.initial_loss import check_initial_loss
from tests.tools.doctor_helpers import CLASSES, FP32_CPU, batched, blobs, inf_mlp, mlp


def test_an_untrained_model_starts_near_ln_c():
    check = check_initial_loss(mlp(), nn.CrossEntropyLoss(), batched(*blobs()), CLASSES, FP32_CPU)
    assert check.status == PASS, check.summary
    assert check.evidence["uniform_guess"] == pytest.approx(math.log(CLASSES))
    assert check.evidence["loss"] == pytest.approx(math.log(CLASSES), rel=0.1)


def test_softmax_before_cross_entropy_fails_although_the_loss_looks_right():
    model = nn.Sequential(mlp(), nn.Softmax(dim=1))  # cross-entropy takes a second softmax of these
    check = check_initial_loss(model, nn.CrossEntropyLoss(), batched(*blobs()), CLASSES, FP32_CPU)
    assert check.status == FAIL
    assert check.evidence["outputs_are_probabilities"]
    assert check.evidence["loss"] == pytest.approx(math.log(CLASSES), rel=0.05)  # why a plain loss check misses it
    assert "softmax" in check.advice


def test_a_hot_init_scale_fails():
    model = mlp()
    with torch.no_grad():
        model[-1].weight.mul_(100)  # logits of order 100 before any training
    check = check_initial_loss(model, nn.CrossEntropyLoss(), batched(*blobs()), CLASSES, FP32_CPU)
    assert check.status == FAIL
    assert check.evidence["off_by"] > 2
    assert "init" in check.advice


def test_a_label_outside_the_classes_fails_naming_the_range():
    inputs, targets = blobs()
    targets[5] = CLASSES
    check = check_initial_loss(mlp(), nn.CrossEntropyLoss(), batched(inputs, targets), CLASSES, FP32_CPU)
    assert check.status == FAIL
    assert check.evidence["label_max"] == CLASSES
    assert f"0..{CLASSES - 1}" in check.advice


def test_a_model_with_too_few_outputs_fails():
    check = check_initial_loss(mlp(classes=CLASSES - 1), nn.CrossEntropyLoss(), batched(*blobs()), CLASSES, FP32_CPU)
    assert check.status == FAIL
    assert "outputs" in check.summary


def test_imbalanced_classes_may_start_at_the_prior_entropy():
    inputs, _ = blobs(n=250)
    targets = (torch.arange(len(inputs)) % 10 == 0).long()  # 90 % class 0, 10 % class 1
    prior = torch.tensor([0.9, 0.1])
    model = mlp(classes=2)
    with torch.no_grad():
        model[-1].weight.zero_()
        model[-1].bias.copy_(prior.log())  # the last bias at the log prior: the best constant guess
    check = check_initial_loss(model, nn.CrossEntropyLoss(), batched(inputs, targets), 2, FP32_CPU)
    entropy = -(prior * prior.log()).sum().item()
    assert check.status == PASS
    assert check.evidence["prior_guess"] == pytest.approx(entropy, rel=1e-4)
    assert check.evidence["loss"] == pytest.approx(entropy, rel=1e-4)
    assert entropy < 0.5 * check.evidence["uniform_guess"]  # well below ln 2, and still a pass


def test_the_guesses_come_from_the_loss_itself_so_bce_starts_near_ln_2():
    check = check_initial_loss(mlp(), OneHotLoss("bce", "sigmoid"), batched(*blobs()), CLASSES, FP32_CPU)
    assert check.status == PASS
    assert check.evidence["uniform_guess"] == pytest.approx(math.log(2))


def test_a_model_that_outputs_inf_fails_counting_the_outputs_that_are_not_finite():
    check = check_initial_loss(inf_mlp(), nn.CrossEntropyLoss(), batched(*blobs()), CLASSES, FP32_CPU)
    assert check.status == FAIL
    assert check.evidence["non_finite_outputs"] == check.evidence["outputs"] == 256 * CLASSES
    assert "1,024 of 1,024 outputs are NaN or infinite" in check.summary and "overflow" in check.advice
