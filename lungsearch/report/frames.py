"""The trials of a study as a table, and the Pareto fronts read from it.

One row per trial with its state, value, validation metrics, time, size and
params, every user attribute read with a default so that old studies still
fit; a trial no better than a constant answer is marked degenerate and is
never on a front. The rest of :mod:`lungsearch.report` prints and draws from these frames.
"""

from __future__ import annotations

import optuna
import pandas as pd

from search.keep import model_file
from search.loop import trial_reason
from search.overview import metric_name
from search.pareto import pareto_mask

CHANCE_AUC = 0.5
ACCURACY_NOTE = "val_acc: validation accuracy of the most probable class (argmax), at the kept epoch; `best` tunes a threshold and reports its own"


def majority_rate(study: optuna.Study) -> tuple[float, str] | None:
    """(share of the most frequent class in validation, its name), from the data summary stored with the study."""
    counts = (((study.user_attrs.get("data") or {}).get("class_counts") or {}).get("val")) or {}
    total = sum(counts.values())
    if not total:
        return None
    name = max(counts, key=counts.get)
    return counts[name] / total, name


def degenerate_mask(df: pd.DataFrame, majority: float | None, metric: str) -> pd.Series:
    """Completed trials no better than a constant answer: validation accuracy at or below the
    majority-class rate (argmax predicts one class), or an AUC objective at or below chance."""
    out = pd.Series(False, index=df.index)
    if majority is not None:
        out |= df["val_accuracy"].notna() & (df["val_accuracy"] <= majority + 1e-9)
    if metric == "val_auc":
        out |= df["value"].notna() & (df["value"] <= CHANCE_AUC + 1e-9)
    return out & (df["state"] == "COMPLETE")


def trials_frame(study: optuna.Study) -> pd.DataFrame:
    """One row per trial: state, value, time, size, validation metrics, params.

    ``kept_model`` is true only where the model file is on disk now; ``degenerate``
    marks a trial no better than always answering the majority class (or chance AUC).
    """
    rows = []
    for t in study.trials:
        a = t.user_attrs
        row = {
            "trial": t.number,
            "state": t.state.name,
            "value": t.value,
            "val_accuracy": a.get("val_accuracy"),
            "val_auc": a.get("val_auc"),
            "val_loss": a.get("val_loss"),
            "train_seconds": a.get("train_seconds"),
            "epochs": a.get("epochs"),
            "param_count": a.get("param_count"),
            "kept_model": model_file(study, t) is not None,  # the file on disk now, not the attribute
            "warm_start": a.get("warm_start") or "",  # the space's known-good point this trial was, if any
            "reason": trial_reason(t),  # why it was pruned or failed ("" for a completed trial)
        }
        row.update({f"params_{k}": v for k, v in t.params.items()})
        rows.append(row)
    numeric = ["value", "val_accuracy", "val_auc", "val_loss", "train_seconds", "epochs", "param_count"]
    columns = ["trial", "state", *numeric, "kept_model", "warm_start", "reason"]
    df = pd.DataFrame(rows, columns=None if rows else columns)
    for col in numeric:
        df[col] = pd.to_numeric(df[col], errors="coerce")  # None -> NaN, so missing attributes are just gaps
    majority = majority_rate(study)
    df["degenerate"] = degenerate_mask(df, majority[0] if majority else None, metric_name(study))
    return df


def front_frame(df: pd.DataFrame, metric: str = "val_accuracy", cost: str = "train_seconds") -> pd.DataFrame:
    """Completed trials on the front of ``metric`` (max) vs ``cost`` (min), sorted by cost; degenerate trials are never on it."""
    done = plotted(df, metric, cost)
    if "degenerate" in done:
        done = done[~done["degenerate"]]
    if done.empty:
        return done
    mask = pareto_mask(done[metric].to_numpy(float), done[cost].to_numpy(float))
    return done[mask].sort_values(cost)


def plotted(df: pd.DataFrame, y: str, cost: str) -> pd.DataFrame:
    """The completed trials that record both ``y`` and ``cost``: the points a front's plot can draw."""
    return df[(df["state"] == "COMPLETE") & df[y].notna() & df[cost].notna()]


def short(v) -> str:
    """A param value as the summary and the hover text show it: floats to 4 significant digits."""
    return f"{v:.4g}" if isinstance(v, float) else str(v)
