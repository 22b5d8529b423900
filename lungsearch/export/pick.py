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


def choose(study: optuna.Study, has_model, *, trial_number: int | None, max_train_seconds: float | None, retrain_model: bool,
           ensemble: int | None) -> tuple[list[optuna.trial.FrozenTrial], list[int], str | None]:
    """(the trials ``best`` exports, best first; the numbers of those whose model is not kept; why that many, or None).

    ``ensemble`` None: one trial where a trial, a time budget or ``--retrain``
    is asked for, else :func:`default_ensemble`. A trial without a kept model
    (``has_model(trial)`` false) is refused unless ``retrain_model``.
    """
    why = None
    if ensemble is None:
        if trial_number is not None or max_train_seconds is not None or retrain_model:
            ensemble = 1
        else:
            ensemble, why = default_ensemble(study, has_model)
    if ensemble < 1:
        raise ExportError(f"--ensemble must be at least 1, got {ensemble}")
    if ensemble > 1 and (trial_number is not None or max_train_seconds is not None):
        raise ExportError("--ensemble takes the K best trials; it cannot be combined with --trial or --max-train-seconds")
    trials = pick_trials(study, ensemble) if ensemble > 1 else [pick_trial(study, trial_number, max_train_seconds)]
    missing = [t.number for t in trials if not has_model(t)]
    if missing and not retrain_model:
        from search.keep import why_no_model

        if len(trials) == 1:
            raise ExportError(f"{why_no_model(study, trials[0])}; add --retrain to train it again from its stored params")
        first = next(t for t in trials if t.number == missing[0])
        raise ExportError(
            f"the models of trial{'s' if len(missing) > 1 else ''} {', '.join(map(str, missing))} of the {len(trials)} best are not "
            f"on disk ({why_no_model(study, first)}; `run --keep-top K` keeps the K best); add --retrain to train them again"
        )
    return trials, missing, why
