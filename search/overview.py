"""One line of facts per study in a storage: what ``lungsearch studies`` prints."""

from __future__ import annotations

import math
from collections import Counter

import optuna
from optuna.trial import TrialState

STATES = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL, TrialState.RUNNING, TrialState.WAITING)


def metric_name(study: optuna.Study) -> str:
    """The objective's name: the run's config, else the name stored with set_metric_names, else "value"."""
    configured = (study.user_attrs.get("config") or {}).get("metric")
    if configured:
        return configured
    try:
        names = study.metric_names
    except Exception:  # an Optuna without metric names
        names = None
    return names[0] if names else "value"


def overview(storage: optuna.storages.BaseStorage) -> list[dict]:
    """Name, space, trials by state, best value and total training seconds of every study."""
    rows = []
    for summary in optuna.get_all_study_summaries(storage, include_best_trial=False):
        study = optuna.load_study(study_name=summary.study_name, storage=storage)
        trials = study.get_trials(deepcopy=False)
        states = Counter(t.state for t in trials)
        done = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None and math.isfinite(t.value)]
        best = max(done, key=lambda t: t.value) if done else None
        space = summary.user_attrs.get("space", {})
        rows.append({
            "study": summary.study_name,
            "space": space.get("name", "?") if isinstance(space, dict) else str(space),
            "metric": metric_name(study),
            "trials": {s.name.lower(): states.get(s, 0) for s in STATES},
            "best_value": best.value if best else None,
            "best_trial": best.number if best else None,
            "train_seconds": sum(float(t.user_attrs.get("train_seconds", 0.0)) for t in trials),
            "started": summary.datetime_start.isoformat(timespec="seconds") if summary.datetime_start else None,
            "refined": refined(summary.user_attrs),
        })
    return rows


def refined(attrs: dict) -> dict | None:
    """What `lungsearch refine` stored (study user attr ``refine``): finalists refined in full, of how many, and the best out of fold."""
    record = attrs.get("refine") or {}
    results = record.get("results") or {}
    if not record:
        return None
    best = max(results, key=lambda n: results[n]["oof_auc"]) if results else None
    return {"folds": record.get("folds"), "finalists": len(record.get("finalists") or []), "done": len(results),
            "best_trial": int(best) if best is not None else None, "best_oof_auc": results[best]["oof_auc"] if best else None}
