"""Every file of a report: trials.csv, refine.csv, the Pareto fronts (CSV, PNG, HTML), Optuna's plots and index.html.

:func:`write_report` prints the summary as it goes and returns the paths
written; a part the study cannot support is skipped with the reason printed.
"""

from __future__ import annotations

import os

import optuna
import pandas as pd

from lungsearch.report.frames import CHANCE_AUC, front_frame, majority_rate, plotted, trials_frame
from lungsearch.report.fronts import front_html, front_png
from lungsearch.report.index import write_index
from lungsearch.report.optuna_plots import write_optuna_plots
from lungsearch.report.summary import models_note, summary
from search.overview import metric_name

COST_AXES = {"train_seconds": "training time (s)", "param_count": "parameters"}


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
            if plotted(df, y, cost).empty:
                print(f"  (no completed trial records {y} and {cost}: {stem}.png/.html skipped)", file=stream)
                fronts.append({"stem": stem, "title": title, "csv": csv_path})
                continue
            if front.empty:
                print(f"  (every completed trial is degenerate, no better than a constant answer: the {stem} front is empty)", file=stream)
            png = front_png(df, front, y, cost, os.path.join(out_dir, f"{stem}.png"), title, y_label, x_label, baseline)
            html = front_html(df, front, y, cost, os.path.join(out_dir, f"{stem}.html"), title, y_label, x_label, baseline)
            paths += [png, html]
            fronts.append({"stem": stem, "title": title, "csv": csv_path, "png": png, "html": html})
    figures, more_notes = write_optuna_plots(study, out_dir, stream)
    notes += more_notes
    paths += [path for _, path, _ in figures]
    paths.append(write_index(study, out_dir, text, notes, df, fronts, figures, written=list(paths)))
    return paths


def _refine_table(study: optuna.Study, df, out_dir: str, stream) -> str | None:
    """refine.csv: each finalist's validation figure beside its out-of-fold figures (`lungsearch refine`), and a line about it."""
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


def _baseline(y: str, metric: str, majority) -> tuple[float, str] | None:
    """The line a useful model must clear on this axis: the majority-class rate for accuracy, 0.5 for AUC."""
    if (y == "val_accuracy" or (y == "value" and metric == "val_accuracy")) and majority:
        return majority[0], f"majority-class rate {majority[0]:.3f} (always {majority[1]})"
    if y == "value" and metric == "val_auc":
        return CHANCE_AUC, "chance (AUC 0.5)"
    return None
