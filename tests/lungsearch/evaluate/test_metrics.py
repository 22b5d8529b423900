"""Point metrics and the disease class: which class is positive, and an AUC that does not depend on the order of the classes."""

import numpy as np
import pytest

from lungsearch import evaluate


def test_positive_class_is_the_one_not_called_normal():
    assert evaluate.positive_class(("NORMAL", "PNEUMONIA")) == 1
    assert evaluate.positive_class(("COVID", "Normal")) == 0
    assert evaluate.positive_class(("a", "b")) == 1
    assert evaluate.positive_class(("Covid", "Normal", "Viral Pneumonia")) is None


# A Covid/Normal folder puts the disease class at index 0; NORMAL/PNEUMONIA at 1.
# Every AUC must be the same figure whichever index the disease class sorts to.

def _disease_scores(seed=3, n=80):
    rng = np.random.default_rng(seed)
    disease = rng.integers(0, 2, n).astype(bool)
    score = np.clip(0.35 * disease + rng.uniform(0, 0.65, n), 0, 1)  # p(disease), informative but imperfect
    pairs = sum((a > b) + 0.5 * (a == b) for a in score[disease] for b in score[~disease])
    return disease, score, pairs / (disease.sum() * (~disease).sum())


@pytest.mark.parametrize("names", [("NORMAL", "PNEUMONIA"), ("Covid", "Normal")])
def test_auc_is_the_disease_auc_whichever_index_the_disease_class_has(names):
    disease, score, truth = _disease_scores()
    positive = evaluate.positive_class(names)
    y = np.where(disease, positive, 1 - positive)
    probs = np.zeros((len(y), 2))
    probs[:, positive], probs[:, 1 - positive] = score, 1 - score
    assert truth > 0.7  # the scores do carry the disease, so an inverted AUC would show

    assert evaluate.roc_auc(y, probs, positive) == pytest.approx(truth)
    ev = evaluate.evaluate(y, probs, names, threshold=0.5, positive=positive, n_bootstrap=100)
    assert ev["metrics"]["roc_auc"]["value"] == pytest.approx(truth)
    lo, hi = ev["metrics"]["roc_auc"]["ci95"]
    assert lo <= truth <= hi
    # the decision at 0.5 on p(disease) agrees with the scores, whatever the order
    assert ev["metrics"]["sensitivity"]["value"] == pytest.approx(np.mean(score[disease] >= 0.5))

    from lungsearch.train import validation_metrics

    assert validation_metrics(probs, y)["val_auc"] == pytest.approx(truth)  # the search's objective too


def test_three_class_auc_does_not_depend_on_the_order_of_the_classes():
    rng = np.random.default_rng(5)
    y = np.repeat([0, 1, 2], 20)
    logits = rng.normal(size=(60, 3)) + 1.5 * np.eye(3)[y]
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    order = [2, 0, 1]  # the same images with the classes renumbered
    remap = np.argsort(order)
    a = evaluate.roc_auc(y, probs)
    b = evaluate.roc_auc(remap[y], probs[:, order])
    assert a == pytest.approx(b)
    assert 0.6 < a < 1.0
