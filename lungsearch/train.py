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


@dataclass
class FitResult:
    history: dict[str, list[float]] = field(default_factory=dict)  # per-epoch metrics
    seconds: float = 0.0  # wall time of fit, validation included
    epochs: int = 0

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
    from sklearn.metrics import accuracy_score, log_loss, roc_auc_score

    probs = np.asarray(probs, dtype=np.float64)
    if not np.all(np.isfinite(probs)):
        return {"val_loss": float("nan"), "val_accuracy": float("nan"), "val_auc": float("nan")}
    labels = list(range(probs.shape[1]))
    out = {
        "val_loss": float(log_loss(y, _normalised(probs), labels=labels)),
        "val_accuracy": float(accuracy_score(y, probs.argmax(axis=1))),
    }
    try:
        if probs.shape[1] == 2:
            out["val_auc"] = float(roc_auc_score(y, probs[:, 1]))
        else:
            out["val_auc"] = float(roc_auc_score(y, probs, multi_class="ovr", average="macro", labels=labels))
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
    verbose: int = 0,
) -> FitResult:
    """Train ``model`` for up to ``epochs``; ``on_epoch`` sees validation metrics."""
    import keras

    result = FitResult()
    val = data.val

    class _Measure(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs = logs if logs is not None else {}
            metrics = validation_metrics(self.model.predict(val.x, batch_size=256, verbose=0), val.y)
            logs.update(metrics)  # later callbacks (early stopping, LR schedules) see them too
            for key, value in logs.items():
                result.history.setdefault(key, []).append(float(value))
            result.epochs = epoch + 1
            result.seconds = time.perf_counter() - start
            if not math.isfinite(float(logs.get("loss", 0.0))):
                raise NonFiniteLoss(f"training loss became {logs.get('loss')} at epoch {epoch + 1}")
            if on_epoch is not None:
                on_epoch(epoch, dict(logs))

    weights = class_weights(data.train.y, len(data.class_names)) if use_class_weights else None
    start = time.perf_counter()
    model.fit(
        data.train.x,
        data.train.y,
        epochs=epochs,
        batch_size=batch_size,
        class_weight=weights,
        callbacks=[_Measure()],
        shuffle=True,
        verbose=verbose,
    )
    result.seconds = time.perf_counter() - start
    return result


def predict_proba(model, arrays: Arrays, batch_size: int = 256) -> np.ndarray:
    return np.asarray(model.predict(arrays.x, batch_size=batch_size, verbose=0))


class NonFiniteLoss(ArithmeticError):
    """The training loss became NaN or infinite."""
