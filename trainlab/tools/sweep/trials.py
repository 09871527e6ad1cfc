"""Reading a sweep's trials: their state as trials.csv names it, and their values."""

from __future__ import annotations

from typing import Any

from optuna.trial import FrozenTrial, TrialState


def interrupted(trial: FrozenTrial) -> bool:
    """Stopped by Ctrl-C or a killed worker (a failure records its error): run again on --resume."""
    return trial.state == TrialState.FAIL and "error" not in trial.user_attrs


def counted(trial: FrozenTrial) -> bool:
    """Whether a trial spends the budget: all but queued and interrupted ones."""
    return trial.state != TrialState.WAITING and not interrupted(trial)


def planned_params(trial: FrozenTrial) -> dict[str, Any]:
    """A trial's values; those of a queued trial (or one stopped before it took them) are still Optuna's fixed_params."""
    return trial.params or dict(trial.system_attrs.get("fixed_params", {}))


def state_name(trial: FrozenTrial) -> str:
    if trial.state == TrialState.FAIL:
        return "interrupted" if interrupted(trial) else "failed"
    return {TrialState.COMPLETE: "complete", TrialState.PRUNED: "pruned", TrialState.RUNNING: "running",
            TrialState.WAITING: "queued"}[trial.state]  # fmt: skip
