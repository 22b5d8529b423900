"""train: fit keeps the best epoch and says which, a second phase unfreezes the backbone, and class weights from the counts."""

from __future__ import annotations

import math

import numpy as np
import optuna
import pytest
from sklearn.utils.class_weight import compute_class_weight

import spaces
from lungsearch import train
from lungsearch.data import Arrays, SearchData
from lungsearch.train import class_weights

CNN = {"conv_blocks": 2, "kernel_size": 3, "batch_norm": False, "pooling": "max", "activation": "relu",
       "filters_b0": 8, "filters_b1": 8, "dropout_b0": 0.0, "dropout_b1": 0.0, "head": "gap", "dropout": 0.0,
       "dense_units": 16, "optimizer": "adam", "learning_rate": 1e-2, "augment": "on", "normalize": "none",
       "aug_translate": 0.0, "aug_zoom": 0.0, "aug_rotate": 0.0, "aug_contrast": 0.0}


def _data(side=24, n=16, seed=0):
    rng = np.random.default_rng(seed)
    y = np.array([0, 1] * (n // 2))
    x = rng.normal(90, 20, (n, side, side, 1)) + 80 * y[:, None, None, None] * rng.uniform(0, 1, (n, 1, 1, 1))
    x = np.clip(x, 0, 255).astype("uint8")
    return SearchData(("NORMAL", "PNEUMONIA"), train=Arrays(x[: n // 2 * 2 - 8], y[:-8]), val=Arrays(x[-8:], y[-8:]))


@pytest.mark.parametrize("monitor", ["val_loss", "val_auc"])
def test_the_model_after_fit_is_the_best_epoch(monitor):
    import keras

    keras.utils.set_random_seed(3)
    data = _data()
    model = spaces.get_space("cnn").build(optuna.trial.FixedTrial(CNN), input_shape=(24, 24, 1), num_classes=2)
    result = train.fit(model, data, epochs=4, batch_size=4, monitor=monitor)
    history = [v if math.isfinite(v) else np.nan for v in result.history[monitor]]
    best = int(np.nanargmin(history) if monitor == "val_loss" else np.nanargmax(history))
    assert result.final_epoch == best
    now = train.validation_metrics(train.predict_proba(model, data.val), data.val.y)
    assert now["val_loss"] == pytest.approx(result.history["val_loss"][best], rel=1e-4)  # the weights are that epoch's


def test_second_phase_unfreezes_the_backbone_at_a_lower_rate():
    import keras

    data = _data(side=32)
    params = {"trainable_blocks": 0, "head_batch_norm": False, "head_dropout": 0.0, "head_units": 32,
              "optimizer": "adam", "learning_rate": 1e-3, "fine_tune": True, "fine_tune_lr_factor": 0.1, "batch_size": 8}
    space = spaces.get_space("mobilenet")
    trial = optuna.trial.FixedTrial(params)
    model = space.build(trial, input_shape=(32, 32, 1), num_classes=2, weights="random")
    options = space.fit_options(trial)
    backbone = model.get_layer("mobilenetv2_1.00_32")
    norm = lambda layer: isinstance(layer, keras.layers.BatchNormalization)  # noqa: E731
    assert not any(layer.trainable and layer.weights for layer in backbone.layers if not norm(layer))
    bn_before = [layer.trainable for layer in backbone.layers if norm(layer)]
    result = train.fit(model, data, epochs=2, **options)
    assert result.epochs == 2
    assert all(layer.trainable for layer in backbone.layers if layer.weights and not norm(layer))
    assert [layer.trainable for layer in backbone.layers if norm(layer)] == bn_before
    assert float(model.optimizer.learning_rate) == pytest.approx(1e-4)


def test_the_second_phase_starts_at_its_share_of_the_epochs_leaving_each_phase_one_at_least():
    half = {"start": 0.5, "learning_rate": 1e-4}
    assert [train.phase_split(e, half) for e in (1, 2, 3, 4, 10)] == [1, 1, 2, 2, 5]
    assert train.phase_split(10, {"start": 0.95, "learning_rate": 1e-4}) == 9  # never the whole fit
    assert train.phase_split(10, {"start": 0.01, "learning_rate": 1e-4}) == 1
    assert train.phase_split(10, None) == 10  # no second phase: every epoch is the first's


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
