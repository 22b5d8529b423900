"""A test-only space: a tiny, fast model that can be told to fail on chosen trials.

``LUNGSEARCH_FAULTS`` (environment) maps trial numbers to faults, e.g.
``"nan:1,3;oom:2;slow:0"``: ``nan`` makes the loss NaN (the model outputs NaN),
``oom`` raises MemoryError inside the training step, ``slow`` sleeps
``LUNGSEARCH_SLOW_SECONDS`` (default 30) per training batch, so a test can kill
the process mid-trial; it creates the file ``LUNGSEARCH_SLOW_MARKER`` names, if
any, when that trial's fit starts, so the test knows when.
"""

from __future__ import annotations

import os
import time

NAME = "faulty"
IMAGE_SIZE = 24
COLOR_MODE = "grayscale"


def faults() -> dict[int, str]:
    out = {}
    for part in filter(None, os.environ.get("LUNGSEARCH_FAULTS", "").split(";")):
        kind, numbers = part.split(":")
        for n in numbers.split(","):
            out[int(n)] = kind
    return out


def fit_options(trial) -> dict:
    return {"batch_size": trial.suggest_categorical("batch_size", [8, 16])}


def build(trial, *, input_shape, num_classes, **_):
    import keras
    from keras import layers

    units = trial.suggest_int("units", 2, 8)
    learning_rate = trial.suggest_float("learning_rate", 1e-3, 1e-1, log=True)
    fault = faults().get(trial.number)

    class Fault(layers.Layer):
        def call(self, x, training=None):
            if training and fault == "oom":
                raise MemoryError("test fault: out of memory in the training step")
            return x * float("nan") if fault == "nan" else x

    inputs = keras.Input(shape=tuple(input_shape))
    x = layers.Rescaling(1.0 / 255.0)(inputs)
    x = layers.Conv2D(units, 3, activation="relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = Fault()(x)
    outputs = layers.Dense(num_classes, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="sparse_categorical_crossentropy")
    if fault == "slow":
        model.fit = _slow(model.fit, float(os.environ.get("LUNGSEARCH_SLOW_SECONDS", "30")))
    return model


def _slow(fit, seconds):
    def slow_fit(*args, **kwargs):
        marker = os.environ.get("LUNGSEARCH_SLOW_MARKER")
        if marker:  # tells the test that this trial is now inside its fit
            open(marker, "w").close()
        # stands for a long fit: the thing the test kills or interrupts, not a wait of the test's own
        time.sleep(seconds)
        return fit(*args, **kwargs)

    return slow_fit
