"""Point metrics of class probabilities against labels, and which class of a binary set is the disease.

Every metric is scikit-learn's: accuracy, balanced accuracy, ROC AUC (the
positive class against the other for two classes, one-vs-rest macro for more),
sensitivity and specificity, and precision, recall and F1 per class. An
absent class gives nan rather than an error, so a bootstrap resample can be
scored too. :class:`EvaluationError` is the error of every evaluation module.
"""

from __future__ import annotations

import re
import warnings

import numpy as np

NEGATIVE_NAMES = re.compile(r"normal|healthy|negative|no[_ -]?finding|control", re.IGNORECASE)


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
