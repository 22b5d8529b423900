"""Class weights from the training counts (lungsearch.train.class_weights), checked against scikit-learn."""

from __future__ import annotations

import numpy as np
from sklearn.utils.class_weight import compute_class_weight

from lungsearch.train import class_weights


def test_imbalanced_counts_give_sklearn_balanced_weights():
    y = np.array([0] * 10 + [1] * 30 + [2] * 20)
    w = class_weights(y, 3)
    expected = compute_class_weight("balanced", classes=np.arange(3), y=y)
    np.testing.assert_allclose([w[k] for k in range(3)], expected)
    counts = np.bincount(y)
    np.testing.assert_allclose([w[k] * counts[k] for k in range(3)], len(y) / 3)  # every class weighs the same in the loss


def test_balanced_counts_need_no_weights():
    assert class_weights(np.array([0] * 10 + [1] * 11), 2) is None


def test_chest_xray_like_ratio():
    w = class_weights(np.array([0] * 1150 + [1] * 3321), 2)
    assert w[0] > 1 > w[1] and abs(w[0] / w[1] - 3321 / 1150) < 1e-9
