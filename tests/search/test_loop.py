"""The trial loop: exact totals, failures with reasons, NaN pruned, OOM survived, dead trials retried."""

from __future__ import annotations

import math

import optuna
import pytest
from optuna.trial import TrialState

import search
from search.loop import OOM_ATTR, REASON_ATTR, SURPLUS_ATTR, StudyAborted, Guarded, is_out_of_memory
from search.optuna_private import stale_trial_ids, study_storage, trial_id
from tests.conftest import wait_until


@pytest.fixture
def study(tmp_path):
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    storage = search.open_storage(f"sqlite:///{tmp_path}/loop.db", heartbeat=1)
    return optuna.create_study(storage=storage, direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))


def _quadratic(trial):
    x = trial.suggest_float("x", -1, 1)
    return -x * x


def test_runs_exactly_total_and_resumes_to_a_new_total(study):
    assert search.run_trials(study, _quadratic, total=3) == 3
    assert search.count_finished(study) == 3
    assert search.run_trials(study, _quadratic, total=5) == 2  # the total is the study's, not this run's
    assert len(study.trials) == 5


def test_failures_are_retried_with_their_reason_stored(study):
    calls = iter([ValueError("bad batch"), None, None, None])

    def objective(trial):
        exc = next(calls)
        if exc:
            raise exc
        return _quadratic(trial)

    search.run_trials(study, objective, total=3)
    failed = study.get_trials(states=(TrialState.FAIL,))
    assert len(failed) == 1 and search.count_finished(study) == 3
    assert failed[0].user_attrs[REASON_ATTR] == "ValueError: bad batch"
    assert failed[0].system_attrs["fail_reason"] == "ValueError: bad batch"  # what the progress line prints


def test_aborts_when_every_trial_fails(study):
    def objective(trial):
        raise RuntimeError("no GPU")

    with pytest.raises(StudyAborted, match="no GPU"):
        search.run_trials(study, objective, total=5)
    assert len(study.get_trials(states=(TrialState.FAIL,))) == 3


def test_out_of_memory_fails_that_trial_only(study):
    def objective(trial):
        x = trial.suggest_float("x", -1, 1)
        if trial.number == 1:
            raise MemoryError("cannot allocate 4 GiB")
        return x

    search.run_trials(study, objective, total=3)
    oom = study.trials[1]
    assert oom.state == TrialState.FAIL and oom.user_attrs[OOM_ATTR] is True
    assert oom.user_attrs[REASON_ATTR] == "out of memory: MemoryError: cannot allocate 4 GiB"
    assert search.count_finished(study) == 3


def test_recognises_backend_out_of_memory_errors():
    class ResourceExhaustedError(Exception):  # the name TensorFlow uses
        pass

    assert is_out_of_memory(ResourceExhaustedError("OOM when allocating tensor with shape [512,512]"))
    assert is_out_of_memory(RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert not is_out_of_memory(ValueError("bad shape"))


def test_non_finite_loss_is_pruned_with_its_reason(study):
    class NonFiniteLoss(ArithmeticError):
        pass

    def objective(trial):
        x = trial.suggest_float("x", -1, 1)
        if trial.number == 0:
            raise NonFiniteLoss("training loss became nan at epoch 1")
        return x

    search.run_trials(study, objective, total=2)
    first = study.trials[0]
    assert first.state == TrialState.PRUNED
    assert first.user_attrs["pruned_reason"] == "non-finite loss: training loss became nan at epoch 1"


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used with Study.optimize")  # ask() stands in for a worker
def test_a_trial_beyond_the_total_fails_before_running(study):
    """Two workers asked at the same instant: the later trial gives way, the earlier runs."""
    first, second = study.ask(), study.ask()  # both RUNNING, as if two workers had just started them
    ran = []
    guarded = Guarded(lambda trial: ran.append(trial.number) or 1.0, total=1)
    assert guarded(first) == 1.0
    with pytest.raises(search.loop.StudyFull):
        guarded(second)
    assert ran == [first.number]
    assert second.user_attrs[SURPLUS_ATTR] is True


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used with Study.optimize")  # ask() stands in for a worker
def test_stale_trial_of_a_dead_worker_is_failed_and_retried_with_its_params(study):
    dead = study.ask()
    x = dead.suggest_float("x", -1, 1)
    study_storage(study).record_heartbeat(trial_id(dead))  # its worker beat once, then died (kill -9)
    wait_until(lambda: trial_id(dead) in stale_trial_ids(study),
               what="the dead worker's trial to go stale (2 missed heartbeats of 1 s)")
    search.run_trials(study, _quadratic, total=2)
    trials = study.trials
    assert trials[0].state == TrialState.FAIL
    retried = [t for t in trials if t.system_attrs.get("failed_trial") == 0]
    assert len(retried) == 1 and retried[0].state == TrialState.COMPLETE
    assert math.isclose(retried[0].params["x"], x)
    assert search.count_finished(study) == 2
