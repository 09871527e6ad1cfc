import random

import numpy as np
import pytest
import torch

from trainlab.errors import UsageError
from trainlab.tools.doctor.checks import CHECK_NAMES, FAIL, PASS, WARN, seeded, select_checks, worst


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
