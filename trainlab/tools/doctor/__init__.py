"""`trainlab doctor`: the debugging ritual of a deep-learning course, run for any config in one command.

    checks.py        the Check result, the check names and --only, pieces the checks share
    initial_loss.py  1. the untrained model's loss against an even guess
    data_checks.py   2. labels, normalisation, class balance, a picture of a batch
    seeds.py         3. the same seed repeats a run, another seed changes it
    overfit.py       4-5. fit one example; fit one batch
    lr_finder.py     6. learning-rate range test
    health.py        7. gradient norms, dead and saturated units, update-to-weight ratios
    curves.py        8. diagnosis of a run's loss curves
    runner.py        config -> checks -> report folder (the only module that reads a config)
    report.py        doctor.json, report.html, the printed table
"""

from trainlab.tools.doctor.checks import CHECK_NAMES, Check, select_checks
from trainlab.tools.doctor.runner import DoctorResult, run_doctor

__all__ = ["CHECK_NAMES", "Check", "DoctorResult", "run_doctor", "select_checks"]
