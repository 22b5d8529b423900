"""The objective: one trial = build a model from the space, fit it, record it."""

from __future__ import annotations

import datetime
import math
import time
from dataclasses import dataclass
from typing import Callable, Protocol

import optuna

from search.keep import ModelKeeper
from spaces.flops import count_flops

METRICS = ("val_auc", "val_accuracy")
EPOCH_CAP_ATTR = "epoch_cap"  # trial user attr: the --epochs the trial was trained under
FEATURES_ATTR = "feature_cache"  # trial user attr: where it trained on cached features (cut, shape, first-pass seconds)
EPOCH_TIMES_ATTR = "epoch_times"  # trial user attr: seconds from the trial's datetime_start to the end of each epoch


def trial_seed(seed: int, number: int) -> int:
    """The Keras seed of trial ``number`` in a study run with ``--seed seed`` (its weights, shuffles, augmentation)."""
    return seed * 100_003 + number


@dataclass
class Trained:
    """A trained trial: its model (best epoch's weights where restored) and what each epoch measured."""

    model: object
    history: dict[str, list[float]]
    epochs: int
    final: int  # index into each history list of the epoch whose weights the model holds (-1: the last)
    seconds: float

    def value(self, key: str, default: float = float("nan")) -> float:
        values = self.history.get(key)
        return values[self.final] if values else default

# fit(model, *, batch_size, on_epoch, ...) -> object with .history (dict of lists) and .epochs,
# and optionally .final_epoch: the 0-based epoch whose weights the model holds (best weights restored);
# it also takes on_batch(epoch, step, steps), called before each training batch, where the Objective has one to give
FitFn = Callable[..., object]
STOP_RECHECK_SECONDS = 15.0  # past stop_at with no completed trial in the study: how often to look again


class Watcher(Protocol):
    """Told when a trial starts training and when each epoch ends (``lungsearch.progress.Progress``)."""

    def trial_started(self, trial: optuna.Trial, *, param_count: int | None = None) -> None: ...

    def epoch_ended(self, trial: optuna.Trial, epoch: int, logs: dict, seconds: float) -> None: ...


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
        build_kwargs: dict | None = None,
        batch_size: int | None = None,
        watcher: Watcher | None = None,
        epochs: int | None = None,
        on_batch: Callable[[int, int, int | None], None] | None = None,
        stop_at: float | None = None,
        stop_reason: str = "the search's time ended",
    ):
        if metric not in METRICS:
            raise ValueError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
        self.space, self.fit, self.metric, self.seed, self.keeper = space, fit, metric, seed, keeper
        self.input_shape, self.num_classes = tuple(input_shape), num_classes
        # fixed facts beyond shape and classes (backbone weights, hflip): every space's build takes **_
        self.build_kwargs = dict(build_kwargs or {})
        # --batch-size: pins the batch even for a space whose fit_options do not suggest one
        self.batch_size = batch_size
        self.watcher = watcher  # progress lines: trial start, each epoch
        self.epochs = epochs  # the epoch cap, passed to fit and stored on each trial (None: fit has its own)
        self.on_batch = on_batch  # before each training batch (a progress bar)
        # time.time() past which a running trial is stopped before its next batch and pruned with stop_reason, once the
        # study holds a completed trial to hand over (run --refine: the search's share of --timeout ended). Optuna's
        # timeout only stops *starting* trials; a trial begun just before it could run on for most of what follows.
        self.stop_at, self.stop_reason = stop_at, stop_reason

    def __call__(self, trial: optuna.Trial) -> float:
        trained = self.train(trial)
        value = trained.value(self.metric)
        if self.keeper is not None and math.isfinite(value):
            accuracy = trained.value("val_accuracy", default=0.0)
            if self.keeper.worth_keeping(trial.study, value, accuracy, trained.seconds):
                self.keeper.save(trial, trained.model)
        return value

    def train(self, trial: optuna.Trial | optuna.trial.FixedTrial) -> "Trained":
        """Build ``trial``'s model and fit it: the one way a trial is trained.

        The search calls it with the live trial (reporting each epoch to the
        pruner); ``best --retrain`` and refits call it with a ``FixedTrial`` of
        the stored params, so the seed, the build facts, the batch size, the epoch
        cap and the monitored metric are those the search used.  Raises
        ``optuna.TrialPruned`` (its reason stored) when the pruner stops it.
        """
        import keras

        keras.backend.clear_session(free_memory=True)
        keras.utils.set_random_seed(trial_seed(self.seed, trial.number))
        try:
            model = self.space.build(trial, input_shape=self.input_shape, num_classes=self.num_classes, **self.build_kwargs)
        except optuna.TrialPruned as exc:  # an invalid combination for these facts, e.g. too much pooling
            trial.set_user_attr("pruned_reason", f"not built: {exc}")
            raise
        options = self.space.fit_options(trial)
        if self.batch_size:
            options = {**options, "batch_size": self.batch_size}
        if self.epochs is not None:
            options = {**options, "epochs": self.epochs}
            trial.set_user_attr(EPOCH_CAP_ATTR, self.epochs)  # --epochs may change between runs of a study; a retrain needs this one
        trial.set_user_attr("param_count", int(model.count_params()))
        flops = count_flops(model)
        if flops is not None:
            trial.set_user_attr("flops", flops)
        if self.watcher is not None:
            self.watcher.trial_started(trial, param_count=int(model.count_params()))
        seen: dict = {"history": {}, "epochs": 0, "seconds": 0.0, "times": []}
        start = time.perf_counter()
        began = trial.datetime_start or datetime.datetime.now()  # what the storage calls the trial's start
        deadline = _Deadline(trial, self.stop_at, self.stop_reason)

        def on_epoch(epoch: int, logs: dict) -> None:
            for key, value in logs.items():
                seen["history"].setdefault(key, []).append(float(value))
            seen["epochs"], seen["seconds"] = epoch + 1, time.perf_counter() - start
            seen["times"].append(round((datetime.datetime.now() - began).total_seconds(), 3))
            if self.watcher is not None:
                self.watcher.epoch_ended(trial, epoch, logs, seen["seconds"])
            if not math.isfinite(logs.get("loss", 0.0)):
                raise optuna.TrialPruned(f"non-finite loss: training loss became {logs.get('loss')} at epoch {epoch + 1}")
            value = logs.get(self.metric, float("nan"))
            if math.isfinite(value):
                trial.report(value, epoch)
                if trial.should_prune():
                    raise optuna.TrialPruned(f"pruned at epoch {epoch + 1} with {self.metric}={value:.4f}")

        # before each batch (the next epoch's first too), never after the last one: a trial whose epochs have all
        # ended completes, even past stop_at
        def on_batch(epoch: int, step: int, steps: int | None) -> None:
            if self.on_batch is not None:
                self.on_batch(epoch, step, steps)
            deadline.check(f"in epoch {epoch + 1}")

        if self.on_batch is not None or deadline.armed:  # a fit of a test or bench may take no on_batch
            options = {**options, "on_batch": on_batch}
        try:
            result = self.fit(model, on_epoch=on_epoch, **options)
        except optuna.TrialPruned as exc:
            self._record(trial, seen)
            trial.set_user_attr("pruned_reason", str(exc))
            raise
        if getattr(result, "feature_cache", None):  # the first phase trained on the frozen part's cached output
            trial.set_user_attr(FEATURES_ATTR, result.feature_cache)
        final = getattr(result, "final_epoch", None)
        seen["final"] = -1 if final is None or final >= seen["epochs"] else int(final)
        self._record(trial, seen)
        return Trained(model, seen["history"], seen["epochs"], seen["final"], seen["seconds"])

    def _record(self, trial: optuna.Trial, seen: dict) -> None:
        history = seen["history"]
        trial.set_user_attr("train_seconds", round(seen["seconds"], 3))
        trial.set_user_attr("epochs", seen["epochs"])
        final = seen.get("final", -1)  # the epoch the model's weights are from (best, when restored)
        if history and seen["epochs"]:
            trial.set_user_attr("final_epoch", (final % seen["epochs"]) + 1)  # 1-based, like "epochs"
        for key in ("val_accuracy", "val_auc", "val_loss"):
            if history.get(key):
                trial.set_user_attr(key, history[key][final])
        trial.set_user_attr("history", {k: [round(v, 5) for v in vs] for k, vs in history.items()})
        # when each epoch ended, validation included: with datetime_start, the wall-clock time of every value in
        # history, so the best-so-far curve of a study over time (bench.search_vs_keras_tuner) is read from storage
        trial.set_user_attr(EPOCH_TIMES_ATTR, seen["times"])


class _Deadline:
    """Stops a live trial once ``stop_at`` (``time.time()``) has passed, where its study holds a completed trial.

    Never stops the only hope: while the study has no completed trial, the
    running one goes on to its end (looked at again every
    :data:`STOP_RECHECK_SECONDS`, as another worker may finish one). A retrain
    or refit (a ``FixedTrial``) is never stopped.
    """

    def __init__(self, trial, stop_at: float | None, reason: str):
        self.trial, self.stop_at, self.reason = trial, stop_at, reason
        self.armed = stop_at is not None and isinstance(trial, optuna.Trial)
        self._next_look = 0.0

    def check(self, where: str) -> None:
        if not self.armed:
            return
        now = time.time()
        if now < self.stop_at or now < self._next_look:
            return
        self._next_look = now + STOP_RECHECK_SECONDS
        done = self.trial.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        if done:
            raise optuna.TrialPruned(f"stopped {where}: {self.reason}")
