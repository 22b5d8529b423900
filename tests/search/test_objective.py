"""Objective: fixed facts reach build(); the restored best epoch is what the trial reports; build-time prunes keep their reason."""

from __future__ import annotations

from types import SimpleNamespace

import optuna

import search
import spaces

optuna.logging.set_verbosity(optuna.logging.WARNING)


class _Space:
    name, source = "fake", ""

    def __init__(self):
        self.facts = None

    def build(self, trial, *, input_shape, num_classes, **facts):
        import keras

        self.facts = facts
        trial.suggest_float("x", 0.0, 1.0)
        inputs = keras.Input(shape=input_shape)
        outputs = keras.layers.Dense(num_classes, activation="softmax")(keras.layers.Flatten()(inputs))
        return keras.Model(inputs, outputs)

    def fit_options(self, trial):
        return {"batch_size": 4}


def _fit(aucs, final_epoch):
    def fit(model, *, on_epoch, batch_size):
        for epoch, auc in enumerate(aucs):
            on_epoch(epoch, {"loss": 0.5, "val_auc": auc, "val_accuracy": auc - 0.1, "val_loss": 1.0 - auc})
        return SimpleNamespace(history={}, epochs=len(aucs), final_epoch=final_epoch)
    return fit


def test_build_kwargs_reach_the_space_and_the_restored_epoch_is_reported():
    space = _Space()
    objective = search.Objective(space, input_shape=(4, 4, 1), num_classes=2, fit=_fit([0.6, 0.9, 0.7], 1),
                                 build_kwargs={"hflip": True, "weights": "w.h5"})
    study = optuna.create_study(direction="maximize")
    study.optimize(objective, n_trials=1)
    trial = study.trials[0]
    assert space.facts == {"hflip": True, "weights": "w.h5"}
    assert trial.value == 0.9
    assert trial.user_attrs["val_auc"] == 0.9 and trial.user_attrs["val_loss"] == 1.0 - 0.9
    assert trial.user_attrs["final_epoch"] == 2 and trial.user_attrs["epochs"] == 3
    assert trial.user_attrs["param_count"] == 16 * 2 + 2
    assert trial.user_attrs["flops"] == 2 * 16 * 2


def test_a_fit_without_final_epoch_reports_the_last_epoch():
    fit = _fit([0.6, 0.9, 0.7], None)
    objective = search.Objective(_Space(), input_shape=(4, 4, 1), num_classes=2, fit=fit)  # old constructor still works
    study = optuna.create_study(direction="maximize")
    study.optimize(objective, n_trials=1)
    assert study.trials[0].value == 0.7 and study.trials[0].user_attrs["final_epoch"] == 3


def test_each_epoch_end_is_stored_as_seconds_after_the_trial_start_pruned_trials_too():
    """epoch_times beside history: with datetime_start, when each value was measured (a study's curve over time)."""
    objective = search.Objective(_Space(), input_shape=(4, 4, 1), num_classes=2, fit=_fit([0.6, 0.9, 0.7], 1))
    study = optuna.create_study(direction="maximize")
    study.optimize(objective, n_trials=1)
    trial = study.trials[0]
    times = trial.user_attrs[search.objective.EPOCH_TIMES_ATTR]
    assert len(times) == 3 and times == sorted(times) and times[0] >= 0
    assert times[-1] <= (trial.datetime_complete - trial.datetime_start).total_seconds() + 0.001  # stored to the millisecond
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.ThresholdPruner(lower=0.55))
    study.optimize(search.Objective(_Space(), input_shape=(4, 4, 1), num_classes=2, fit=_fit([0.5, 0.9], 1)), n_trials=1)
    pruned = study.trials[0]
    assert pruned.state == optuna.trial.TrialState.PRUNED and len(pruned.user_attrs["epoch_times"]) == 1


def test_too_deep_cnn_for_the_input_is_pruned_with_its_reason_and_the_study_goes_on():
    def never(model, **_):
        raise AssertionError("an unbuildable trial must not be fitted")

    objective = search.Objective(spaces.get_space("cnn"), input_shape=(24, 24, 1), num_classes=2, fit=never)
    study = optuna.create_study(direction="maximize")
    study.enqueue_trial({"conv_blocks": 5})
    search.run_trials(study, objective, total=1)
    trial = study.trials[0]
    assert trial.state == optuna.trial.TrialState.PRUNED
    assert "not built: 5 pooling blocks shrink a 24 px input" in trial.user_attrs["pruned_reason"]


def test_a_pinned_batch_size_overrides_a_space_that_does_not_suggest_one():
    seen = []

    def fit(model, *, on_epoch, batch_size):
        seen.append(batch_size)
        return _fit([0.8], None)(model, on_epoch=on_epoch, batch_size=batch_size)

    for pinned, expected in ((None, 4), (16, 16)):  # _Space.fit_options always says 4
        objective = search.Objective(_Space(), input_shape=(4, 4, 1), num_classes=2, fit=fit, batch_size=pinned)
        optuna.create_study(direction="maximize").optimize(objective, n_trials=1)
        assert seen[-1] == expected


def _fit_in_batches(aucs, steps, calls):
    """A fit that calls on_batch before each of ``steps`` batches per epoch, counting them in ``calls``."""
    def fit(model, *, on_epoch, batch_size, on_batch=None):
        for epoch, auc in enumerate(aucs):
            for step in range(steps):
                calls.append((epoch, step))
                if on_batch is not None:
                    on_batch(epoch, step, steps)
            on_epoch(epoch, {"loss": 0.5, "val_auc": auc, "val_accuracy": auc - 0.1, "val_loss": 1.0 - auc})
        return SimpleNamespace(history={}, epochs=len(aucs), final_epoch=None)
    return fit


def test_past_stop_at_a_trial_is_stopped_before_its_next_batch_once_the_study_has_a_completed_one():
    """run --refine: the search's share ends while a trial trains; it is pruned with its reason and epochs so far,
    so refine has the rest. The study's only hope is never stopped, nor is a retrain (FixedTrial)."""
    import time

    calls = []
    objective = search.Objective(_Space(), input_shape=(4, 4, 1), num_classes=2, fit=_fit_in_batches([0.6, 0.8, 0.9], 2, calls),
                                 stop_at=time.time() - 1, stop_reason="the search's share ended")
    study = optuna.create_study(direction="maximize")
    study.optimize(objective, n_trials=1)  # past stop_at already, but nothing completed to hand over: it trains to its end
    assert study.trials[0].state == optuna.trial.TrialState.COMPLETE and len(calls) == 6

    calls.clear()
    study.optimize(objective, n_trials=1)
    stopped = study.trials[1]
    assert stopped.state == optuna.trial.TrialState.PRUNED and calls == [(0, 0)]  # before its first batch
    assert stopped.user_attrs["pruned_reason"] == "stopped in epoch 1: the search's share ended"
    assert stopped.user_attrs["epochs"] == 0

    calls.clear()
    trained = objective.train(optuna.trial.FixedTrial(study.trials[0].params, number=0))
    assert len(calls) == 6 and trained.epochs == 3


def test_a_trial_is_stopped_mid_run_and_keeps_its_finished_epochs_while_one_whose_epochs_ended_completes(monkeypatch):
    import time

    clock = {"now": 100.0}
    monkeypatch.setattr(time, "time", lambda: clock["now"])
    calls = []
    base = _fit_in_batches([0.6, 0.8, 0.9], 2, calls)

    def fit(model, *, on_epoch, batch_size, on_batch=None):
        def tick(epoch, step, steps):  # a batch begins 1 s after the last one, or 0.5 s after its epoch's validation
            clock["now"] += 1.0
            on_batch(epoch, step, steps)

        def validated(epoch, logs):
            clock["now"] += 0.5
            on_epoch(epoch, logs)
        return base(model, on_epoch=validated, batch_size=batch_size, on_batch=tick)

    study = optuna.create_study(direction="maximize")
    study.enqueue_trial({"x": 0.5})
    study.optimize(search.Objective(_Space(), input_shape=(4, 4, 1), num_classes=2, fit=_fit([0.7], None)), n_trials=1)
    objective = search.Objective(_Space(), input_shape=(4, 4, 1), num_classes=2, fit=fit, stop_at=103.2)
    study.optimize(objective, n_trials=1)
    stopped = study.trials[1]
    assert stopped.state == optuna.trial.TrialState.PRUNED
    assert stopped.user_attrs["pruned_reason"].startswith("stopped in epoch 2:") and stopped.user_attrs["epochs"] == 1
    assert stopped.intermediate_values == {0: 0.6}

    clock["now"], calls[:] = 100.0, []
    # batches begin at 101, 102 | 103.5, 104.5 | 106, 107, the last validation ends at 107.5: past stop_at, it completes
    study.optimize(search.Objective(_Space(), input_shape=(4, 4, 1), num_classes=2, fit=fit, stop_at=107.2), n_trials=1)
    assert study.trials[2].state == optuna.trial.TrialState.COMPLETE and len(calls) == 6 and clock["now"] == 107.5
