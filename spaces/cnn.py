"""A CNN from scratch: 1-5 conv blocks, then a small dense head."""

from __future__ import annotations

NAME = "cnn"
DESCRIPTION = "CNN from scratch: 1-5 conv blocks, filters per block, dropout, dense head, optimizer, learning rate"
IMAGE_SIZE = 64  # default input side in pixels
COLOR_MODE = "grayscale"

OPTIMIZERS = ("adam", "rmsprop", "sgd")


def fit_options(trial) -> dict:
    """Options of ``fit`` that are tuned, not fixed."""
    return {"batch_size": trial.suggest_int("batch_size", 16, 128, log=True)}


def build(trial, *, input_shape, num_classes):
    """Suggest the architecture through ``trial`` and return a compiled model.

    ``input_shape`` is (height, width, channels) of raw uint8 pixels; the model
    rescales them itself, so an exported model takes images as they are read.
    """
    import keras
    from keras import layers

    height, width, channels = _check_facts(input_shape, num_classes)
    n_blocks = trial.suggest_int("conv_blocks", 1, 5)
    dropout = trial.suggest_float("dropout", 0.0, 0.5)
    dense_units = trial.suggest_int("dense_units", 16, 256, log=True)
    optimizer_name = trial.suggest_categorical("optimizer", list(OPTIMIZERS))
    learning_rate = trial.suggest_float("learning_rate", 1e-4, 1e-2, log=True)

    inputs = keras.Input(shape=(height, width, channels), name="pixels")
    x = layers.Rescaling(1.0 / 255.0, name="rescale")(inputs)
    side = min(height, width)
    for i in range(n_blocks):
        filters = trial.suggest_int(f"filters_b{i}", 8, 128, log=True)
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"conv{i}")(x)
        # momentum 0.9, not Keras' 0.99: a small set has few steps per epoch, and slow
        # moving statistics make validation predictions meaningless for many epochs
        x = layers.BatchNormalization(momentum=0.9, name=f"bn{i}")(x)
        x = layers.Activation("relu", name=f"relu{i}")(x)
        if side >= 4:  # never pool a map below 2x2, so every depth fits every input size
            x = layers.MaxPooling2D(2, name=f"pool{i}")(x)
            side //= 2
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    x = layers.Dense(dense_units, activation="relu", name="dense")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="probabilities")(x)
    model = keras.Model(inputs, outputs, name="cnn")
    model.compile(
        optimizer=_optimizer(optimizer_name, learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def _optimizer(name: str, learning_rate: float):
    import keras

    if name == "adam":
        return keras.optimizers.Adam(learning_rate)
    if name == "rmsprop":
        return keras.optimizers.RMSprop(learning_rate)
    return keras.optimizers.SGD(learning_rate, momentum=0.9)


def _check_facts(input_shape, num_classes):
    if len(input_shape) != 3 or min(input_shape) < 1:
        raise ValueError(f"input_shape must be (height, width, channels), got {input_shape}")
    if num_classes < 2:
        raise ValueError(f"num_classes must be at least 2, got {num_classes}")
    return tuple(int(v) for v in input_shape)
