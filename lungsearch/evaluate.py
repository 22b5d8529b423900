"""Honest evaluation: a threshold chosen on validation, metrics with bootstrap CIs on test.

Every metric is scikit-learn's.  The decision threshold of a binary model is
chosen on validation probabilities only (Youden's J by default, or the most
specific threshold that keeps validation sensitivity at a floor) and then
applied unchanged to the test split.  Confidence intervals are percentile
bootstrap intervals over test images, with the threshold held fixed; where a
proportion is 0/n or n/n the bootstrap collapses to that point (every resample
is 0/n too), so there the interval is Wilson's score interval, and each metric
says which method gave its interval (``ci_method``).
"""

from __future__ import annotations

import json
import os
import re
import warnings

import numpy as np

NEGATIVE_NAMES = re.compile(r"normal|healthy|negative|no[_ -]?finding|control", re.IGNORECASE)
N_BOOTSTRAP = 1000  # resamples of the test set per interval
CI_LEVEL = 0.95


class EvaluationError(ValueError):
    """An evaluation that cannot be made as asked."""

    user_error = True  # the CLI prints it on one line and exits 2


def positive_class(class_names) -> int | None:
    """Index of the disease class of a binary set (the one not called normal), else None."""
    names = list(class_names)
    if len(names) != 2:
        return None
    negative = [i for i, n in enumerate(names) if NEGATIVE_NAMES.search(n)]
    return 1 - negative[0] if len(negative) == 1 else 1


def roc_auc(y, probs, positive: int | None = None) -> float:
    """ROC AUC of class probabilities ``probs`` (n, k) against integer labels ``y``.

    Two classes: the positive class (``positive``, default index 1) against the
    other, with the labels binarised for it, so the figure is the same whichever
    index the disease class sorts to (a Covid/Normal folder puts it at 0).  More
    classes: one-vs-rest, macro-averaged.  Raises ``ValueError`` when a class is absent.
    """
    from sklearn.metrics import roc_auc_score

    y = np.asarray(y).astype(int)
    probs = np.asarray(probs, dtype=np.float64)
    if probs.shape[1] == 2:
        pos = 1 if positive is None else int(positive)
        return float(roc_auc_score(y == pos, probs[:, pos]))
    return float(roc_auc_score(y, probs, multi_class="ovr", average="macro", labels=list(range(probs.shape[1]))))


# --------------------------------------------------------------------------- threshold


THRESHOLD_RULES = ("youden", "youden-mid", "half", "temperature")  # `best --threshold-rule`; youden is the default


def choose_threshold(y: np.ndarray, scores: np.ndarray, min_sensitivity: float | None = None, *,
                     rule: str = "youden", prevalence: float | None = None) -> dict:
    """Threshold on positive-class ``scores`` (predict positive when score >= threshold).

    ``y`` is 1 for the positive (disease) class, 0 otherwise; ``scores`` its probability.
    Default: maximise Youden's J = sensitivity + specificity - 1 (ties: the higher threshold).  With
    ``min_sensitivity``: the highest-specificity threshold whose sensitivity is
    at least the floor (ties: the higher threshold).  Opt-in rules (``rule``):

    - ``youden-mid``: the midpoint of the interval of thresholds that give the
      maximal J (the first run of ties, counted from the highest threshold), so
      a threshold in a wide gap between the classes lands in its middle rather
      than at its upper edge;
    - ``half``: 0.5 on the (class-weighted) model's probability, nothing fitted;
    - ``temperature``: one temperature T fitted on validation (minimum log-loss
      of sigmoid(logit(p) / T), i.e. softmax of log(p) / T for two classes),
      then the Bayes threshold for the training prevalence ``prevalence`` of the
      positive class (default: validation's): predict positive when the
      calibrated probability is >= the prevalence, the decision of least
      balanced error; returned on the model's own probability scale.
    """
    from sklearn.metrics import roc_curve

    y = np.asarray(y).astype(int)
    scores = np.asarray(scores, dtype=np.float64)
    if rule not in THRESHOLD_RULES:
        raise EvaluationError(f"unknown threshold rule {rule!r}; choose one of {', '.join(THRESHOLD_RULES)}")
    if min_sensitivity is not None and rule != "youden":
        raise EvaluationError(f"--min-sensitivity picks its own threshold; it cannot be combined with the {rule!r} rule")
    if min_sensitivity is not None and not 0.0 < min_sensitivity <= 1.0:
        raise EvaluationError(f"--min-sensitivity must be in (0, 1], got {min_sensitivity}")
    if rule == "half":
        return {"threshold": 0.5, "rule": "0.5 on the model's probability", **_at(y, scores, 0.5)}
    if len(np.unique(y)) < 2:
        return {"threshold": 0.5, "rule": "0.5 (validation holds one class only)", "val_sensitivity": None, "val_specificity": None}
    if rule == "temperature":
        return _temperature_threshold(y, scores, prevalence)
    fpr, tpr, thresholds = roc_curve(y, scores, drop_intermediate=False)
    thresholds = np.minimum(thresholds, 1.0)  # roc_curve's first threshold is +inf: "nothing positive"
    if min_sensitivity is None:
        j = tpr - fpr
        best = j >= j.max() - 1e-12
        i = int(np.flatnonzero(best)[0])  # ties: the higher threshold
        rule_text = "max Youden's J on validation"
        if rule == "youden-mid":
            # thresholds decrease: any t in (thresholds[k + 1], thresholds[k]] decides as thresholds[k] does
            k = i
            while k + 1 < len(best) and best[k + 1]:
                k += 1
            low = float(thresholds[k + 1]) if k + 1 < len(thresholds) else 0.0
            mid = (float(thresholds[i]) + low) / 2
            return {"threshold": mid, "rule": "midpoint of the thresholds of max Youden's J on validation",
                    "interval": [low, float(thresholds[i])], **_at(y, scores, mid)}
    else:
        ok = np.flatnonzero(tpr >= min_sensitivity - 1e-12)  # tpr reaches 1.0 at the lowest threshold, so never empty
        i = int(ok[np.argmin(fpr[ok])])  # first of the ties: thresholds decrease, so the highest
        rule_text = f"highest validation specificity with sensitivity >= {min_sensitivity}"
    return {
        "threshold": float(thresholds[i]),
        "rule": rule_text,
        "min_sensitivity": min_sensitivity,
        "val_sensitivity": float(tpr[i]),
        "val_specificity": float(1.0 - fpr[i]),
    }


def _at(y: np.ndarray, scores: np.ndarray, threshold: float) -> dict:
    """Validation sensitivity and specificity at ``threshold`` (None where a class is absent)."""
    pos = y == 1
    return {"val_sensitivity": float(np.mean(scores[pos] >= threshold)) if pos.any() else None,
            "val_specificity": float(np.mean(scores[~pos] < threshold)) if (~pos).any() else None}


EPS = 1e-7  # probabilities are clipped to [EPS, 1 - EPS] before their logit


def _logit(p):
    p = np.clip(np.asarray(p, dtype=np.float64), EPS, 1 - EPS)
    return np.log(p) - np.log1p(-p)


def fit_temperature(y: np.ndarray, scores: np.ndarray) -> float:
    """The temperature T > 0 that minimises the log-loss of sigmoid(logit(scores) / T) against ``y`` (0/1)."""
    from scipy.optimize import minimize_scalar

    z = _logit(scores)
    y = np.asarray(y).astype(float)

    def loss(log_t):
        u = z / np.exp(log_t)
        return float(np.mean(np.logaddexp(0.0, u) - y * u))  # -log sigmoid(u) for y=1, -log(1-sigmoid(u)) for y=0

    return float(np.exp(minimize_scalar(loss, bounds=(-5.0, 5.0), method="bounded", options={"xatol": 1e-6}).x))


def _temperature_threshold(y: np.ndarray, scores: np.ndarray, prevalence: float | None) -> dict:
    prior = float(np.mean(y)) if prevalence is None else float(prevalence)
    if not 0.0 < prior < 1.0:
        raise EvaluationError(f"the positive class's prevalence must be in (0, 1), got {prior}")
    t = fit_temperature(y, scores)
    threshold = float(1.0 / (1.0 + np.exp(-t * _logit(prior))))  # calibrated p >= prior <=> logit(p) >= T * logit(prior)
    return {"threshold": threshold, "rule": f"temperature {t:.3f} fitted on validation, then calibrated probability >= "
                                            f"the training prevalence {prior:.3f}",
            "temperature": t, "prevalence": prior, **_at(y, scores, threshold)}


def decide(probs: np.ndarray, threshold: float | None, positive: int | None) -> np.ndarray:
    """Class indices: the threshold on the positive class for binary models, else argmax."""
    probs = np.asarray(probs)
    if positive is None or threshold is None:
        return probs.argmax(axis=1)
    negative = 1 - positive
    return np.where(probs[:, positive] >= threshold, positive, negative)


# --------------------------------------------------------------------------- metrics


def point_metrics(y: np.ndarray, probs: np.ndarray, pred: np.ndarray, class_names, positive: int | None) -> dict[str, float]:
    """Scalar metrics of one sample: overall and per class (keys ``precision/<class>`` ...)."""
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, precision_recall_fscore_support

    labels = list(range(len(class_names)))
    out = {"accuracy": accuracy_score(y, pred)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # an absent class in a resample: undefined, reported as nan
        out["balanced_accuracy"] = balanced_accuracy_score(y, pred)
        try:
            out["roc_auc"] = roc_auc(y, probs, positive)
        except ValueError:
            out["roc_auc"] = float("nan")
        if positive is not None:
            pos = y == positive
            out["sensitivity"] = float(np.mean(pred[pos] == positive)) if pos.any() else float("nan")
            out["specificity"] = float(np.mean(pred[~pos] != positive)) if (~pos).any() else float("nan")
        p, r, f, _ = precision_recall_fscore_support(y, pred, labels=labels, zero_division=np.nan)
    for i, name in enumerate(class_names):
        out[f"precision/{name}"], out[f"recall/{name}"], out[f"f1/{name}"] = p[i], r[i], f[i]
    return {k: float(v) for k, v in out.items()}


def bootstrap_ci(y, probs, pred, class_names, positive, *, n: int = N_BOOTSTRAP, seed: int = 0, level: float = CI_LEVEL) -> dict:
    """Percentile bootstrap interval of every metric of :func:`point_metrics`."""
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {}
    for _ in range(n):
        idx = rng.integers(0, len(y), len(y))
        for key, value in point_metrics(y[idx], probs[idx], pred[idx], class_names, positive).items():
            draws.setdefault(key, []).append(value)
    tail = (1.0 - level) / 2 * 100
    out = {}
    for key, values in draws.items():
        arr = np.asarray(values, dtype=float)
        arr = arr[np.isfinite(arr)]
        out[key] = [float(np.percentile(arr, tail)), float(np.percentile(arr, 100 - tail))] if len(arr) else [None, None]
    return out


def wilson_interval(k: int, n: int, level: float = CI_LEVEL) -> list[float]:
    """Wilson's score interval of the proportion k/n: not empty at 0/n or n/n, unlike the bootstrap's."""
    from statistics import NormalDist

    z = NormalDist().inv_cdf(0.5 + level / 2)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [float(max(0.0, centre - half)), float(min(1.0, centre + half))]


def proportions(y: np.ndarray, pred: np.ndarray, class_names, positive: int | None) -> dict[str, tuple[int, int]]:
    """(successes, trials) of every metric of :func:`point_metrics` that is a plain proportion."""
    out = {"accuracy": (int(np.sum(pred == y)), len(y))}
    if positive is not None:
        pos = y == positive
        out["sensitivity"] = (int(np.sum(pred[pos] == positive)), int(pos.sum()))
        out["specificity"] = (int(np.sum(pred[~pos] != positive)), int((~pos).sum()))
    for i, name in enumerate(class_names):
        hit = int(np.sum((pred == i) & (y == i)))
        out[f"recall/{name}"] = (hit, int(np.sum(y == i)))
        out[f"precision/{name}"] = (hit, int(np.sum(pred == i)))
    return out


def evaluate(y, probs, class_names, *, threshold: float | None, positive: int | None,
             n_bootstrap: int = N_BOOTSTRAP, seed: int = 0) -> dict:
    """Metrics of ``probs`` against labels ``y``, each with a bootstrap 95% CI, and the confusion matrix."""
    from sklearn.metrics import confusion_matrix

    y = np.asarray(y).astype(int)
    probs = np.asarray(probs, dtype=np.float64)
    if len(y) == 0:
        raise EvaluationError("no test images to evaluate on")
    pred = decide(probs, threshold, positive)
    point = point_metrics(y, probs, pred, class_names, positive)
    ci = bootstrap_ci(y, probs, pred, class_names, positive, n=n_bootstrap, seed=seed)
    metrics = {k: {"value": _finite(v), "ci95": ci.get(k, [None, None]), "ci_method": "bootstrap"} for k, v in point.items()}
    for key, (k, n) in proportions(y, pred, class_names, positive).items():
        if key in metrics and n and k in (0, n):  # the bootstrap collapses to the point: every resample is k/n too
            metrics[key].update(ci95=wilson_interval(k, n), ci_method="wilson")
    return {
        "n": int(len(y)),
        "counts": {name: int(np.sum(y == i)) for i, name in enumerate(class_names)},
        "metrics": metrics,
        "confusion_matrix": confusion_matrix(y, pred, labels=list(range(len(class_names)))).tolist(),
        "bootstrap": {"resamples": n_bootstrap, "level": CI_LEVEL, "method": "percentile, test images resampled, threshold fixed", "seed": seed,
                      "exact": "Wilson score interval where a proportion is 0/n or n/n (ci_method 'wilson')"},
    }


def _finite(v: float):
    return float(v) if np.isfinite(v) else None


# --------------------------------------------------------------------------- files

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
    paths += _plots(evaluation, out_dir, history or {})
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


def _plots(ev: dict, out_dir: str, history: dict) -> list[str]:
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
    paths.append(_save(fig, os.path.join(out_dir, "confusion_matrix.png")))

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
    paths.append(_save(fig, os.path.join(out_dir, "roc_curve.png")))

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
    return _save(fig, path)


def _save(fig, path: str) -> str:
    import matplotlib.pyplot as plt

    fig.savefig(path)
    plt.close(fig)
    return path
