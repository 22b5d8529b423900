"""Two models scored on the same images: the AUC's bootstrap interval, and a paired bootstrap of their difference.

Two intervals that overlap say little about which model is better: both are
scored on the same images, so their errors are correlated.  The paired
bootstrap resamples the images once per draw and scores both models on that
resample, so the interval and the p-value are of the difference itself
(Efron & Tibshirani, *An Introduction to the Bootstrap*, ch. 16; the test
pROC's ``roc.test(method="bootstrap")`` performs).  Scores are either class
probabilities (n, k), scored as :func:`lungsearch.evaluate.metrics.roc_auc`
scores them (the positive class's, whatever index it sorts to; one-vs-rest
macro above two classes), or one score per image against binary labels.
"""

from __future__ import annotations

import numpy as np

N_BOOTSTRAP = 1000
LEVEL = 0.95


def _auc(y: np.ndarray, s: np.ndarray, positive: int | None = None) -> float:
    from sklearn.metrics import roc_auc_score

    from lungsearch.evaluate.metrics import roc_auc

    return roc_auc(y, s, positive) if s.ndim == 2 else float(roc_auc_score(y, s))


def _draws(y: np.ndarray, n: int, seed: int):
    """Resampled index arrays that hold every class (a resample without one has no AUC)."""
    rng = np.random.default_rng(seed)
    classes = len(np.unique(y))
    made = 0
    while made < n:
        idx = rng.integers(0, len(y), len(y))
        if len(np.unique(y[idx])) == classes:
            made += 1
            yield idx


def bootstrap_auc(y, scores, *, positive: int | None = None, n: int = N_BOOTSTRAP, seed: int = 0, level: float = LEVEL) -> list[float]:
    """Percentile bootstrap interval of the AUC of ``scores`` against labels ``y``."""
    y, scores = np.asarray(y), np.asarray(scores, dtype=float)
    values = [_auc(y[idx], scores[idx], positive) for idx in _draws(y, n, seed)]
    tail = (1.0 - level) / 2 * 100
    return [float(np.percentile(values, tail)), float(np.percentile(values, 100 - tail))]


def paired_bootstrap_auc(y, a, b, *, positive: int | None = None, n: int = N_BOOTSTRAP, seed: int = 0, level: float = LEVEL) -> dict:
    """AUC(a) - AUC(b) on the same images: the difference, its percentile interval and a two-sided p-value.

    The p-value is twice the share of resamples on the far side of 0 from the
    observed difference (at least 1 / n: a bootstrap cannot say less).
    """
    y, a, b = np.asarray(y), np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if not (len(y) == len(a) == len(b)):
        raise ValueError(f"the two models were scored on different images ({len(a)} and {len(b)} scores, {len(y)} labels)")
    auc_a, auc_b = _auc(y, a, positive), _auc(y, b, positive)
    observed = auc_a - auc_b
    diffs = np.asarray([_auc(y[idx], a[idx], positive) - _auc(y[idx], b[idx], positive) for idx in _draws(y, n, seed)])
    tail = (1.0 - level) / 2 * 100
    far = np.mean(diffs <= 0) if observed > 0 else np.mean(diffs >= 0)
    p = float(min(1.0, max(2.0 * far, 1.0 / n)))
    return {"auc_a": round(auc_a, 5), "auc_b": round(auc_b, 5), "difference": round(float(observed), 5),
            "ci95": [round(float(np.percentile(diffs, tail)), 5), round(float(np.percentile(diffs, 100 - tail)), 5)],
            "p": round(p, 4), "resamples": int(n), "method": "paired bootstrap"}
