"""Per-image standardisation (a plain Keras layer) and random intensity (training only, left out of exports)."""

from __future__ import annotations

import numpy as np

from spaces import augment


def _images():
    rng = np.random.default_rng(0)
    return np.clip(rng.normal(100, 30, (4, 16, 16, 1)), 0, 255).astype("float32")


def test_standardize_gives_each_image_zero_mean_unit_std_and_ignores_brightness():
    x = _images()
    layer = augment.standardize_layer()
    y = np.asarray(layer(x))
    np.testing.assert_allclose(y.mean(axis=(1, 2, 3)), 0, atol=1e-4)
    np.testing.assert_allclose(y.std(axis=(1, 2, 3)), 1, atol=1e-3)
    darker = np.asarray(layer(0.6 * x))  # the same images, darker and flatter: the same input to the network
    np.testing.assert_allclose(darker, y, atol=1e-2)
    assert not layer.trainable_weights


def test_intensity_changes_images_while_training_only_and_exports_without_it(tmp_path):
    import keras

    x = _images()
    inputs = keras.Input((16, 16, 1))
    h = augment.intensity_layer(0.5, seed=1)(inputs)
    h = augment.standardize_layer()(keras.layers.Rescaling(1 / 255)(h))
    outputs = keras.layers.Dense(2, activation="softmax")(keras.layers.Flatten()(h))
    model = keras.Model(inputs, outputs)
    layer = model.get_layer("aug_intensity")
    trained = np.asarray(layer(x, training=True))
    assert trained.shape == x.shape and 0 <= trained.min() and trained.max() <= 255
    assert np.abs(trained - x).mean() > 1  # gamma, brightness and noise moved the pixels
    np.testing.assert_array_equal(np.asarray(layer(x, training=False)), x)
    plain = augment.inference_model(model)
    assert "aug_intensity" not in {lyr.name for lyr in plain.layers}
    np.testing.assert_allclose(plain.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)
    plain.save(tmp_path / "m.keras")
    np.testing.assert_allclose(keras.models.load_model(tmp_path / "m.keras").predict(x, verbose=0),
                               model.predict(x, verbose=0), atol=1e-6)
