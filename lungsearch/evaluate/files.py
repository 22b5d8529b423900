"""The files of an evaluation: evaluation.json, evaluation.md and its PNGs, and the one-line summary.

The Markdown says which interval each metric has (bootstrap, or Wilson marked
W), and that its validation column is decided the same way as test; the PNGs
are drawn by :mod:`lungsearch.evaluate.plots`.
"""

from __future__ import annotations

import json
import os

from lungsearch.evaluate.plots import write_plots

SUMMARY_KEYS = ("accuracy", "sensitivity", "specificity", "roc_auc", "balanced_accuracy")


def summary_line(test: dict) -> str:
    parts = []
    for key in SUMMARY_KEYS:
        m = test["metrics"].get(key)
        if m and m["value"] is not None:
            lo, hi = m["ci95"]
            ci = f" [{lo:.3f}, {hi:.3f}]" if lo is not None else ""
            ci += " (Wilson)" if m.get("ci_method") == "wilson" else ""
            parts.append(f"{key} {m['value']:.3f}{ci}")
    return ", ".join(parts)


def write_files(evaluation: dict, out_dir: str, *, history: dict | None = None) -> list[str]:
    """evaluation.json, evaluation.md and the PNGs (confusion matrix, ROC, training curves)."""
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    json_path = os.path.join(out_dir, "evaluation.json")
    with open(json_path, "w") as fh:
        json.dump({k: v for k, v in evaluation.items() if not k.startswith("_")}, fh, indent=2)
    paths.append(json_path)
    md_path = os.path.join(out_dir, "evaluation.md")
    with open(md_path, "w") as fh:
        fh.write(markdown(evaluation))
    paths.append(md_path)
    paths += write_plots(evaluation, out_dir, history or {})
    return paths


def markdown(ev: dict) -> str:
    test = ev["test"]
    names = ev["class_names"]
    lines = [f"# Evaluation of trial {ev.get('trial')} of study {ev.get('study')!r}", ""]
    d = ev.get("decision", {})
    if d.get("threshold") is not None:
        lines.append(f"Decision: {names[d['positive']]} when its probability >= {d['threshold']:.4f} ({d['rule']}; "
                     f"validation sensitivity {_fmt(d.get('val_sensitivity'))}, specificity {_fmt(d.get('val_specificity'))}).")
    else:
        lines.append("Decision: the most probable class.")
    if ev.get("data_folder"):
        lines += ["", f"Data: {ev['data_folder']} (an external folder, scored with the decision stored with the model)."]
    at = "at this threshold" if d.get("threshold") is not None else "most probable class"
    wilson = [k for k, m in test["metrics"].items() if m.get("ci_method") == "wilson"]
    lines += ["", f"Test split: {test['n']} images ({', '.join(f'{k} {v}' for k, v in test['counts'].items())}), "
              f"read once, never used for selection. 95% CIs: {test['bootstrap']['resamples']} bootstrap resamples"
              + (f"; Wilson score intervals (marked W) for {', '.join(wilson)}, a proportion of 0/n or n/n, where every "
                 "bootstrap resample gives the same value." if wilson else "."),
              "", f"The validation column is the same model on the validation split, decided the same way ({at}); "
              "`lungsearch report`'s val_acc is the search's, at argmax (most probable class).", "",
              f"| metric | test | 95% CI | validation ({at}) |", "|---|---|---|---|"]
    val = ev.get("validation", {}).get("metrics", {})
    for key, m in test["metrics"].items():
        lo, hi = m["ci95"]
        v = val.get(key, {}).get("value")
        mark = " (W)" if m.get("ci_method") == "wilson" else ""
        lines.append(f"| {key} | {_fmt(m['value'])} | {_fmt(lo)} - {_fmt(hi)}{mark} | {_fmt(v)} |")
    lines += ["", "Confusion matrix (rows true, columns predicted):", "", "| | " + " | ".join(names) + " |",
              "|---" * (len(names) + 1) + "|"]
    for name, row in zip(names, test["confusion_matrix"]):
        lines.append(f"| {name} | " + " | ".join(str(v) for v in row) + " |")
    return "\n".join(lines) + "\n"


def _fmt(v) -> str:
    return "n/a" if v is None else f"{v:.4f}"
