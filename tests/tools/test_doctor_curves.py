"""Made-up curves, one per diagnosis, shaped like metrics.csv rows (strings, as read back from the file)."""

import math

import pytest

from trainlab.tools.doctor.checks import FAIL, PASS, WARN
from trainlab.tools.doctor.curves import check_curves, diagnose
from tests.tools.doctor_helpers import drawn

CHANCE = math.log(10)


def history(train, val):
    return [{"epoch": str(i), "train_loss": str(t), "val_loss": str(v)} for i, (t, v) in enumerate(zip(train, val, strict=True), 1)]


CURVES = {
    "healthy": history([1.8, 1.2, 0.9, 0.7, 0.55, 0.45, 0.38], [1.6, 1.15, 0.9, 0.75, 0.65, 0.6, 0.57]),
    "overfitting": history([1.5, 1.0, 0.7, 0.45, 0.3, 0.18, 0.1, 0.05], [1.3, 1.0, 0.85, 0.8, 0.86, 0.95, 1.1, 1.3]),
    "underfitting": history([2.25, 2.15, 2.05, 1.95, 1.86, 1.77, 1.7], [2.24, 2.14, 2.04, 1.95, 1.86, 1.78, 1.71]),
    "divergence": history([1.5, 1.0, 0.8, 1.6, 4.0, 9.0], [1.4, 1.0, 0.85, 1.7, 4.2, 9.5]),
    "plateau": history([1.6, 1.1, 0.9, 0.9, 0.895, 0.9, 0.897, 0.6, 0.5], [1.5, 1.1, 0.95, 0.95, 0.95, 0.95, 0.95, 0.7, 0.62]),
    "noisy": history([1.6, 1.2, 1.3, 0.9, 1.05, 0.8, 0.95, 0.7], [1.5, 1.2, 1.25, 0.95, 1.0, 0.85, 0.9, 0.8]),
}
EPOCHS = {"overfitting": [5, 6, 7, 8], "divergence": [4, 5, 6], "plateau": [4, 5, 6, 7], "noisy": [3, 5, 7]}


@pytest.mark.parametrize("name", CURVES)
def test_each_made_up_curve_gets_its_diagnosis_and_no_other(name):
    findings = diagnose(CURVES[name], CHANCE)
    assert [f.diagnosis for f in findings] == ([] if name == "healthy" else [name])
    if name in EPOCHS:
        assert findings[0].epochs == EPOCHS[name]


def test_the_healthy_curve_passes_and_divergence_fails():
    assert check_curves(CURVES["healthy"], CHANCE).status == PASS
    assert check_curves(CURVES["overfitting"], CHANCE).status == WARN
    assert check_curves(CURVES["divergence"], CHANCE).status == FAIL


def test_a_nan_loss_is_divergence_from_its_epoch():
    diverged = history([2.0, 1.5, 30.0, "nan", "nan"], [1.9, 1.6, 40.0, "nan", "nan"])
    [finding] = diagnose(diverged, CHANCE, lr=10.0)
    assert finding.diagnosis == "divergence" and finding.epochs == [4, 5]
    assert "optimizer.lr=1" in finding.advice  # a tenth of the run's rate


def test_a_loss_that_never_falls_below_an_even_guess_diverges():
    assert diagnose(history([5.0, 6.0, 5.5, 6.2], [5.0, 6.1, 5.6, 6.3]), CHANCE)[0].diagnosis == "divergence"


def test_a_short_run_is_not_called_underfitting():
    assert diagnose(CURVES["underfitting"], CHANCE, short_run=True) == []


def test_without_the_chance_loss_the_first_epoch_stands_in():
    assert [f.diagnosis for f in diagnose(CURVES["underfitting"])] == ["underfitting"]
    assert diagnose(CURVES["healthy"]) == []


def test_noisy_advice_names_a_bigger_batch_and_a_lower_rate():
    [finding] = diagnose(CURVES["noisy"], CHANCE, lr=0.03, batch_size=64)
    assert "data.batch_size=128" in finding.advice and "optimizer.lr=0.01" in finding.advice


def test_a_failed_run_fails_naming_its_error():
    check = check_curves(CURVES["healthy"][:3], CHANCE, failure="the loss became nan at step 40 (epoch 4)")
    assert check.status == FAIL and "nan at step 40" in check.summary + str(check.evidence["findings"])


def test_the_figure_shades_the_epochs_of_each_finding():
    check = check_curves(CURVES["overfitting"], CHANCE)
    loss_ax = check.figures["curves"].axes[0]
    assert "overfitting" in [t.get_text() for t in loss_ax.get_legend().get_texts()]


def test_one_epoch_is_too_few_to_read():
    assert check_curves(CURVES["healthy"][:1], CHANCE).status == WARN


def test_one_epoch_whose_loss_is_nan_is_divergence_not_too_few_epochs():
    check = check_curves(history(["nan"], ["nan"]), CHANCE, short_run=True)
    assert check.status == FAIL and check.evidence["findings"][0]["diagnosis"] == "divergence"
    assert drawn(check.figures["curves"])


def test_a_loss_that_blew_up_and_came_back_still_diverged():
    blown = history([6.8e11, 5.8, 3.2, 2.8, 2.65], [10.4, 3.6, 3.1, 2.6, 2.7])  # Adam at lr=10: back near a guess
    [finding] = diagnose(blown, CHANCE, lr=10.0)
    assert finding.diagnosis == "divergence" and finding.epochs == [1]
    assert "blew up to 6.8e+11 in epoch 1" in finding.detail and "optimizer.lr=1" in finding.advice
    check = check_curves(blown, CHANCE)
    assert check.figures["curves"].axes[0].get_yscale() == "log"  # the blow-up would squash the rest flat
    assert drawn(check.figures["curves"])


def test_the_first_non_finite_step_of_a_short_run_is_named_with_its_rate():
    diverged = history([2.0, 1.5, "inf"], [1.9, 1.4, "nan"])
    step = {"step": 61, "epoch": 3, "loss": math.inf, "lr": 0.3}
    check = check_curves(diverged, CHANCE, short_run=True, lr=0.3, non_finite=step)
    assert check.status == FAIL and check.evidence["non_finite"] == step
    assert "the first non-finite loss: inf at step 61 (epoch 3), lr 0.3" in check.summary
    assert "after 60 updates" in check.advice and "optimizer.lr=0.03" in check.advice
    figure = check.figures["curves"]
    assert "train loss inf from epoch 3" in [t.get_text() for t in figure.axes[0].get_legend().get_texts()]
    assert drawn(figure)


def test_a_short_run_whose_first_epoch_rose_above_its_first_step_diverged():
    rose = history([9.05, 2.37, 2.33, 2.33, 2.32], [2.6, 2.33, 2.31, 2.31, 2.3])  # Adam at 0.3: dead at an even guess
    assert diagnose(rose, CHANCE, short_run=True) == []  # the epochs alone do not show it
    [finding] = diagnose(rose, CHANCE, short_run=True, start=2.33)
    assert finding.diagnosis == "divergence" and finding.epochs == [1]
    assert "blew up to 9.05 in epoch 1, from 2.33 at the first step" in finding.detail
