"""evaluate(): metrics against hand-checked cases, with CIs around their point."""

import numpy as np
import pytest

from lungsearch import evaluate


def test_binary_metrics_match_a_hand_count():
    # 4 normal (0), 6 disease (1); threshold 0.5 on p(disease).
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1, 1])
    p1 = np.array([0.1, 0.2, 0.6, 0.3, 0.9, 0.8, 0.4, 0.7, 0.55, 0.2])
    probs = np.stack([1 - p1, p1], axis=1)
    ev = evaluate.evaluate(y, probs, ("NORMAL", "PNEUMONIA"), threshold=0.5, positive=1, n_bootstrap=200)
    m = {k: v["value"] for k, v in ev["metrics"].items()}
    # predictions: 0 0 1 0 | 1 1 0 1 1 0 -> TN=3 FP=1 FN=2 TP=4
    assert ev["confusion_matrix"] == [[3, 1], [2, 4]]
    assert m["accuracy"] == pytest.approx(7 / 10)
    assert m["sensitivity"] == pytest.approx(4 / 6)
    assert m["specificity"] == pytest.approx(3 / 4)
    assert m["balanced_accuracy"] == pytest.approx((4 / 6 + 3 / 4) / 2)
    assert m["precision/PNEUMONIA"] == pytest.approx(4 / 5)
    assert m["recall/NORMAL"] == pytest.approx(3 / 4)
    assert m["f1/PNEUMONIA"] == pytest.approx(2 * 0.8 * (4 / 6) / (0.8 + 4 / 6))
    # AUC by counting pairs: disease scores above normal scores, of 24 pairs.
    pairs = sum((a > b) + 0.5 * (a == b) for a in p1[y == 1] for b in p1[y == 0])
    assert m["roc_auc"] == pytest.approx(pairs / 24)


def test_every_interval_contains_its_point_estimate():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 120)
    p1 = np.clip(0.3 * y + rng.uniform(0, 0.7, 120), 0, 1)
    probs = np.stack([1 - p1, p1], axis=1)
    ev = evaluate.evaluate(y, probs, ("NORMAL", "PNEUMONIA"), threshold=0.5, positive=1, n_bootstrap=300)
    for key, m in ev["metrics"].items():
        lo, hi = m["ci95"]
        assert lo <= m["value"] <= hi, key
        assert hi - lo > 0, key  # a real spread, not a copy of the point


def test_three_classes_use_argmax_and_ovr_auc():
    y = np.array([0, 1, 2, 0, 1, 2])
    probs = np.array([[.8, .1, .1], [.1, .7, .2], [.2, .2, .6], [.3, .6, .1], [.2, .5, .3], [.1, .3, .6]])
    ev = evaluate.evaluate(y, probs, ("Covid", "Normal", "Viral"), threshold=None, positive=None, n_bootstrap=50)
    assert "sensitivity" not in ev["metrics"]
    assert ev["metrics"]["accuracy"]["value"] == pytest.approx(5 / 6)
    assert ev["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [0, 0, 2]]
    # one-vs-rest by hand: class 0 and 2 separate fully; class 1's 0.5 loses to the normal-looking 0.6: 7/8.
    assert ev["metrics"]["roc_auc"]["value"] == pytest.approx((1 + 7 / 8 + 1) / 3)
