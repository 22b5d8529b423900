"""The PNGs of an evaluation: test confusion matrix, test ROC with the chosen threshold, training curves.

matplotlib with the Agg backend, imported only when a figure is drawn; every
figure is saved and closed by :func:`save_figure`.
"""

from __future__ import annotations

import os

import numpy as np


def write_plots(ev: dict, out_dir: str, history: dict) -> list[str]:
    """The test confusion matrix and ROC PNGs of evaluation ``ev`` (and its training curves, from ``history``) in ``out_dir``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker
    from sklearn.metrics import ConfusionMatrixDisplay, RocCurveDisplay

    names = ev["class_names"]
    paths = []
    fig, ax = plt.subplots(figsize=(4.5, 4), dpi=120)
    ConfusionMatrixDisplay(np.asarray(ev["test"]["confusion_matrix"]), display_labels=names).plot(ax=ax, colorbar=False, cmap="Blues")
    ax.set_title("test confusion matrix")
    fig.tight_layout()
    paths.append(save_figure(fig, os.path.join(out_dir, "confusion_matrix.png")))

    y, probs = ev["_y"], ev["_probs"]
    fig, ax = plt.subplots(figsize=(5, 4.5), dpi=120)
    positive = ev.get("decision", {}).get("positive")
    for i, name in enumerate(names):
        if len(names) == 2 and i != (positive if positive is not None else 1):
            continue
        if 0 < np.sum(y == i) < len(y):
            RocCurveDisplay.from_predictions(y == i, probs[:, i], name=f"{name} vs rest" if len(names) > 2 else name, ax=ax)
    d = ev.get("decision", {})
    if d.get("threshold") is not None and "sensitivity" in ev["test"]["metrics"]:
        m = ev["test"]["metrics"]
        if m["sensitivity"]["value"] is not None and m["specificity"]["value"] is not None:
            ax.scatter([1 - m["specificity"]["value"]], [m["sensitivity"]["value"]], color="tab:red", zorder=3,
                       label=f"threshold {d['threshold']:.3f} (chosen on validation)")
    ax.plot([0, 1], [0, 1], color="0.7", ls="--", lw=1)
    ax.set_xlabel("false positive rate (1 - specificity)")
    ax.set_ylabel("true positive rate (sensitivity)")
    ax.set_title("test ROC")
    if ax.get_legend_handles_labels()[0]:  # no curve where the folder holds one class only
        ax.legend(loc="lower right", fontsize=8)
    else:
        ax.text(0.5, 0.5, "no ROC: the images hold one class only", ha="center", va="center")
    fig.tight_layout()
    paths.append(save_figure(fig, os.path.join(out_dir, "roc_curve.png")))

    path = training_curves_png(history, os.path.join(out_dir, "training_curves.png"), trial=ev.get("trial"),
                               objective=ev.get("objective") or "val_auc", kept_epoch=ev.get("kept_epoch"))
    return paths + ([path] if path else [])


def training_curves_png(history: dict, path: str, *, trial=None, objective: str = "val_auc", kept_epoch: int | None = None) -> str | None:
    """Loss, accuracy and AUC per epoch (training and validation where both exist), the objective named,
    and the epoch whose weights the model holds (``kept_epoch``, 1-based) marked in every panel."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    panels = [(k, f"val_{k}") for k in ("loss", "accuracy", "auc")]
    panels = [(a, b) for a, b in panels if history.get(a) or history.get(b)]
    if not panels:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), dpi=120, squeeze=False)
    for ax, (train_key, val_key) in zip(axes[0], panels):
        for key, label in ((train_key, "training"), (val_key, "validation")):
            values = history.get(key) or []
            if values:
                ax.plot(range(1, len(values) + 1), values, marker="o", label=label)
        if kept_epoch:
            ax.axvline(kept_epoch, color="tab:red", ls="--", lw=1.2, label=f"kept: epoch {kept_epoch}")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax.set_ylabel(train_key)
        ax.set_title(f"{val_key}: the objective" if val_key == objective else train_key, fontsize=10,
                     fontweight="bold" if val_key == objective else "normal")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    kept = f"; the model holds the weights of epoch {kept_epoch} (best {objective}, restored)" if kept_epoch else ""
    fig.suptitle(f"trial {trial}: training curves{kept}", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


def save_figure(fig, path: str) -> str:
    """Save ``fig`` to ``path`` and close it (pyplot keeps every open figure otherwise); tests replace it to look at the figure."""
    import matplotlib.pyplot as plt

    fig.savefig(path)
    plt.close(fig)
    return path
