import numpy as np

from lungsearch import demo


def test_demo_is_deterministic_and_imbalanced() -> None:
    x1, y1 = demo.make_split("train", 32)
    x2, y2 = demo.make_split("train", 32)
    assert x1.dtype == np.uint8 and x1.shape == (600, 32, 32)
    assert np.array_equal(x1, x2) and np.array_equal(y1, y2)
    assert np.bincount(y1).tolist() == list(demo.COUNTS["train"])


def test_demo_is_learnable_but_not_trivial() -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    xtr, ytr = demo.make_split("train", 32)
    xte, yte = demo.make_split("test", 32)
    clf = LogisticRegression(max_iter=2000, C=0.01).fit(xtr.reshape(len(xtr), -1) / 255.0, ytr)
    auc = roc_auc_score(yte, clf.predict_proba(xte.reshape(len(xte), -1) / 255.0)[:, 1])
    # a linear model on raw pixels does better than chance but is far from perfect
    assert 0.55 < auc < 0.97, auc
