"""Read a study back from storage: top trials, Pareto fronts, and Optuna's own plots.

Everything comes from the study's storage, and every user attribute is read
with a default, so a study from any space, or an old one that lacks some
attributes, still gets every part of the report that its trials can support.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import optuna
import pandas as pd
from optuna.trial import TrialState

from search.keep import model_file, models_missing
from search.overview import metric_name
from search.pareto import pareto_mask

COST_AXES = {"train_seconds": "training time (s)", "param_count": "parameters"}
MIN_TRIALS_FOR_IMPORTANCE = 4  # fANOVA on fewer completed trials says nothing
RELIABLE_IMPORTANCE_TRIALS = 20  # below this, importances are printed and drawn with a caveat
CHANCE_AUC = 0.5
TOP = 10
DEGENERATE_LABEL = "degenerate (val_acc <= majority rate, or AUC <= 0.5): off the front"
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
        }
        row.update({f"params_{k}": v for k, v in t.params.items()})
        rows.append(row)
    columns = ["trial", "state", "value", "val_accuracy", "val_auc", "val_loss", "train_seconds", "epochs", "param_count", "kept_model",
               "warm_start"]
    df = pd.DataFrame(rows, columns=None if rows else columns)
    for col in columns[2:-2]:
        df[col] = pd.to_numeric(df[col], errors="coerce")  # None -> NaN, so missing attributes are just gaps
    majority = majority_rate(study)
    df["degenerate"] = degenerate_mask(df, majority[0] if majority else None, metric_name(study))
    return df


def front_frame(df: pd.DataFrame, metric: str = "val_accuracy", cost: str = "train_seconds") -> pd.DataFrame:
    """Completed trials on the front of ``metric`` (max) vs ``cost`` (min), sorted by cost; degenerate trials are never on it."""
    done = _plotted(df, metric, cost)
    if "degenerate" in done:
        done = done[~done["degenerate"]]
    if done.empty:
        return done
    mask = pareto_mask(done[metric].to_numpy(float), done[cost].to_numpy(float))
    return done[mask].sort_values(cost)


def pareto_frame(df: pd.DataFrame) -> pd.DataFrame:
    """The front of validation accuracy vs training time (kept for callers of the first report)."""
    return front_frame(df, "val_accuracy", "train_seconds")


def _plotted(df: pd.DataFrame, y: str, cost: str) -> pd.DataFrame:
    return df[(df["state"] == "COMPLETE") & df[y].notna() & df[cost].notna()]


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


def _short(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


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


def log_x(df: pd.DataFrame, cost: str) -> bool:
    """Parameter counts spanning more than 20x are drawn on a log axis (the same in the PNG and the HTML)."""
    values = df[cost].dropna()
    return cost == "param_count" and len(values) > 0 and values.max() / max(values.min(), 1) > 20


def count_label(value: float, _pos=None) -> str:
    """``20k``, ``1.5M``: tick labels short enough not to run into each other."""
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{suffix}"
    return f"{value:.3g}"


def log_ticks(low: float, high: float) -> list[float]:
    """1, 2 and 5 times each power of ten that falls in [low, high] (only the powers beyond 3 decades), one tick
    below and above: the same ticks in the PNG and the HTML."""
    subs = (1.0, 2.0, 5.0) if np.log10(high / max(low, 1)) < 3 else (1.0,)
    ticks = [m * 10.0**e for e in range(int(np.floor(np.log10(max(low, 1)))), int(np.ceil(np.log10(high))) + 1) for m in subs]
    inside = [t for t in ticks if low <= t <= high]
    below = [t for t in ticks if t < low][-1:]
    above = [t for t in ticks if t > high][:1]
    return below + inside + above


def _plot_front(df, front, y, cost, path, title, y_label, x_label, baseline=None) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

    fig, ax = plt.subplots(figsize=(7, 5.2), dpi=120)
    done = _plotted(df, y, cost)
    bad = done["degenerate"] if "degenerate" in done else pd.Series(False, index=done.index)
    ax.scatter(done[~bad][cost], done[~bad][y], color="0.7", label="completed trials")
    if bad.any():
        ax.scatter(done[bad][cost], done[bad][y], color="tab:orange", marker="x", s=60, zorder=3,
                   label=DEGENERATE_LABEL)
        for _, r in done[bad].iterrows():
            ax.annotate(f"#{int(r['trial'])}", (r[cost], r[y]), textcoords="offset points", xytext=(4, 4), fontsize=8, color="tab:orange")
    if baseline is not None:
        ax.axhline(baseline[0], color="tab:orange", ls="--", lw=1, label=baseline[1])
    if not front.empty:
        ax.step(front[cost], front[y], where="post", color="tab:red", alpha=0.6)
        ax.scatter(front[cost], front[y], color="tab:red", label="Pareto front", zorder=3)
    for _, r in front.iterrows():
        ax.annotate(f"#{int(r['trial'])}", (r[cost], r[y]), textcoords="offset points", xytext=(4, -10), fontsize=8)
    if log_x(done, cost):
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(FixedLocator(log_ticks(done[cost].min(), done[cost].max())))
        ax.xaxis.set_major_formatter(FuncFormatter(count_label))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlim(done[cost].min() / 1.25, done[cost].max() * 1.25)
    elif cost == "param_count":
        ax.xaxis.set_major_formatter(FuncFormatter(count_label))
    ax.set_xlabel(x_label + (" (log scale)" if log_x(done, cost) else ""))
    ax.set_ylabel(y_label)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, fontsize=8, frameon=False)  # below: never over a point
    fig.tight_layout()
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return path


def _html_front(df, front, y, cost, path, title, y_label, x_label, baseline=None) -> str:
    import plotly.graph_objects as go

    done = _plotted(df, y, cost)
    bad = done["degenerate"] if "degenerate" in done else pd.Series(False, index=done.index)
    params = [c for c in df.columns if c.startswith("params_")]

    def hover(frame):
        return [f"trial #{int(r['trial'])}<br>{y}={r[y]:.4f}<br>{cost}={r[cost]:,.1f}<br>"
                + "<br>".join(f"{c[7:]}={_short(r[c])}" for c in params if pd.notna(r[c])) for _, r in frame.iterrows()]

    fig = go.Figure()
    fig.add_trace(go.Scatter(x=done[~bad][cost], y=done[~bad][y], mode="markers", name="completed trials",
                             marker={"color": "lightgray", "size": 9}, hovertext=hover(done[~bad]), hoverinfo="text"))
    if bad.any():
        fig.add_trace(go.Scatter(x=done[bad][cost], y=done[bad][y], mode="markers", name=DEGENERATE_LABEL,
                                 marker={"color": "darkorange", "size": 11, "symbol": "x"}, hovertext=hover(done[bad]), hoverinfo="text"))
    fig.add_trace(go.Scatter(x=front[cost], y=front[y], mode="lines+markers", line_shape="hv", name="Pareto front",
                             marker={"color": "crimson", "size": 11}, hovertext=hover(front), hoverinfo="text"))
    if baseline is not None:
        fig.add_hline(y=baseline[0], line_dash="dash", line_color="darkorange", annotation_text=baseline[1],
                      annotation_position="bottom right")
    fig.update_layout(title=title, xaxis_title=x_label, yaxis_title=y_label, template="plotly_white")
    if log_x(done, cost):
        ticks = log_ticks(done[cost].min(), done[cost].max())
        fig.update_xaxes(type="log", title=x_label + " (log scale)", tickvals=ticks, ticktext=[count_label(v) for v in ticks])
    write_html(fig, path)
    return path


NEEDS_PLOTLY = ("<p id=\"lungsearch-needs-plotly\" style=\"font:15px sans-serif;color:#a00;margin:1em\">This interactive figure "
                "loads plotly.min.js from the report folder it was written to, and that file is not beside it here. Copy the "
                "whole folder, or open index.html: it holds every figure of the report in one file.</p>")


def write_html(fig, path: str) -> None:
    """An interactive figure that shares plotly.min.js with its folder (4.8 MB once, not per file), and says so
    in the page where that file is missing instead of showing a blank page."""
    fig.write_html(path, include_plotlyjs="directory")
    with open(path, encoding="utf-8") as fh:
        page = fh.read()
    page = page.replace("<body>", "<body>\n" + NEEDS_PLOTLY, 1).replace(
        "</body>", "<script>if (window.Plotly) document.getElementById('lungsearch-needs-plotly').remove();</script>\n</body>", 1)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(page)


def _optuna_plots(study: optuna.Study, out_dir: str, stream=None) -> tuple[list, list[str]]:
    """optuna.visualization's history, intermediate values and importances, each as HTML (skipped when they cannot apply).

    Returns ([(name, path, figure)], notes).
    """
    import functools

    from optuna import visualization as vis

    named = {"target_name": metric_name(study)}  # the objective's name on the axis, not "Objective Value"
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    importances_possible = len(complete) >= MIN_TRIALS_FOR_IMPORTANCE and _varied_params(complete)
    caveat = importance_caveat(len(complete))
    plots = [("optimization_history", functools.partial(vis.plot_optimization_history, **named), len(complete) >= 1, "no completed trial"),
             ("intermediate_values", vis.plot_intermediate_values, any(t.intermediate_values for t in study.trials), "no trial reported per-epoch values"),
             ("param_importances", functools.partial(vis.plot_param_importances, **named), importances_possible,
              f"fewer than {MIN_TRIALS_FOR_IMPORTANCE} completed trials with varied params")]
    figures, notes = [], []
    for name, plot, possible, reason in plots:
        if not possible:
            print(f"  ({name}.html skipped: {reason})", file=stream)
            continue
        path = os.path.join(out_dir, f"{name}.html")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fig = plot(study)
        except (ValueError, RuntimeError) as exc:  # e.g. importances when every trial shares one value
            print(f"  ({name}.html skipped: {exc})", file=stream)
            continue
        if name == "param_importances" and caveat:
            fig.update_layout(title=f"Hyperparameter importances: {caveat}")
        write_html(fig, path)
        figures.append((name, path, fig))
    if importances_possible:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                importances = optuna.importance.get_param_importances(study)
            line = "param importances (fANOVA): " + ", ".join(f"{k} {v:.2f}" for k, v in importances.items())
            print(line + (f"\n  ({caveat})" if caveat else ""), file=stream)
            if caveat:
                notes.append(f"Parameter importances: {caveat}.")
        except (ValueError, RuntimeError):
            pass
    return figures, notes


def importance_caveat(completed: int) -> str | None:
    if completed >= RELIABLE_IMPORTANCE_TRIALS:
        return None
    return (f"from {completed} completed trials, fewer than {RELIABLE_IMPORTANCE_TRIALS}: a rough guide at best, "
            "they can change order with a few more trials")


def _varied_params(trials) -> bool:
    values = [t.value for t in trials]
    return len({tuple(sorted(t.params.items())) for t in trials}) > 1 and np.ptp(values) > 0


# --------------------------------------------------------------------------- index.html


def write_index(study, out_dir, text, notes, df, fronts, figures, written) -> str:
    """index.html: every figure and table of the report in one file that works alone (plotly.js and the PNGs
    are inside it), with links to the separate files."""
    import base64
    import html

    from plotly.offline import get_plotlyjs

    def link(path):
        name = os.path.basename(path)
        return f'<a href="{html.escape(name)}">{html.escape(name)}</a>'

    parts = [f"<h1>lungsearch report: {html.escape(study.study_name)}</h1>", f"<pre>{html.escape(text)}</pre>"]
    parts += [f'<p class="note">{html.escape(n)}</p>' for n in notes]
    shown = [c for c in ("trial", "state", "value", "val_accuracy", "train_seconds", "epochs", "param_count", "kept_model",
                         "degenerate", "warm_start") if c in df]
    parts.append(f"<h2>Trials</h2><p>Every trial with every parameter: {link(os.path.join(out_dir, 'trials.csv'))}. "
                 f"{html.escape(ACCURACY_NOTE)}.</p>")
    parts.append(df[shown].rename(columns={"value": metric_name(study), "val_accuracy": "val_acc (argmax)"})
                 .to_html(index=False, na_rep="", float_format=lambda v: f"{v:.4g}", border=0, classes="trials"))
    parts.append("<h2>Pareto fronts</h2><p>A trial whose validation accuracy (argmax) is at or below the majority-class "
                 "rate, or whose AUC is at or below 0.5, is degenerate: marked x and never on a front. The dashed line is the "
                 "baseline of each plot's axis.</p>")
    for f in fronts:
        files = " | ".join(link(f[k]) for k in ("csv", "png", "html") if f.get(k))
        parts.append(f"<h3>{html.escape(f['title'])}</h3><p>{files}</p>")
        if f.get("png"):
            with open(f["png"], "rb") as fh:
                data = base64.b64encode(fh.read()).decode("ascii")
            parts.append(f'<img alt="{html.escape(f["stem"])}" src="data:image/png;base64,{data}">')
        else:
            parts.append("<p>(no completed trial records both values)</p>")
    if figures:
        parts.append("<h2>Optuna plots</h2>")
    for name, path, fig in figures:
        parts.append(f"<h3>{html.escape(name.replace('_', ' '))}</h3><p>{link(path)}</p>")
        parts.append(fig.to_html(full_html=False, include_plotlyjs=False))
    parts.append("<h2>Files</h2><p>The separate .html files load plotly.min.js from this folder: copy the whole folder to "
                 "keep them working. This index.html works on its own.</p><ul>"
                 + "".join(f"<li>{link(p)}</li>" for p in written) + "</ul>")
    script = f"<script>{get_plotlyjs()}</script>" if figures else ""
    page = ("<!DOCTYPE html><html><head><meta charset=\"utf-8\">"
            f"<title>lungsearch report: {html.escape(study.study_name)}</title>"
            "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
            "pre{background:#f6f6f6;padding:1em;overflow-x:auto}.note{background:#fff4e0;padding:.6em}"
            "table.trials{border-collapse:collapse;font-size:13px}table.trials td,table.trials th{padding:2px 8px;"
            "border-bottom:1px solid #ddd;text-align:right}img{max-width:100%}</style>"
            f"{script}</head><body>{''.join(parts)}</body></html>")
    path = os.path.join(out_dir, "index.html")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(page)
    return path
