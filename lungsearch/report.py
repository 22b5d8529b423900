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
from search.pareto import pareto_mask

COST_AXES = {"train_seconds": "training time (s)", "param_count": "parameters"}
MIN_TRIALS_FOR_IMPORTANCE = 4  # fANOVA on fewer completed trials says nothing
TOP = 10


def trials_frame(study: optuna.Study) -> pd.DataFrame:
    """One row per trial: state, value, time, size, validation metrics, params."""
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
    return df


def front_frame(df: pd.DataFrame, metric: str = "val_accuracy", cost: str = "train_seconds") -> pd.DataFrame:
    """Completed trials on the front of ``metric`` (max) vs ``cost`` (min), sorted by cost."""
    done = df[(df["state"] == "COMPLETE") & df[metric].notna() & df[cost].notna()]
    if done.empty:
        return done
    mask = pareto_mask(done[metric].to_numpy(float), done[cost].to_numpy(float))
    return done[mask].sort_values(cost)


def pareto_frame(df: pd.DataFrame) -> pd.DataFrame:
    """The front of validation accuracy vs training time (kept for callers of the first report)."""
    return front_frame(df, "val_accuracy", "train_seconds")


def summary(study: optuna.Study, df: pd.DataFrame, metric: str, top: int = TOP) -> str:
    """Like keras-tuner's results_summary: the top trials, best first, with their params."""
    states = df["state"].value_counts().to_dict() if len(df) else {}
    lines = [f"study {study.study_name!r}: {len(df)} trials ({', '.join(f'{v} {k.lower()}' for k, v in states.items()) or 'none'}), "
             f"objective {metric} (maximised)"]
    done = df[df["state"] == "COMPLETE"].sort_values("value", ascending=False).head(top)
    if done.empty:
        lines.append("no completed trial yet")
        return "\n".join(lines)
    lines.append(f"top {len(done)} trials:")
    for _, r in done.iterrows():
        figures = [f"{metric}={r['value']:.4f}"]
        for col, fmt in (("val_accuracy", "acc={:.4f}"), ("train_seconds", "{:.1f}s"), ("epochs", "{:.0f} ep"), ("param_count", "{:,.0f} params")):
            if pd.notna(r.get(col)) and not (col == "val_accuracy" and metric == "val_accuracy"):
                figures.append(fmt.format(r[col]))
        if r.get("kept_model"):
            figures.append("model kept")
        if r.get("warm_start"):
            figures.append(f"warm start: {r['warm_start']}")
        params = ", ".join(f"{k[7:]}={_short(r[k])}" for k in r.index if k.startswith("params_") and pd.notna(r[k]))
        lines.append(f"  #{int(r['trial']):<4} " + "  ".join(figures))
        lines.append(f"        {params}")
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
    """Print the summary; write fronts (CSV, PNG, HTML) and Optuna's plots; return the paths written.

    ``storage`` (the URL the study was read from) goes into the commands the report suggests.
    """
    os.makedirs(out_dir, exist_ok=True)
    df = trials_frame(study)
    metric = (study.user_attrs.get("config") or {}).get("metric", "value")
    print(summary(study, df, metric), file=stream)
    note = models_note(study, df, storage)
    if note:
        print(note, file=stream)
    paths = []
    table = os.path.join(out_dir, "trials.csv")
    df.to_csv(table, index=False)
    paths.append(table)
    for y, y_label in (("val_accuracy", "validation accuracy"), ("value", f"objective ({metric})")):
        for cost, x_label in COST_AXES.items():
            front = front_frame(df, y, cost)
            stem = "pareto" if (y, cost) == ("val_accuracy", "train_seconds") else f"pareto_{'objective' if y == 'value' else y}_vs_{cost}"
            csv_path = os.path.join(out_dir, f"{stem}.csv")
            front.to_csv(csv_path, index=False)
            paths.append(csv_path)
            if front.empty:
                print(f"  (no completed trial records {y} and {cost}: {stem}.png/.html skipped)", file=stream)
                continue
            paths.append(_plot_front(df, front, y, cost, os.path.join(out_dir, f"{stem}.png"), f"{study.study_name}: {y_label} vs {x_label}", y_label, x_label))
            paths.append(_html_front(df, front, y, cost, os.path.join(out_dir, f"{stem}.html"), f"{study.study_name}: {y_label} vs {x_label}", y_label, x_label))
    paths += _optuna_plots(study, out_dir, stream)
    return paths


def _plot_front(df, front, y, cost, path, title, y_label, x_label) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    done = df[(df["state"] == "COMPLETE") & df[y].notna() & df[cost].notna()]
    ax.scatter(done[cost], done[y], color="0.7", label="completed trials")
    ax.step(front[cost], front[y], where="post", color="tab:red", alpha=0.6)
    ax.scatter(front[cost], front[y], color="tab:red", label="Pareto front", zorder=3)
    for _, r in front.iterrows():
        ax.annotate(f"#{int(r['trial'])}", (r[cost], r[y]), textcoords="offset points", xytext=(4, -10), fontsize=8)
    if cost == "param_count" and done[cost].max() / max(done[cost].min(), 1) > 20:
        ax.set_xscale("log")
    ax.set_xlabel(x_label)
    ax.set_ylabel(y_label)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _html_front(df, front, y, cost, path, title, y_label, x_label) -> str:
    import plotly.graph_objects as go

    done = df[(df["state"] == "COMPLETE") & df[y].notna() & df[cost].notna()]
    params = [c for c in df.columns if c.startswith("params_")]

    def hover(frame):
        return [f"trial #{int(r['trial'])}<br>{y}={r[y]:.4f}<br>{cost}={r[cost]:,.1f}<br>"
                + "<br>".join(f"{c[7:]}={_short(r[c])}" for c in params if pd.notna(r[c])) for _, r in frame.iterrows()]

    fig = go.Figure()
    fig.add_trace(go.Scatter(x=done[cost], y=done[y], mode="markers", name="completed trials", marker={"color": "lightgray", "size": 9},
                             hovertext=hover(done), hoverinfo="text"))
    fig.add_trace(go.Scatter(x=front[cost], y=front[y], mode="lines+markers", line_shape="hv", name="Pareto front",
                             marker={"color": "crimson", "size": 11}, hovertext=hover(front), hoverinfo="text"))
    fig.update_layout(title=title, xaxis_title=x_label, yaxis_title=y_label, template="plotly_white")
    fig.write_html(path, include_plotlyjs="directory")
    return path


def _optuna_plots(study: optuna.Study, out_dir: str, stream=None) -> list[str]:
    """optuna.visualization's history, intermediate values and importances, each as HTML (skipped when they cannot apply)."""
    from optuna import visualization as vis

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    plots = [("optimization_history", vis.plot_optimization_history, len(complete) >= 1, "no completed trial"),
             ("intermediate_values", vis.plot_intermediate_values, any(t.intermediate_values for t in study.trials), "no trial reported per-epoch values"),
             ("param_importances", vis.plot_param_importances, len(complete) >= MIN_TRIALS_FOR_IMPORTANCE and _varied_params(complete),
              f"fewer than {MIN_TRIALS_FOR_IMPORTANCE} completed trials with varied params")]
    paths = []
    for name, plot, possible, reason in plots:
        if not possible:
            print(f"  ({name}.html skipped: {reason})", file=stream)
            continue
        path = os.path.join(out_dir, f"{name}.html")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                plot(study).write_html(path, include_plotlyjs="directory")
        except (ValueError, RuntimeError) as exc:  # e.g. importances when every trial shares one value
            print(f"  ({name}.html skipped: {exc})", file=stream)
            continue
        paths.append(path)
    if len(complete) >= MIN_TRIALS_FOR_IMPORTANCE and _varied_params(complete):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                importances = optuna.importance.get_param_importances(study)
            print("param importances (fANOVA): " + ", ".join(f"{k} {v:.2f}" for k, v in importances.items()), file=stream)
        except (ValueError, RuntimeError):
            pass
    return paths


def _varied_params(trials) -> bool:
    values = [t.value for t in trials]
    return len({tuple(sorted(t.params.items())) for t in trials}) > 1 and np.ptp(values) > 0
