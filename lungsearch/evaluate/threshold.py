"""The decision threshold of a binary model, chosen on validation only, and the decision it makes.

Youden's J by default, or the most specific threshold that keeps validation
sensitivity at a floor; opt-in rules take the midpoint of the best-J
interval, plain 0.5, or a temperature fitted on validation with the Bayes
threshold for the training prevalence (:data:`THRESHOLD_RULES`).
:func:`decide` applies a threshold unchanged (argmax without one).
"""

from __future__ import annotations

import numpy as np

from lungsearch.evaluate.calibration import logit
from lungsearch.evaluate.metrics import EvaluationError

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


def fit_temperature(y: np.ndarray, scores: np.ndarray) -> float:
    """The temperature T > 0 that minimises the log-loss of sigmoid(logit(scores) / T) against ``y`` (0/1)."""
    from scipy.optimize import minimize_scalar

    z = logit(scores, EPS)
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
    threshold = float(1.0 / (1.0 + np.exp(-t * logit(prior, EPS))))  # calibrated p >= prior <=> logit(p) >= T * logit(prior)
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
