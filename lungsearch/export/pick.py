"""Which completed trials an export takes: the best, a given one, the most accurate within a time budget, or the K best.

Read from the study's storage alone; a choice that cannot be made raises
:class:`~lungsearch.export.base.ExportError` with what to do instead.
"""

from __future__ import annotations

import optuna
from optuna.trial import TrialState

from lungsearch.export.base import ExportError


def pick_trial(study: optuna.Study, trial_number: int | None = None, max_train_seconds: float | None = None) -> optuna.trial.FrozenTrial:
    """The best trial; or trial ``trial_number``; or the most accurate one trained within ``max_train_seconds``."""
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not done:
        raise ExportError(f"study {study.study_name!r} has no completed trial yet; run more trials first")
    if trial_number is not None and max_train_seconds is not None:
        raise ExportError("give --trial or --max-train-seconds, not both")
    if trial_number is not None:
        for t in done:
            if t.number == trial_number:
                return t
        raise ExportError(f"trial {trial_number} is not a completed trial of {study.study_name!r}; see `lungsearch report`")
    if max_train_seconds is not None:
        fast = [t for t in done if t.user_attrs.get("train_seconds") is not None and t.user_attrs["train_seconds"] <= max_train_seconds
                and t.user_attrs.get("val_accuracy") is not None]
        if not fast:
            quickest = min((t.user_attrs.get("train_seconds", float("inf")) for t in done), default=float("inf"))
            raise ExportError(f"no completed trial trained within {max_train_seconds:g}s (the quickest took {quickest:.1f}s)")
        # The most accurate trial within the budget is on the accuracy/time front; ties: the quicker.
        return max(fast, key=lambda t: (t.user_attrs["val_accuracy"], -t.user_attrs["train_seconds"]))
    return study.best_trial


def pick_trials(study: optuna.Study, k: int) -> list[optuna.trial.FrozenTrial]:
    """The ``k`` best completed trials by the objective, best first (ties: the earlier trial)."""
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not done:
        raise ExportError(f"study {study.study_name!r} has no completed trial yet; run more trials first")
    if k > len(done):
        raise ExportError(f"--ensemble {k} needs {k} completed trials; study {study.study_name!r} has {len(done)}")
    return sorted(done, key=lambda t: (-t.value, t.number))[:k]
