"""Made-up curves, one per diagnosis, shaped like metrics.csv rows (strings, as read back from the file)."""

import math

import pytest

from trainlab.tools.doctor.checks import FAIL, PASS, WARN
from trainlab.tools.doctor.curves import check_curves, diagnose

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
