"""Pieces every space shares: fixed-fact checks, optimizers, compiling."""

from __future__ import annotations

import optuna

OPTIMIZERS = ("adam", "adamw", "rmsprop", "sgd")
# Parameters a trial's model may have: float32 weights, gradients and Adam's two moments take 16 bytes each,
# so 200M is 3.2 GB before any activation.  Every cnn combination at 64 and 128 px fits; the largest
# built-in backbone (vgg19) has 20M.  Above it is a flatten head over a large map, not a model to search.
MAX_PARAMS = 200_000_000


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


def check_param_count(count: int, what: str) -> None:
    """Prune (:class:`InvalidCombination`) a model, or a layer about to be built, with over :data:`MAX_PARAMS` parameters.

    Call it before building a layer whose size grows with the input (a dense
    layer after a flatten): its weights are allocated when it is built.
    """
    if count > MAX_PARAMS:
        raise InvalidCombination(
            f"{what} has {count / 1e6:,.0f}M parameters, over the {MAX_PARAMS / 1e6:,.0f}M limit "
            f"({16 * MAX_PARAMS / 1e9:.1f} GB of weights, gradients and optimizer state); "
            "a smaller --image-size, more pooling blocks or a gap head fits"
        )


def compile_model(model, optimizer_name: str, learning_rate: float):
    """Compile for integer labels and softmax outputs; returns the model (pruned if over :data:`MAX_PARAMS`)."""
    check_param_count(int(model.count_params()), f"model {model.name!r}")
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
