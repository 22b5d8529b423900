"""Calibration of a two-class model's probabilities: the logit, and Platt scaling per fold model.

Platt scaling fits sigmoid(a * logit(p) + b) to labels by maximum likelihood
(scikit-learn's logistic regression on one feature, next to no penalty).
``refine``'s fold models rank alike but score on different scales; `best`
calibrates each on its own held-out images before they are pooled or
averaged (:mod:`lungsearch.export.refined`).  Temperature scaling, one
parameter and no shift, is :func:`lungsearch.evaluate.threshold.fit_temperature`.
"""

from __future__ import annotations

import numpy as np


def logit(p, eps: float) -> np.ndarray:
    """log(p / (1 - p)), with ``p`` clipped to [eps, 1 - eps] first."""
    p = np.clip(np.asarray(p, dtype=np.float64), eps, 1 - eps)
    return np.log(p) - np.log1p(-p)


CLIP = 1e-6  # refine stores OOF probabilities with 6 decimals: Platt's logits are taken within [CLIP, 1 - CLIP]


def fit_platt(y01: np.ndarray, p: np.ndarray) -> tuple[float, float]:
    """(a, b) of the logistic calibration sigmoid(a * logit(p) + b) fitted to labels ``y01`` by maximum likelihood; (1, 0)
    (no change) where the images hold one class only."""
    from sklearn.linear_model import LogisticRegression

    y01 = np.asarray(y01).astype(int)
    if len(np.unique(y01)) < 2:
        return 1.0, 0.0
    fitted = LogisticRegression(C=1e4, max_iter=1000).fit(logit(p, CLIP)[:, None], y01)  # C large: next to no penalty
    return float(fitted.coef_[0, 0]), float(fitted.intercept_[0])


def apply_platt(probs: np.ndarray, a: float, b: float, positive: int) -> np.ndarray:
    """Two-class probabilities (n, 2) with the positive class's calibrated as sigmoid(a * logit(p) + b)."""
    out = np.empty_like(np.asarray(probs, dtype=np.float64))
    out[:, positive] = 1.0 / (1.0 + np.exp(-(a * logit(probs[:, positive], CLIP) + b)))
    out[:, 1 - positive] = 1.0 - out[:, positive]
    return out


def calibrate(oof: np.ndarray, y: np.ndarray, held: list, positive: int, fit: np.ndarray | None = None) -> tuple[np.ndarray, list]:
    """A finalist's OOF probabilities with each fold's part calibrated on that fold's own held-out images, and each (a, b).

    ``fit`` (a boolean mask over the images): each fold's calibration is fitted
    on its images inside the mask only, and applied to all of them (the
    cross-fitted choice in ``bench.refine``)."""
    out, platt = np.empty_like(oof), []
    for h in held:
        part = h if fit is None else h[fit[h]]
        a, b = fit_platt(y[part] == positive, oof[part, positive])
        out[h] = apply_platt(oof[h], a, b, positive)
        platt.append((a, b))
    return out, platt
