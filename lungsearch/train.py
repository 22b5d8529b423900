"""Fit one model on search data, measuring it the same way for every trial.

Backend-neutral: only the Keras 3 API, so it runs on TensorFlow, PyTorch or
JAX (``KERAS_BACKEND``).  Validation metrics are computed once per epoch from
the model's probabilities with scikit-learn, so AUC means the same thing for
two classes and for three.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from lungsearch.data import Arrays, SearchData

EpochHook = Callable[[int, dict], None]  # (epoch, metrics) -> None; may raise to stop
BatchHook = Callable[[int, int, "int | None"], None]  # (epoch, batches done in it, batches per epoch) -> None

# Part of every fit: halve the learning rate after 2 flat epochs, stop after 3, keep the best epoch's weights.
LR_PATIENCE, LR_FACTOR, MIN_LR = 2, 0.5, 1e-6
STOP_PATIENCE = 3


@dataclass
class FitResult:
    history: dict[str, list[float]] = field(default_factory=dict)  # per-epoch metrics
    seconds: float = 0.0  # wall time of fit, validation included
    epochs: int = 0
    final_epoch: int | None = None  # 0-based epoch whose weights the model holds (best, restored); None: the last
    feature_cache: dict | None = None  # where the first phase trained on cached features: cut, shape, first-pass seconds, hit

    @property
    def final(self) -> int:
        return self.epochs - 1 if self.final_epoch is None else self.final_epoch

    def last(self, key: str) -> float:
        values = self.history.get(key) or [float("nan")]
        return values[-1]


def class_weights(y: np.ndarray, num_classes: int) -> dict[int, float] | None:
    """Balanced weights (n / (k * count)) when the classes are imbalanced, else None."""
    counts = np.bincount(y, minlength=num_classes).astype(float)
    if counts.min() == 0 or counts.max() / counts.min() < 1.2:
        return None
    return {i: float(len(y) / (num_classes * c)) for i, c in enumerate(counts)}


def validation_metrics(probs: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Loss, accuracy and ROC AUC (one-vs-rest macro above two classes)."""
    from sklearn.metrics import accuracy_score, log_loss

    from lungsearch.evaluate import roc_auc

    probs = np.asarray(probs, dtype=np.float64)
    if not np.all(np.isfinite(probs)):
        return {"val_loss": float("nan"), "val_accuracy": float("nan"), "val_auc": float("nan")}
    labels = list(range(probs.shape[1]))
    out = {
        "val_loss": float(log_loss(y, _normalised(probs), labels=labels)),
        "val_accuracy": float(accuracy_score(y, probs.argmax(axis=1))),
    }
    try:
        out["val_auc"] = roc_auc(y, probs)  # binary: the same whichever class is called positive
    except ValueError:  # a class absent from a tiny validation split
        out["val_auc"] = float("nan")
    return out


def _normalised(probs: np.ndarray) -> np.ndarray:
    clipped = np.clip(probs, 1e-7, 1.0)
    return clipped / clipped.sum(axis=1, keepdims=True)


def fit(
    model,
    data: SearchData,
    *,
    epochs: int,
    batch_size: int,
    use_class_weights: bool = True,
    on_epoch: EpochHook | None = None,
    on_batch: BatchHook | None = None,
    verbose: int = 0,
    monitor: str = "val_loss",
    second_phase: dict | None = None,
    features=None,
) -> FitResult:
    """Train ``model`` for up to ``epochs``; ``on_epoch`` sees validation metrics.

    Every fit reduces the learning rate on a plateau of ``monitor`` and stops
    early, restoring the weights of the best epoch (``FitResult.final_epoch``).
    ``on_batch`` is called before each training batch (a progress bar); it reads
    no logs, so Keras keeps dispatching batches asynchronously.
    ``second_phase`` ({"start": share of epochs, "learning_rate": lr}, from a
    transfer space's ``fit_options``) unfreezes nested backbones (batch norm
    left as the space set it) from that epoch on and recompiles at the lower rate.
    ``features`` (a :class:`lungsearch.features.FeatureCache`): where the model
    has a fixed frozen part, the first phase trains only the rest of it, on
    that part's cached output; the second phase trains the whole model on pixels.
    """
    import keras

    result = FitResult()
    # Seeded again once the features are ready, from a draw made before: computing them builds ops of their own, which
    # moves TensorFlow's op seeds, and the shuffles and dropout of the two paths would then differ by more than the path.
    reseed = int(np.random.randint(2**31 - 1))
    prepared = features.prepare(model, data.train, data.val) if features is not None else None
    keras.utils.set_random_seed(reseed)
    trained, train, val = (prepared.rest, prepared.train, prepared.val) if prepared else (model, data.train, data.val)
    if prepared:
        result.feature_cache = prepared.record
    state = {"val": val}  # the second phase measures the whole model on pixels

    class _Measure(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs = logs if logs is not None else {}
            metrics = validation_metrics(self.model.predict(state["val"].x, batch_size=256, verbose=0), state["val"].y)
            logs.update(metrics)  # later callbacks (early stopping, LR schedules) see them too
            for key, value in logs.items():
                result.history.setdefault(key, []).append(float(value))
            result.epochs = epoch + 1
            result.seconds = time.perf_counter() - start
            if on_epoch is not None:  # first, so the caller records the epoch (and may prune on the NaN itself)
                on_epoch(epoch, dict(logs))
            if not math.isfinite(float(logs.get("loss", 0.0))):
                raise NonFiniteLoss(f"training loss became {logs.get('loss')} at epoch {epoch + 1}")

    class _Batches(keras.callbacks.Callback):
        epoch = 0

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_train_batch_begin(self, batch, logs=None):  # begin, not end: an end hook would sync every batch
            on_batch(self.epoch, batch, (self.params or {}).get("steps"))

    weights = class_weights(data.train.y, len(data.class_names)) if use_class_weights else None
    reduce_lr, stopper = plateau_callbacks(monitor)
    callbacks = [_Measure(), reduce_lr, stopper]  # _Measure first: the others read the metrics it puts into logs
    if on_batch is not None:
        callbacks.append(_Batches())
    split = phase_split(epochs, second_phase)
    start = time.perf_counter()
    fit_args = dict(batch_size=batch_size, class_weight=weights, callbacks=callbacks, shuffle=True, verbose=verbose)
    trained.fit(train.x, train.y, epochs=split, **fit_args)
    if split < epochs and not stopper.stopped_epoch:
        if prepared and stopper.best_weights is not None:  # the best epoch so far, as the whole model's weights
            now = trained.get_weights()
            trained.set_weights(stopper.best_weights)
            stopper.best_weights = model.get_weights()
            trained.set_weights(now)
        state["val"] = data.val
        unfreeze_backbones(model, float(second_phase["learning_rate"]))
        stopper.resume = True  # keep the best epoch of phase one
        model.fit(data.train.x, data.train.y, epochs=epochs, initial_epoch=split, **fit_args)
    result.seconds = time.perf_counter() - start
    result.final_epoch = stopper.best_epoch if stopper.best_weights is not None else None
    return result


def _finite_monitor(callback, logs):
    """A NaN or missing validation metric (a class absent from a tiny split) counts as no value."""
    value = (logs or {}).get(callback.monitor)
    return float(value) if value is not None and math.isfinite(float(value)) else None


def plateau_callbacks(monitor: str):
    """ReduceLROnPlateau and EarlyStopping (restoring the best weights) on ``monitor``."""
    import keras

    class EarlyStopping(keras.callbacks.EarlyStopping):
        resume = False  # set before a second fit() whose epochs continue the first

        def on_train_begin(self, logs=None):
            if not self.resume:
                super().on_train_begin(logs)

        def get_monitor_value(self, logs):
            return _finite_monitor(self, logs)

    class ReduceLROnPlateau(keras.callbacks.ReduceLROnPlateau):
        def on_epoch_end(self, epoch, logs=None):
            if _finite_monitor(self, logs) is not None:
                super().on_epoch_end(epoch, logs)

    mode = "min" if monitor.endswith("loss") else "max"
    return (
        ReduceLROnPlateau(monitor=monitor, mode=mode, factor=LR_FACTOR, patience=LR_PATIENCE, min_lr=MIN_LR),
        EarlyStopping(monitor=monitor, mode=mode, patience=STOP_PATIENCE, restore_best_weights=True),
    )


def phase_split(epochs: int, second_phase: dict | None) -> int:
    """The epoch (0-based) at which ``second_phase`` (a transfer space's ``fit_options``) starts in a fit of up to
    ``epochs``: its ``start`` share of them, at least 1 and at most ``epochs - 1``; ``epochs`` (no second phase)
    without one or below 2 epochs.  The epochs before it train the first phase, those from it on the second."""
    if not second_phase or epochs < 2:
        return epochs
    return min(epochs - 1, max(1, round(epochs * float(second_phase.get("start", 0.5)))))


def unfreeze_backbones(model, learning_rate: float) -> None:
    """The step between the two phases: make every layer of each nested model trainable (batch norm left as the space
    set it) and recompile at ``learning_rate`` (the second phase's)."""
    import keras

    for sub in model.layers:
        if isinstance(sub, keras.Model):
            for layer in sub.layers:
                if not isinstance(layer, keras.layers.BatchNormalization):
                    layer.trainable = True
    config = {**model.optimizer.get_config(), "learning_rate": learning_rate}
    model.compile(optimizer=type(model.optimizer).from_config(config), loss=model.loss, metrics=["accuracy"])


def predict_proba(model, arrays: Arrays, batch_size: int = 256) -> np.ndarray:
    return np.asarray(model.predict(arrays.x, batch_size=batch_size, verbose=0))


class NonFiniteLoss(ArithmeticError):
    """The training loss became NaN or infinite."""
