"""Which completed trials an export takes: the best, a given one, the most accurate within a time budget, or the K best.

Read from the study's storage alone; a choice that cannot be made raises
:class:`~lungsearch.export.base.ExportError` with what to do instead.
"""

from __future__ import annotations

import optuna
from optuna.trial import TrialState

from lungsearch.export.base import ExportError
from search.keep import DEFAULT_ENSEMBLE  # the run keeps as many models as `best` averages by default


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


def default_ensemble(study: optuna.Study, has_model) -> tuple[int, str]:
    """How many trials ``best`` averages when ``--ensemble`` is not given, and why: :data:`DEFAULT_ENSEMBLE` where the
    study has that many completed trials and each of the best ones has its model kept (``has_model(trial)``), else the
    best trial alone (so that a small study, or one kept with ``--keep-top 1``, still exports without ``--retrain``)."""
    k = DEFAULT_ENSEMBLE
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if len(done) < k:
        return 1, f"the best trial alone: the default average of the {k} best needs {k} completed trials, the study has {len(done)}"
    missing = [t.number for t in pick_trials(study, k) if not has_model(t)]
    if missing:
        return 1, (f"the best trial alone: the default average of the {k} best needs their kept models, and trial"
                   f"{'s' if len(missing) > 1 else ''} #{', #'.join(map(str, missing))} {'have' if len(missing) > 1 else 'has'} none "
                   f"(`run --keep-top {k}` keeps them; `--ensemble {k} --retrain` trains them again)")
    return k, f"the {k} best trials averaged (the default; --ensemble 1 exports the best trial alone)"
