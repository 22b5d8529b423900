"""Read a study back from storage: top trials, Pareto fronts, and Optuna's own plots.

Everything comes from the study's storage, and every user attribute is read
with a default, so a study from any space, or an old one that lacks some
attributes, still gets every part of the report that its trials can support.

This module prints the summary and writes the report; the pieces live beside it:

- :mod:`lungsearch.report.frames`: the trials table, degenerate trials, the Pareto fronts
- :mod:`lungsearch.report.fronts`: a front as PNG and interactive HTML, :func:`write_html`
- :mod:`lungsearch.report.optuna_plots`: Optuna's own plots and the parameter importances
- :mod:`lungsearch.report.index`: index.html, the whole report in one file

Their public names are re-exported here, so ``lungsearch.report.<name>`` works as before.
"""

from __future__ import annotations

import os

import optuna
import pandas as pd

# The first import of each module is what this one uses; the second only re-exports the rest.
from lungsearch.report.frames import ACCURACY_NOTE, CHANCE_AUC, _plotted, _short, front_frame, majority_rate, trials_frame
from lungsearch.report.frames import degenerate_mask, pareto_frame  # re-exported
from lungsearch.report.fronts import _html_front, _plot_front
from lungsearch.report.fronts import DEGENERATE_LABEL, NEEDS_PLOTLY, count_label, log_ticks, log_x, write_html  # re-exported
from lungsearch.report.index import write_index
from lungsearch.report.optuna_plots import _optuna_plots
from lungsearch.report.optuna_plots import MIN_TRIALS_FOR_IMPORTANCE, RELIABLE_IMPORTANCE_TRIALS, importance_caveat  # re-exported
from search.keep import models_missing
from search.overview import metric_name

COST_AXES = {"train_seconds": "training time (s)", "param_count": "parameters"}
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
        params = ", ".join(f"{k[7:]}={_short(r[k])}" for k in r.index if k.startswith("params_") and pd.notna(r[k]))
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



def _refine_table(study: optuna.Study, df, out_dir: str, stream) -> str | None:
    """refine.csv: each finalist's validation figure beside its out-of-fold figures (`lungsearch refine`), and a line about it."""
    import pandas as pd

    record = study.user_attrs.get("refine") or {}
    if not record:
        return None
    results = record.get("results") or {}
    values = dict(zip(df["trial"], df["value"])) if "trial" in df and "value" in df else {}
    rows = [{"trial": n, "value": values.get(n), "refined_in_full": str(n) in results,
             **{k: v for k, v in (results.get(str(n)) or {}).items() if k != "oof_auc_ci95"},
             **({"oof_auc_ci95_low": results[str(n)]["oof_auc_ci95"][0], "oof_auc_ci95_high": results[str(n)]["oof_auc_ci95"][1]}
                if str(n) in results else {})}
            for n in record.get("finalists") or []]
    path = os.path.join(out_dir, "refine.csv")
    pd.DataFrame(rows).to_csv(path, index=False)
    if results:
        best = max(results, key=lambda n: results[n]["oof_auc"])
        print(f"refined: {len(results)} of {len(rows)} finalists on {record.get('folds')} folds of {record.get('images')} training "
              f"images; best out of fold: trial #{best}, OOF AUC {results[best]['oof_auc']:.4f} (refine.csv)", file=stream)
    else:
        print(f"refine started: 0 of {len(rows)} finalists refitted on all folds yet; `lungsearch refine` carries on", file=stream)
    return path


def write_report(study: optuna.Study, out_dir: str, stream=None, storage: str | None = None) -> list[str]:
    """Print the summary; write fronts (CSV, PNG, HTML), Optuna's plots and index.html; return the paths written.

    ``storage`` (the URL the study was read from) goes into the commands the report suggests.
    """
    os.makedirs(out_dir, exist_ok=True)
    df = trials_frame(study)
    metric = metric_name(study)
    notes = []
    text = summary(study, df, metric)
    print(text, file=stream)
    note = models_note(study, df, storage)
    if note:
        print(note, file=stream)
        notes.append(note)
    paths = []
    table = os.path.join(out_dir, "trials.csv")
    df.to_csv(table, index=False)
    paths.append(table)
    refined = _refine_table(study, df, out_dir, stream)
    if refined:
        paths.append(refined)
    majority = majority_rate(study)
    fronts = []
    for y, y_label in (("val_accuracy", "validation accuracy (argmax)"), ("value", f"objective ({metric})")):
        baseline = _baseline(y, metric, majority)
        for cost, x_label in COST_AXES.items():
            front = front_frame(df, y, cost)
            stem = "pareto" if (y, cost) == ("val_accuracy", "train_seconds") else f"pareto_{'objective' if y == 'value' else y}_vs_{cost}"
            csv_path = os.path.join(out_dir, f"{stem}.csv")
            front.to_csv(csv_path, index=False)
            paths.append(csv_path)
            title = f"{study.study_name}: {y_label} vs {x_label}"
            if _plotted(df, y, cost).empty:
                print(f"  (no completed trial records {y} and {cost}: {stem}.png/.html skipped)", file=stream)
                fronts.append({"stem": stem, "title": title, "csv": csv_path})
                continue
            if front.empty:
                print(f"  (every completed trial is degenerate, no better than a constant answer: the {stem} front is empty)", file=stream)
            png = _plot_front(df, front, y, cost, os.path.join(out_dir, f"{stem}.png"), title, y_label, x_label, baseline)
            html = _html_front(df, front, y, cost, os.path.join(out_dir, f"{stem}.html"), title, y_label, x_label, baseline)
            paths += [png, html]
            fronts.append({"stem": stem, "title": title, "csv": csv_path, "png": png, "html": html})
    figures, more_notes = _optuna_plots(study, out_dir, stream)
    notes += more_notes
    paths += [path for _, path, _ in figures]
    paths.append(write_index(study, out_dir, text, notes, df, fronts, figures, written=list(paths)))
    return paths


def _baseline(y: str, metric: str, majority) -> tuple[float, str] | None:
    """The line a useful model must clear on this axis: the majority-class rate for accuracy, 0.5 for AUC."""
    if (y == "val_accuracy" or (y == "value" and metric == "val_accuracy")) and majority:
        return majority[0], f"majority-class rate {majority[0]:.3f} (always {majority[1]})"
    if y == "value" and metric == "val_auc":
        return CHANCE_AUC, "chance (AUC 0.5)"
    return None
