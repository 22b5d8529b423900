"""What `best` exports from a refined study: the ensemble selection on out-of-fold predictions."""

import numpy as np

import pytest

from lungsearch.evaluate.calibration import apply_platt, calibrate, fit_platt
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


def test_fold_calibration_puts_fold_models_of_different_scales_back_on_one():
    """Two fold models that rank alike, one of them shifted towards the disease: pooled, the shift costs AUC and moves any
    threshold; each calibrated on its own held-out images, the pool ranks as each fold does."""
    from lungsearch.evaluate.metrics import roc_auc

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    score = 3.0 * (2 * y - 1) + rng.normal(0, 1.5, len(y))
    held = [np.arange(0, 200), np.arange(200, 400)]
    logits = score.copy()
    logits[held[1]] = 2.0 * score[held[1]] + 6.0  # the second fold model: sharper and shifted
    p = 1 / (1 + np.exp(-logits))
    probs = np.stack([1 - p, p], 1)
    fold_auc = [roc_auc(y[h], probs[h]) for h in held]
    calibrated, platt = calibrate(probs, y, held, positive=1)
    assert roc_auc(y, probs) < min(fold_auc) - 0.01 and roc_auc(y, calibrated) >= min(fold_auc) - 0.005
    (a0, b0), (a1, b1) = platt
    assert a1 < a0 and b1 < -2  # the sharper, shifted model is flattened and moved back
    np.testing.assert_allclose(calibrated.sum(1), 1.0)
    # class order: with the disease as class 0, the same calibration acts on column 0
    flipped, platt0 = calibrate(probs[:, ::-1], 1 - y, held, positive=0)
    np.testing.assert_allclose(flipped[:, ::-1], calibrated, atol=1e-6)
    assert fit_platt(np.ones(5), np.linspace(0.1, 0.9, 5)) == (1.0, 0.0)  # one class only: left as it is
    np.testing.assert_allclose(apply_platt(probs[:3], 1.0, 0.0, 1), probs[:3], atol=1e-6)


def test_a_calibrated_member_is_plain_keras_and_scores_as_the_calibration_says(tmp_path):
    import keras

    from lungsearch.export.base import ExportError
    from lungsearch.export.refined import calibrated_member

    inputs = keras.Input((4,))
    x = keras.layers.Dense(3, activation="relu")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax", name="probabilities")(x))
    xs = np.random.default_rng(0).normal(size=(6, 4)).astype("float32")
    for positive in (0, 1):
        member = calibrated_member(model, 0.7, -1.3, positive)
        member.save(tmp_path / f"m{positive}.keras")
        loaded = keras.models.load_model(tmp_path / f"m{positive}.keras", compile=False)  # no custom object needed
        want = apply_platt(np.asarray(model.predict(xs, verbose=0), dtype=np.float64), 0.7, -1.3, positive)
        np.testing.assert_allclose(np.asarray(loaded.predict(xs, verbose=0)), want, atol=1e-5)
    three = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x))
    with pytest.raises(ExportError, match="--fold-calibration off"):
        calibrated_member(three, 1.0, 0.0, 1)
