"""95% intervals of the point metrics: the bootstrap, and Wilson's where it collapses (a proportion of 0 or n)."""

from __future__ import annotations

import numpy as np
import pytest

from lungsearch import evaluate

NAMES = ("NORMAL", "PNEUMONIA")


def test_wilson_interval_matches_the_textbook_values():
    assert evaluate.wilson_interval(0, 10) == pytest.approx([0.0, 0.2775], abs=1e-4)
    assert evaluate.wilson_interval(10, 10) == pytest.approx([0.7225, 1.0], abs=1e-4)
    assert evaluate.wilson_interval(5, 10) == pytest.approx([0.2366, 0.7634], abs=1e-4)


def everything_positive():
    """10 NORMAL and 20 PNEUMONIA images, all called PNEUMONIA: specificity 0/10, sensitivity 20/20 (test_files shows it too)."""
    y = np.array([0] * 10 + [1] * 20)
    p = np.linspace(0.6, 0.95, 30)
    return y, np.stack([1 - p, p], axis=1)


def test_a_proportion_of_0_or_n_gets_a_wilson_interval_and_says_so():
    y, probs = everything_positive()
    ev = evaluate.evaluate(y, probs, NAMES, threshold=0.5, positive=1, n_bootstrap=50)
    m = ev["metrics"]
    assert m["specificity"]["value"] == 0.0 and m["specificity"]["ci_method"] == "wilson"
    assert m["specificity"]["ci95"] == pytest.approx([0.0, 0.2775], abs=1e-4)  # the bootstrap said 0.000-0.000
    assert m["sensitivity"]["ci_method"] == "wilson" and m["sensitivity"]["ci95"][0] < 1.0
    assert m["accuracy"]["ci_method"] == "bootstrap"  # 20/30: the bootstrap has spread
    assert m["roc_auc"]["ci_method"] == "bootstrap"
    assert "specificity 0.000 [0.000, 0.278] (Wilson)" in evaluate.summary_line(ev)
