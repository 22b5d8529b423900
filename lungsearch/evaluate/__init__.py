"""Honest evaluation: a threshold chosen on validation, metrics with bootstrap CIs on test.

Every metric is scikit-learn's.  The decision threshold of a binary model is
chosen on validation probabilities only (Youden's J by default, or the most
specific threshold that keeps validation sensitivity at a floor) and then
applied unchanged to the test split.  Confidence intervals are percentile
bootstrap intervals over test images, with the threshold held fixed; where a
proportion is 0/n or n/n the bootstrap collapses to that point (every resample
is 0/n too), so there the interval is Wilson's score interval, and each metric
says which method gave its interval (``ci_method``).

One module per job:

- :mod:`lungsearch.evaluate.metrics`: :class:`EvaluationError`, the positive class, ROC AUC, the point metrics
- :mod:`lungsearch.evaluate.ci`: bootstrap and Wilson intervals
- :mod:`lungsearch.evaluate.threshold`: the threshold chosen on validation, and :func:`decide`
- :mod:`lungsearch.evaluate.calibration`: the logit, and Platt scaling of each fold model
- :mod:`lungsearch.evaluate.files`: evaluation.json, evaluation.md, the one-line summary
- :mod:`lungsearch.evaluate.plots`: confusion matrix, ROC and training-curve PNGs
- :mod:`lungsearch.evaluate.evaluation`: :func:`evaluate`, which puts them together
- :mod:`lungsearch.evaluate.compare`: two models on the same images, their AUCs and the paired difference

Callers use ``lungsearch.evaluate.<name>`` for the names below; a test that
monkeypatches a module-level name patches the module that holds it.
"""

from lungsearch.evaluate.ci import CI_LEVEL, N_BOOTSTRAP, bootstrap_ci, proportions, wilson_interval
from lungsearch.evaluate.evaluation import evaluate
from lungsearch.evaluate.files import SUMMARY_KEYS, markdown, summary_line, write_files
from lungsearch.evaluate.metrics import NEGATIVE_NAMES, EvaluationError, point_metrics, positive_class, roc_auc
from lungsearch.evaluate.plots import training_curves_png
from lungsearch.evaluate.threshold import EPS, THRESHOLD_RULES, choose_threshold, decide, fit_temperature

__all__ = [
    "CI_LEVEL", "EPS", "NEGATIVE_NAMES", "N_BOOTSTRAP", "SUMMARY_KEYS", "THRESHOLD_RULES", "EvaluationError",
    "bootstrap_ci", "choose_threshold", "decide", "evaluate", "fit_temperature", "markdown", "point_metrics", "positive_class",
    "proportions", "roc_auc", "summary_line", "training_curves_png", "wilson_interval", "write_files",
]
