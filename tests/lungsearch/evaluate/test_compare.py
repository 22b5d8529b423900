"""The paired bootstrap of an AUC difference, and the folds of a refit."""

import numpy as np
import pytest

from lungsearch.evaluate.compare import bootstrap_auc, paired_bootstrap_auc


def _scores(seed=0, n=400):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    good = y + rng.normal(0, 0.6, n)  # separates well
    noisy = y + rng.normal(0, 1.5, n)  # separates badly
    return y, good, noisy


def test_a_clearly_better_model_gets_a_small_p_and_an_interval_above_zero():
    y, good, noisy = _scores()
    out = paired_bootstrap_auc(y, good, noisy, n=300)
    assert out["difference"] > 0.1 and out["ci95"][0] > 0 and out["p"] < 0.01
    swapped = paired_bootstrap_auc(y, noisy, good, n=300)
    assert swapped["difference"] == pytest.approx(-out["difference"]) and swapped["ci95"][1] < 0


def test_a_model_against_a_near_copy_of_itself_is_not_called_better():
    y, good, _ = _scores()
    copy = good + np.random.default_rng(1).normal(0, 0.01, len(good))
    out = paired_bootstrap_auc(y, good, copy, n=300)
    assert out["ci95"][0] <= 0 <= out["ci95"][1] and out["p"] > 0.05


def test_pairing_narrows_the_interval_of_two_correlated_models():
    """Two models that err on the same images: the paired interval of the difference is narrower than the two CIs suggest."""
    y, good, _ = _scores(2)
    other = good + np.random.default_rng(3).normal(0, 0.2, len(good))
    a, b = bootstrap_auc(y, good, n=300), bootstrap_auc(y, other, n=300)
    paired = paired_bootstrap_auc(y, good, other, n=300)
    assert paired["ci95"][1] - paired["ci95"][0] < min(a[1] - a[0], b[1] - b[0])


def test_probabilities_are_scored_for_the_positive_class_whatever_its_index():
    """Class order: a Covid/Normal folder puts the disease at index 0; the AUC is that class's either way."""
    y, good, noisy = _scores(4)
    as_probs = lambda s: np.stack([1 - 1 / (1 + np.exp(-s)), 1 / (1 + np.exp(-s))], 1)  # noqa: E731
    forward = paired_bootstrap_auc(y, as_probs(good), as_probs(noisy), n=100)
    flipped = paired_bootstrap_auc(1 - y, as_probs(good)[:, ::-1], as_probs(noisy)[:, ::-1], positive=0, n=100)
    assert forward["difference"] == pytest.approx(flipped["difference"])
    assert forward["difference"] == pytest.approx(paired_bootstrap_auc(y, good, noisy, n=10)["difference"])


def test_scores_of_different_images_are_refused():
    y, good, noisy = _scores()
    with pytest.raises(ValueError, match="different images"):
        paired_bootstrap_auc(y, good, noisy[:-1])
