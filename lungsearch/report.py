"""Read a study back from storage: trials table, Pareto front CSV and plot."""

from __future__ import annotations

import os

import numpy as np
import optuna
import pandas as pd

from search.pareto import pareto_mask


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
        }
        row.update({f"param_{k}": v for k, v in t.params.items()})
        rows.append(row)
    return pd.DataFrame(rows)


def pareto_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Completed trials on the front of validation accuracy (max) vs training time (min)."""
    done = df[(df["state"] == "COMPLETE") & df["val_accuracy"].notna() & df["train_seconds"].notna()]
    if done.empty:
        return done
    mask = pareto_mask(done["val_accuracy"].to_numpy(float), done["train_seconds"].to_numpy(float))
    return done[mask].sort_values("train_seconds")


def write_report(study: optuna.Study, out_dir: str, stream=None) -> list[str]:
    os.makedirs(out_dir, exist_ok=True)
    df = trials_frame(study)
    metric = study.user_attrs.get("config", {}).get("metric", "value")
    with pd.option_context("display.max_rows", 200, "display.width", 160, "display.max_columns", 12):
        cols = ["trial", "state", "value", "val_accuracy", "val_auc", "train_seconds", "epochs", "param_count"]
        print(f"study {study.study_name!r}: {len(df)} trials, objective {metric}", file=stream)
        print(df[cols].to_string(index=False, float_format=lambda v: f"{v:.4f}"), file=stream)
    front = pareto_frame(df)
    csv_path = os.path.join(out_dir, "pareto.csv")
    front.to_csv(csv_path, index=False)
    png_path = os.path.join(out_dir, "pareto.png")
    _plot_front(df, front, png_path, study.study_name)
    return [csv_path, png_path]


def _plot_front(df: pd.DataFrame, front: pd.DataFrame, path: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    done = df[(df["state"] == "COMPLETE") & df["val_accuracy"].notna()]
    ax.scatter(done["train_seconds"], done["val_accuracy"], color="0.7", label="completed trials")
    if not front.empty:
        ax.step(front["train_seconds"], front["val_accuracy"], where="post", color="tab:red", alpha=0.6)
        ax.scatter(front["train_seconds"], front["val_accuracy"], color="tab:red", label="Pareto front", zorder=3)
        for _, r in front.iterrows():
            ax.annotate(f"#{int(r['trial'])}", (r["train_seconds"], r["val_accuracy"]), textcoords="offset points", xytext=(4, -10), fontsize=8)
    ax.set_xlabel("training time (s)")
    ax.set_ylabel("validation accuracy")
    ax.set_title(f"{title}: accuracy vs training time")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
