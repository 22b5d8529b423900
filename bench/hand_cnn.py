"""The seeds' hand-written CNN as a lungsearch space file: the baseline of ``bench.vs_hand``.

No parameter is tuned: 3 conv blocks of 32/64/128 filters (3x3, relu, 2x2 max
pooling), flatten, dense 128 relu, dropout 0.5, softmax; RMSprop at 1e-3,
batch 32, no augmentation.  Trained through ``lungsearch run --space
bench/hand_cnn.py --trials 1`` it gets what every trial gets (the
patient-grouped validation split, class weights, the plateau schedule and
early stopping keeping the best epoch) and ``best --export`` evaluates it as
it evaluates a search's pick, so the two sides differ only in the search.

``$LUNGSEARCH_HAND_VARIANT`` (comma-separated, for ``bench.hand_variants``)
adds one change at a time to the same network: ``standardize`` (per-image
intensity standardisation after rescaling), ``intensity`` (random gamma,
brightness and noise at strength 0.5 while training), ``affine`` (random
shift 5%, zoom 10%, rotation 7 degrees while training).
"""

from __future__ import annotations

import os

NAME = "hand_cnn"
IMAGE_SIZE = 64
COLOR_MODE = "grayscale"


def fit_options(trial) -> dict:
    return {"batch_size": 32}


def build(trial, *, input_shape, num_classes, **_):
    import keras
    from keras import layers

    from spaces import augment

    variant = {v.strip() for v in os.environ.get("LUNGSEARCH_HAND_VARIANT", "").split(",") if v.strip()}
    unknown = variant - {"standardize", "intensity", "affine"}
    if unknown:
        raise ValueError(f"unknown hand CNN variant(s) {', '.join(sorted(unknown))}")
    inputs = keras.Input(shape=tuple(input_shape), name="pixels")
    x = inputs
    if "affine" in variant:
        x = augment.random_affine(translate=0.05, zoom=0.1, rotate=0.02, name="aug_affine")(x)
    if "intensity" in variant:
        x = augment.intensity_layer(0.5)(x)
    x = layers.Rescaling(1.0 / 255.0, name="rescale")(x)
    if "standardize" in variant:
        x = augment.standardize_layer()(x)
    for i, filters in enumerate((32, 64, 128)):
        x = layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"conv{i}")(x)
        x = layers.MaxPooling2D(2, name=f"pool{i}")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(128, activation="relu", name="dense")(x)
    x = layers.Dropout(0.5, name="dropout")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="probabilities")(x)
    model = keras.Model(inputs, outputs, name="hand_cnn")
    model.compile(optimizer=keras.optimizers.RMSprop(1e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model
