"""The objective: one trial = build a model from the space, fit it, record it."""

from __future__ import annotations

import math
import time
from typing import Callable

import optuna

from search.keep import ModelKeeper

METRICS = ("val_auc", "val_accuracy")

# fit(model, *, batch_size, on_epoch) -> object with .history (dict of lists) and .epochs
FitFn = Callable[..., object]


class Objective:
    """Callable for ``study.optimize``; every result goes into the trial's storage."""

    def __init__(
        self,
        space,
        *,
        input_shape: tuple[int, int, int],
        num_classes: int,
        fit: FitFn,
        metric: str = "val_auc",
        seed: int = 0,
        keeper: ModelKeeper | None = None,
    ):
        if metric not in METRICS:
            raise ValueError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
        self.space, self.fit, self.metric, self.seed, self.keeper = space, fit, metric, seed, keeper
        self.input_shape, self.num_classes = tuple(input_shape), num_classes

    def __call__(self, trial: optuna.Trial) -> float:
        import keras

        keras.backend.clear_session(free_memory=True)
        keras.utils.set_random_seed(self.seed * 100_003 + trial.number)
        model = self.space.build(trial, input_shape=self.input_shape, num_classes=self.num_classes)
        options = self.space.fit_options(trial)
        trial.set_user_attr("param_count", int(model.count_params()))
        seen: dict = {"history": {}, "epochs": 0, "seconds": 0.0}
        start = time.perf_counter()

        def on_epoch(epoch: int, logs: dict) -> None:
            for key, value in logs.items():
                seen["history"].setdefault(key, []).append(float(value))
            seen["epochs"], seen["seconds"] = epoch + 1, time.perf_counter() - start
            if not math.isfinite(logs.get("loss", 0.0)):
                raise optuna.TrialPruned(f"training loss became {logs.get('loss')} at epoch {epoch + 1}")
            value = logs.get(self.metric, float("nan"))
            if math.isfinite(value):
                trial.report(value, epoch)
                if trial.should_prune():
                    raise optuna.TrialPruned(f"pruned at epoch {epoch + 1} with {self.metric}={value:.4f}")

        try:
            self.fit(model, on_epoch=on_epoch, **options)
        except optuna.TrialPruned as exc:
            self._record(trial, seen)
            trial.set_user_attr("pruned_reason", str(exc))
            raise
        self._record(trial, seen)
        value = seen["history"].get(self.metric, [float("nan")])[-1]
        if self.keeper is not None and math.isfinite(value):
            accuracy = seen["history"].get("val_accuracy", [0.0])[-1]
            if self.keeper.worth_keeping(trial.study, value, accuracy, seen["seconds"]):
                self.keeper.save(trial, model)
        return value

    def _record(self, trial: optuna.Trial, seen: dict) -> None:
        history = seen["history"]
        trial.set_user_attr("train_seconds", round(seen["seconds"], 3))
        trial.set_user_attr("epochs", seen["epochs"])
        for key in ("val_accuracy", "val_auc", "val_loss"):
            if history.get(key):
                trial.set_user_attr(key, history[key][-1])
        trial.set_user_attr("history", {k: [round(v, 5) for v in vs] for k, vs in history.items()})
