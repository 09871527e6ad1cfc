import math
import random

import numpy as np
import pytest
import torch

from trainlab.errors import UsageError
from trainlab.tools.doctor.checks import (
    CHECK_NAMES, FAIL, PASS, WARN, log_scale, loss_curve_figure, new_figure, non_finite_advice, seeded, select_checks, worst,
)  # fmt: skip
from tests.tools.doctor_helpers import drawn


def test_no_selection_runs_every_check_in_ritual_order():
    assert select_checks(None) == select_checks("") == list(CHECK_NAMES)


def test_a_selection_keeps_the_ritual_order_and_overfit_names_both_overfit_checks():
    assert select_checks("lr, overfit") == ["overfit_example", "overfit_batch", "lr"]
    assert select_checks("curves,initial_loss,curves") == ["initial_loss", "curves"]


def test_an_unknown_check_is_a_usage_error_with_a_suggestion_and_the_valid_names():
    with pytest.raises(UsageError, match="unknown check 'overfitt'.*did you mean 'overfit'.*initial_loss, data, seeds"):
        select_checks("lr,overfitt")
    assert UsageError.exit_code == 2


def test_the_worst_status_wins():
    assert worst([PASS, WARN, PASS]) == WARN and worst([WARN, FAIL]) == FAIL and worst([]) == PASS


def test_seeded_blocks_repeat_and_leave_the_outer_random_streams_alone():
    torch.manual_seed(1)
    random.seed(1)
    np.random.seed(1)
    with seeded(5):
        first = (torch.rand(2), random.random(), np.random.rand())
    outer = (torch.rand(2), random.random(), np.random.rand())
    with seeded(5):
        assert torch.equal(torch.rand(2), first[0]) and random.random() == first[1] and np.random.rand() == first[2]
    torch.manual_seed(1)
    random.seed(1)
    np.random.seed(1)
    assert torch.equal(torch.rand(2), outer[0]) and random.random() == outer[1] and np.random.rand() == outer[2]


def test_a_loss_curve_that_turns_inf_and_nan_is_drawn_up_to_the_step_that_broke():
    figure = loss_curve_figure([2.3, 1.0, 0.01, math.inf, math.nan], "one batch", target=0.05)
    assert drawn(figure)
    assert "inf from step 4" in [t.get_text() for t in figure.axes[0].get_legend().get_texts()]


def test_a_loss_curve_that_is_nan_from_the_first_step_and_a_nan_target_are_drawn():
    assert drawn(loss_curve_figure([math.nan], "one batch", target=math.nan))


def test_the_log_scale_leaves_out_values_that_are_not_finite():
    figure = new_figure(4, 3)
    ax = figure.subplots()
    log_scale(ax, "x", [1e-3, math.inf, math.nan, 0.1])
    assert ax.get_xscale() == "log" and all(math.isfinite(v) for v in ax.get_xlim())
    other = figure.add_subplot(2, 1, 2)
    log_scale(other, "y", [math.inf, math.nan, 0.0])  # nothing to place: the axis stays linear
    assert other.get_yscale() == "linear" and drawn(figure)


def test_the_advice_for_a_non_finite_loss_blames_the_model_at_step_1_and_the_rate_later():
    assert "not the cause" in non_finite_advice(1, 0.1) and "overflows" in non_finite_advice(1, None)
    later = non_finite_advice(7, 0.1)
    assert "after 6 updates" in later and "optimizer.lr=0.01" in later and "clip_grad_norm" in later
