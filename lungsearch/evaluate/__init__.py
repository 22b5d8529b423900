"""Honest evaluation: a threshold chosen on validation, metrics with bootstrap CIs on test.

Every metric is scikit-learn's.  The decision threshold of a binary model is
chosen on validation probabilities only (Youden's J by default, or the most
specific threshold that keeps validation sensitivity at a floor) and then
applied unchanged to the test split.  Confidence intervals are percentile
bootstrap intervals over test images, with the threshold held fixed; where a
proportion is 0/n or n/n the bootstrap collapses to that point (every resample
is 0/n too), so there the interval is Wilson's score interval, and each metric
says which method gave its interval (``ci_method``).

This module holds :func:`evaluate`, which puts them together; the pieces live beside it:

- :mod:`lungsearch.evaluate.metrics`: :class:`EvaluationError`, the positive class, ROC AUC, the point metrics
- :mod:`lungsearch.evaluate.ci`: bootstrap and Wilson intervals
- :mod:`lungsearch.evaluate.threshold`: the threshold chosen on validation, and :func:`decide`
- :mod:`lungsearch.evaluate.files`: evaluation.json, evaluation.md, the one-line summary
- :mod:`lungsearch.evaluate.plots`: confusion matrix, ROC and training-curve PNGs

Their public names are re-exported here, so ``lungsearch.evaluate.<name>`` works as before.
"""

from __future__ import annotations

import numpy as np

# The first import of each module is what this one uses; the second only re-exports the rest.
from lungsearch.evaluate.ci import CI_LEVEL, N_BOOTSTRAP, bootstrap_ci, proportions, wilson_interval
from lungsearch.evaluate.files import SUMMARY_KEYS, markdown, summary_line, write_files  # re-exported
from lungsearch.evaluate.metrics import EvaluationError, point_metrics
from lungsearch.evaluate.metrics import NEGATIVE_NAMES, positive_class, roc_auc  # re-exported
from lungsearch.evaluate.plots import training_curves_png  # re-exported
from lungsearch.evaluate.threshold import decide
from lungsearch.evaluate.threshold import EPS, THRESHOLD_RULES, choose_threshold, fit_temperature  # re-exported


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
