"""The seeds' base model: flatten the image, then 1-3 dense layers."""

from __future__ import annotations

from spaces.common import check_facts, check_param_count, compile_model

NAME = "dense"
DESCRIPTION = "dense baseline: flatten, 1-3 dense layers (units, activation, dropout), adam/sgd, learning rate"
IMAGE_SIZE = 64  # default input side in pixels; 64x64 flattened is 4096 inputs
COLOR_MODE = "grayscale"

# Known-good starting point, enqueued as the first trial of a new study (--no-warm-start: none):
# a plain one-hidden-layer network as a student writes it first (relu 128, dropout 0.2, adam 1e-3, batch 32).
WARM_STARTS = [
    {
        "name": "one-hidden-layer",
        "params": {"dense_layers": 1, "units_l0": 128, "activation": "relu", "dropout": 0.2, "optimizer": "adam",
                   "learning_rate": 1e-3, "batch_size": 32},
    },
]


def suggest(trial) -> dict:
    """Every choice of the space, suggested through ``trial``."""
    p = {"dense_layers": trial.suggest_int("dense_layers", 1, 3)}
    p["units"] = [trial.suggest_int(f"units_l{i}", 16, 512, log=True) for i in range(p["dense_layers"])]
    p["activation"] = trial.suggest_categorical("activation", ["relu", "elu"])
    p["dropout"] = trial.suggest_float("dropout", 0.0, 0.5)
    p["optimizer"] = trial.suggest_categorical("optimizer", ["adam", "sgd"])
    p["learning_rate"] = trial.suggest_float("learning_rate", 1e-4, 1e-2, log=True)
    return p


def fit_options(trial) -> dict:
    return {"batch_size": trial.suggest_int("batch_size", 16, 128, log=True)}


def build(trial, *, input_shape, num_classes, **_):
    """A compiled dense classifier on raw uint8 pixels (rescaled inside the model)."""
    height, width, channels = check_facts(input_shape, num_classes)
    p = suggest(trial)
    check_param_count(height * width * channels * p["units"][0], f"the first dense layer ({height * width * channels:,} inputs)")

    import keras
    from keras import layers

    inputs = keras.Input(shape=(height, width, channels), name="pixels")
    x = layers.Rescaling(1.0 / 255.0, name="rescale")(inputs)
    x = layers.Flatten(name="flatten")(x)
    for i, units in enumerate(p["units"]):
        x = layers.Dense(units, activation=p["activation"], name=f"dense{i}")(x)
        x = layers.Dropout(p["dropout"], name=f"dropout{i}")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="probabilities")(x)
    model = keras.Model(inputs, outputs, name="dense")
    return compile_model(model, p["optimizer"], p["learning_rate"])
