"""The report's text: the top trials with their params, and a sentence where the study's models are not on disk.

Printed by `lungsearch report` and shown at the top of index.html.
"""

from __future__ import annotations

import optuna
import pandas as pd

from lungsearch.report.frames import ACCURACY_NOTE, majority_rate, short
from search.keep import models_missing

TOP = 10


def summary(study: optuna.Study, df: pd.DataFrame, metric: str, top: int = TOP) -> str:
    """Like keras-tuner's results_summary: the top trials, best first, with their params."""
    states = df["state"].value_counts().to_dict() if len(df) else {}
    lines = [f"study {study.study_name!r}: {len(df)} trials ({', '.join(f'{v} {k.lower()}' for k, v in states.items()) or 'none'}), "
             f"objective {metric} (maximised)"]
    majority = majority_rate(study)
    if majority:
        lines.append(f"majority-class rate on validation: {majority[0]:.4f} (always {majority[1]}); "
                     "a trial at or below it is marked degenerate and left off the Pareto fronts")
    done = df[df["state"] == "COMPLETE"].sort_values("value", ascending=False).head(top)
    if done.empty:
        lines.append("no completed trial yet")
        return "\n".join(lines)
    lines.append(f"top {len(done)} trials:")
    for _, r in done.iterrows():
        figures = [f"{metric}={r['value']:.4f}"]
        for col, fmt in (("val_accuracy", "val_acc={:.4f}"), ("train_seconds", "{:.1f}s"), ("epochs", "{:.0f} ep"), ("param_count", "{:,.0f} params")):
            if pd.notna(r.get(col)) and not (col == "val_accuracy" and metric == "val_accuracy"):
                figures.append(fmt.format(r[col]))
        if r.get("kept_model"):
            figures.append("model kept")
        if r.get("degenerate"):
            figures.append("DEGENERATE (no better than always the majority class)")
        if r.get("warm_start"):
            figures.append(f"warm start: {r['warm_start']}")
        params = ", ".join(f"{k[7:]}={short(r[k])}" for k in r.index if k.startswith("params_") and pd.notna(r[k]))
        lines.append(f"  #{int(r['trial']):<4} " + "  ".join(figures))
        lines.append(f"        {params}")
    lines.append(f"({ACCURACY_NOTE})")
    return "\n".join(lines)


def models_note(study: optuna.Study, df: pd.DataFrame, storage: str | None = None) -> str | None:
    """A plain sentence where the study's models are not on disk, with the command that rebuilds one."""
    if not len(df) or df["kept_model"].any():
        return None
    where = f" --storage {storage}" if storage else ""
    rebuild = f"`lungsearch best{where} --study {study.study_name} --export model.keras --retrain`"
    folder = study.user_attrs.get("artifacts") or "no folder recorded"
    if models_missing(study):
        return (f"no trained model of this study is on disk: this database came without its models (their folder {folder} "
                f"is not here; studies.db.example ships none). {rebuild} trains one again from its stored params (it needs the data).")
    if (df["state"] == "COMPLETE").any():
        return f"no trained model of this study is kept in {folder}. {rebuild} trains one again from its stored params."
    return None
