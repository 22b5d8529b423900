"""Pieces every space shares: fixed-fact checks, optimizers, compiling."""

from __future__ import annotations

import optuna

OPTIMIZERS = ("adam", "adamw", "rmsprop", "sgd")


def check_facts(input_shape, num_classes) -> tuple[int, int, int]:
    """Validate the fixed facts a space is built for; ``ValueError`` at once if wrong."""
    if len(input_shape) != 3 or min(int(v) for v in input_shape) < 1:
        raise ValueError(f"input_shape must be (height, width, channels), got {input_shape}")
    if int(input_shape[2]) not in (1, 3):
        raise ValueError(f"input_shape must have 1 (grayscale) or 3 (rgb) channels, got {input_shape[2]}")
    if num_classes < 2:
        raise ValueError(f"num_classes must be at least 2, got {num_classes}")
    return tuple(int(v) for v in input_shape)


def make_optimizer(name: str, learning_rate: float):
    """A fresh Keras optimizer; SGD always with Nesterov-free momentum 0.9."""
    import keras

    if name == "adam":
        return keras.optimizers.Adam(learning_rate)
    if name == "adamw":
        return keras.optimizers.AdamW(learning_rate)
    if name == "rmsprop":
        return keras.optimizers.RMSprop(learning_rate)
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate, momentum=0.9)
    raise ValueError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}")


def compile_model(model, optimizer_name: str, learning_rate: float):
    """Compile for integer labels and softmax outputs; returns the model."""
    model.compile(
        optimizer=make_optimizer(optimizer_name, learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


class InvalidCombination(optuna.TrialPruned):
    """Suggested choices that cannot be built for these fixed facts (too many poolings
    for the input size).  A ``TrialPruned``, so the trial is pruned with this reason and
    the study goes on; the sampler learns to avoid the region."""
