"""What `best` exports from a refined study: the ensemble selection on out-of-fold predictions."""

import numpy as np

from lungsearch.export.refined import caruana


def test_ensemble_selection_adds_with_replacement_only_what_raises_the_score():
    from lungsearch.evaluate.metrics import roc_auc

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)

    def model(noise, seed):
        s = y + np.random.default_rng(seed).normal(0, noise, len(y))
        p = 1 / (1 + np.exp(-s))
        return np.stack([1 - p, p], 1)

    oofs = {1: model(0.8, 1), 2: model(0.8, 2), 3: model(5.0, 3)}  # two good models with independent errors, one useless
    counts = caruana(oofs, y, lambda yy, p: roc_auc(yy, p))
    assert 3 not in counts and set(counts) == {1, 2}
    alone = caruana({1: oofs[1], 3: oofs[3]}, y, lambda yy, p: roc_auc(yy, p))
    assert alone == {1: 1}
