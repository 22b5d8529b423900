"""The metrics of one set of predictions: each with its 95% interval (bootstrap, or Wilson at 0/n and n/n), and the confusion matrix.

The threshold is given (chosen on validation by :mod:`lungsearch.evaluate.threshold`)
and held fixed over the bootstrap's resamples of the test images.
"""

from __future__ import annotations

import numpy as np

from lungsearch.evaluate.ci import CI_LEVEL, N_BOOTSTRAP, bootstrap_ci, proportions, wilson_interval
from lungsearch.evaluate.metrics import EvaluationError, point_metrics
from lungsearch.evaluate.threshold import decide


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
