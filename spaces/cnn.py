"""A CNN from scratch: 1-5 conv blocks, then a small dense head.

Every block pools by 2, so depth and input size interact: a trial that would
shrink the feature map below 2x2 is pruned with the reason stored, not built.
"""

from __future__ import annotations

from spaces import augment
from spaces.common import OPTIMIZERS, InvalidCombination, check_facts, check_param_count, compile_model

NAME = "cnn"
DESCRIPTION = ("CNN from scratch: per-image standardisation on/off, 1-5 conv blocks (filters, kernel, batch norm, pooling, "
               "dropout), GAP or flatten head, augmentation on/off; starts from the seeds' hand CNN, plain and standardised")
IMAGE_SIZE = 64  # default input side in pixels
COLOR_MODE = "grayscale"
MIN_MAP_SIDE = 2  # the smallest feature map side the last pooling may leave

# The seeds' 30-line hand-written CNN in this space's parameters: 3 conv blocks 32/64/128 (3x3, relu, max
# pool), flatten, dense 128, dropout 0.5 (the space puts it before the dense layer, the seeds after), RMSprop
# 1e-3, batch 32, no augmentation. On chest_xray at 64 px it scored test AUC 0.940 in 96 s, as well as a
# 30-minute search did; the search starts from it.
HAND_CNN = {
    "conv_blocks": 3, "kernel_size": 3, "batch_norm": False, "pooling": "max", "activation": "relu",
    "filters_b0": 32, "filters_b1": 64, "filters_b2": 128,
    "dropout_b0": 0.0, "dropout_b1": 0.0, "dropout_b2": 0.0,
    "head": "flatten", "dropout": 0.5, "dense_units": 128,
    "optimizer": "rmsprop", "learning_rate": 1e-3, "augment": "off", "batch_size": 32,
    "normalize": "none",
}
# Known-good starting points, enqueued as the first trials of a new study (--no-warm-start: none). The
# second is the same network with each image standardised to mean 0, std 1 after rescaling: it lifted the
# hand CNN's test AUC on covid19 (5 seeds, median 0.916 -> 0.942, bench.hand_variants) and on chest_xray
# (same seed and split, 0.932 -> 0.957, bench.vs_hand), by removing the brightness and contrast that differ
# between acquisitions.
WARM_STARTS = [
    {"name": "hand-cnn", "params": HAND_CNN},
    {"name": "hand-cnn-standardized", "params": {**HAND_CNN, "normalize": "image"}},
]
# Parameters added since the first studies, with the value their trials implied (for FixedTrial rebuilds):
# trials from before the augmentation switch always augmented.
# trials from before the normalisation switch never standardised.
LEGACY_PARAMS = {"augment": "on", "normalize": "none"}


def suggest(trial) -> dict:
    """Every architecture choice of the space, suggested through ``trial``."""
    p = {
        # per-image (x - mean) / std after rescaling, or the rescaled pixels as they are
        "normalize": trial.suggest_categorical("normalize", ["none", "image"]),
        "conv_blocks": trial.suggest_int("conv_blocks", 1, 5),
        "kernel_size": trial.suggest_categorical("kernel_size", [3, 5]),
        "batch_norm": trial.suggest_categorical("batch_norm", [False, True]),
        "pooling": trial.suggest_categorical("pooling", ["max", "avg"]),
        "activation": trial.suggest_categorical("activation", ["relu", "elu", "swish"]),
    }
    p["filters"] = [trial.suggest_int(f"filters_b{i}", 8, 128, log=True) for i in range(p["conv_blocks"])]
    p["block_dropout"] = [trial.suggest_float(f"dropout_b{i}", 0.0, 0.3) for i in range(p["conv_blocks"])]
    p["head"] = trial.suggest_categorical("head", ["gap", "flatten"])
    p["dropout"] = trial.suggest_float("dropout", 0.0, 0.5)  # in the head
    p["dense_units"] = trial.suggest_int("dense_units", 16, 256, log=True)
    p["optimizer"] = trial.suggest_categorical("optimizer", list(OPTIMIZERS))
    p["learning_rate"] = trial.suggest_float("learning_rate", 1e-4, 1e-2, log=True)
    p["augment"] = augment.suggest(trial)
    return p


def fit_options(trial) -> dict:
    """Options of ``fit`` that are tuned, not fixed."""
    return {"batch_size": trial.suggest_int("batch_size", 16, 128, log=True)}


def build(trial, *, input_shape, num_classes, hflip: bool = False, **_):
    """Suggest the architecture through ``trial`` and return a compiled model.

    ``input_shape`` is (height, width, channels) of raw uint8 pixels; the model
    augments (while training) and rescales them itself, so an exported model
    takes images as they are read.  ``hflip`` adds random horizontal flips.
    """
    height, width, channels = check_facts(input_shape, num_classes)
    p = suggest(trial)
    side = min(height, width) // (2 ** p["conv_blocks"])
    if side < MIN_MAP_SIDE:
        raise InvalidCombination(
            f"{p['conv_blocks']} pooling blocks shrink a {min(height, width)} px input to {side}x{side}; "
            f"at most {_max_blocks(min(height, width))} blocks fit this input size"
        )

    import keras
    from keras import layers

    inputs = keras.Input(shape=(height, width, channels), name="pixels")
    x = augment.apply(inputs, p["augment"], hflip=hflip)
    x = layers.Rescaling(1.0 / 255.0, name="rescale")(x)
    if p["normalize"] == "image":
        x = augment.standardize_layer()(x)
    pool = layers.MaxPooling2D if p["pooling"] == "max" else layers.AveragePooling2D
    for i, (filters, rate) in enumerate(zip(p["filters"], p["block_dropout"])):
        x = layers.Conv2D(filters, p["kernel_size"], padding="same", use_bias=not p["batch_norm"], name=f"conv{i}")(x)
        if p["batch_norm"]:
            # momentum 0.9, not Keras' 0.99: a small set has few steps per epoch, and slow moving
            # statistics left validation predictions inverted for many epochs on the demo set
            x = layers.BatchNormalization(momentum=0.9, name=f"bn{i}")(x)
        x = layers.Activation(p["activation"], name=f"act{i}")(x)
        x = pool(2, name=f"pool{i}")(x)
        if rate > 0:
            x = layers.Dropout(rate, name=f"dropout{i}")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x) if p["head"] == "gap" else layers.Flatten(name="flatten")(x)
    x = layers.Dropout(p["dropout"], name="dropout")(x)
    check_param_count(int(x.shape[-1]) * p["dense_units"], f"the {p['head']} head's dense layer ({int(x.shape[-1]):,} inputs)")
    x = layers.Dense(p["dense_units"], activation=p["activation"], name="dense")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="probabilities")(x)
    model = keras.Model(inputs, outputs, name="cnn")
    return compile_model(model, p["optimizer"], p["learning_rate"])


def _max_blocks(side: int) -> int:
    blocks = 0
    while side // 2 >= MIN_MAP_SIDE:
        side //= 2
        blocks += 1
    return blocks
