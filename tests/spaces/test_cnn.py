"""The cnn space: invalid depth for the input prunes; augmentation inside the model; FLOPs."""

from __future__ import annotations

import numpy as np
import optuna
import pytest

import spaces
from spaces.common import InvalidCombination
from spaces.flops import count_flops

BASE = {"conv_blocks": 2, "kernel_size": 3, "batch_norm": False, "pooling": "avg", "activation": "elu",
        "filters_b0": 8, "filters_b1": 8, "dropout_b0": 0.0, "dropout_b1": 0.1, "head": "flatten", "dropout": 0.0,
        "dense_units": 16, "optimizer": "sgd", "learning_rate": 1e-3, "augment": "on", "normalize": "none",
        "aug_translate": 0.1, "aug_zoom": 0.1, "aug_rotate": 0.05, "aug_contrast": 0.2}


def test_too_many_poolings_for_the_input_prunes_with_the_reason():
    deep = {**BASE, "conv_blocks": 5, **{f"filters_b{i}": 8 for i in range(5)}, **{f"dropout_b{i}": 0.0 for i in range(5)}}
    with pytest.raises(optuna.TrialPruned, match="5 pooling blocks shrink a 32 px input to 1x1; at most 4 blocks"):
        spaces.get_space("cnn").build(optuna.trial.FixedTrial(deep), input_shape=(32, 32, 1), num_classes=2)
    assert issubclass(InvalidCombination, optuna.TrialPruned)
    assert spaces.get_space("cnn").build(optuna.trial.FixedTrial(deep), input_shape=(64, 64, 1), num_classes=2)


def test_a_flatten_head_too_large_for_the_input_prunes_with_the_reason_before_allocating():
    from spaces.common import MAX_PARAMS

    wide = {**BASE, "conv_blocks": 1, "filters_b0": 128, "dropout_b0": 0.0, "dense_units": 256}
    for key in ("filters_b1", "dropout_b1"):
        wide.pop(key)
    # 512 px, one pooling: 256*256*128 = 8.4M inputs to 256 units, 2,147M parameters (34 GB with Adam)
    with pytest.raises(InvalidCombination, match=r"flatten head's dense layer \(8,388,608 inputs\) has 2,147M parameters, "
                                                 r"over the 200M limit .*--image-size"):
        spaces.get_space("cnn").build(optuna.trial.FixedTrial(wide), input_shape=(512, 512, 1), num_classes=2)
    assert (128 // 2) ** 2 * 128 * 256 < MAX_PARAMS  # the largest flatten head at 128 px still fits
    gap = spaces.get_space("cnn").build(optuna.trial.FixedTrial({**wide, "head": "gap"}), input_shape=(512, 512, 1), num_classes=2)
    assert gap.count_params() < 1e6


def test_augmentation_layers_are_inside_and_quiet_at_inference():
    model = spaces.get_space("cnn").build(optuna.trial.FixedTrial(BASE), input_shape=(32, 32, 1), num_classes=2)
    names = {layer.name for layer in model.layers}
    assert {"aug_affine", "aug_contrast"} <= names
    assert "aug_hflip" not in names  # X-rays keep their orientation unless --hflip
    x = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 1)).astype("float32")
    np.testing.assert_array_equal(model.predict(x, verbose=0), model.predict(x, verbose=0))
    off = spaces.get_space("cnn").build(
        optuna.trial.FixedTrial({**BASE, **{k: 0.0 for k in BASE if k.startswith("aug_")}}), input_shape=(32, 32, 1), num_classes=2)
    assert not any(layer.name.startswith("aug_") for layer in off.layers)
    switched = optuna.trial.FixedTrial({k: v for k, v in {**BASE, "augment": "off"}.items() if not k.startswith("aug_")})
    plain = spaces.get_space("cnn").build(switched, input_shape=(32, 32, 1), num_classes=2)
    assert not any(layer.name.startswith("aug_") for layer in plain.layers)  # off: no strength is even asked for


def test_hflip_fact_adds_a_flip_layer():
    model = spaces.get_space("cnn").build(optuna.trial.FixedTrial(BASE), input_shape=(32, 32, 1), num_classes=2, hflip=True)
    assert model.get_layer("aug_hflip").mode == "horizontal"


def test_every_space_ignores_facts_it_does_not_use():
    model = spaces.get_space("dense").build(
        optuna.trial.FixedTrial({"dense_layers": 1, "units_l0": 16, "activation": "relu", "dropout": 0.0,
                                 "optimizer": "adam", "learning_rate": 1e-3}),
        input_shape=(24, 24, 1), num_classes=3, hflip=True, weights="/no/such/file", class_weights={0: 1.0})
    assert model.output_shape == (None, 3)


def test_flops_count_conv_and_dense_multiply_adds():
    model = spaces.get_space("cnn").build(optuna.trial.FixedTrial(BASE), input_shape=(32, 32, 1), num_classes=2)
    conv0 = 2 * 32 * 32 * 9 * 1 * 8
    conv1 = 2 * 16 * 16 * 9 * 8 * 8
    dense = 2 * (8 * 8 * 8) * 16 + 2 * 16 * 2  # flatten head: 8x8x8 after two poolings
    assert count_flops(model) == conv0 + conv1 + dense


def test_random_affine_resamples_the_whole_batch_and_keeps_a_plain_shift_exact():
    from spaces import augment

    still = augment.random_affine(seed=0)
    x = np.random.default_rng(0).integers(0, 256, (5, 12, 16, 2)).astype("float32")
    np.testing.assert_array_equal(np.asarray(still(x, training=True)), x)  # no strength: the identity
    moved = np.asarray(augment.random_affine(translate=0.2, zoom=0.1, rotate=0.05, seed=0)(x, training=True))
    assert moved.shape == x.shape and not np.allclose(moved, x)
    assert not np.allclose(moved[0], moved[1] - x[1] + x[0])  # each image its own transform
    np.testing.assert_array_equal(np.asarray(augment.random_affine(translate=0.2, seed=0)(x, training=False)), x)
    square = np.zeros((1, 32, 32, 1), "float32")
    square[0, 10:20, 10:20, 0] = 1.0
    shifted = np.asarray(augment.random_affine(translate=0.1, seed=3)(square, training=True))
    assert abs(shifted.sum() - 100.0) < 1e-3  # a shift that keeps the square inside moves it, mass and all


def test_exported_inference_model_has_no_augmentation_and_predicts_the_same():
    from spaces import augment

    model = spaces.get_space("cnn").build(optuna.trial.FixedTrial(BASE), input_shape=(32, 32, 1), num_classes=2)
    plain = augment.inference_model(model)
    assert not any(layer.name.startswith("aug_") for layer in plain.layers)
    x = np.random.default_rng(1).integers(0, 256, (4, 32, 32, 1)).astype("float32")
    np.testing.assert_allclose(plain.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


def test_image_normalisation_makes_predictions_blind_to_brightness_and_contrast():
    import keras

    keras.utils.set_random_seed(0)
    plain = {k: v for k, v in BASE.items() if not k.startswith("aug_")} | {"augment": "off"}
    model = spaces.get_space("cnn").build(optuna.trial.FixedTrial({**plain, "normalize": "image"}), input_shape=(32, 32, 1),
                                          num_classes=2)
    assert "standardize" in {layer.name for layer in model.layers}
    x = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 1)).astype("float32")
    darker = 0.7 * x + 10  # a darker, flatter exposure of the same images (chest_xray's test split differs so)
    # equal up to LayerNormalization's epsilon (1e-3 against a variance of ~0.04 on the 0..1 scale)
    assert np.abs(model.predict(x, verbose=0) - model.predict(darker, verbose=0)).max() < 2e-3
    raw = spaces.get_space("cnn").build(optuna.trial.FixedTrial(plain), input_shape=(32, 32, 1), num_classes=2)
    assert "standardize" not in {layer.name for layer in raw.layers}
    assert np.abs(raw.predict(x, verbose=0) - raw.predict(darker, verbose=0)).max() > 1e-2  # without it they move


def test_the_second_warm_start_is_the_hand_cnn_standardised():
    first, second = spaces.get_space("cnn").warm_starts
    assert (first["name"], second["name"]) == ("hand-cnn", "hand-cnn-standardized")
    assert second["params"] == {**first["params"], "normalize": "image"} and first["params"]["normalize"] == "none"
