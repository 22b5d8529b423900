"""search.optuna_private: each private Optuna name lungsearch reads is still where it was on the installed Optuna.

A failure here after an Optuna upgrade names the function whose docstring
says what moved and what could replace it.
"""

from __future__ import annotations

import logging

import optuna
import pytest

import search
from search import optuna_private


def test_failed_trials_are_logged_by_the_logger_lungsearch_quiets(monkeypatch):
    seen = []
    handler = logging.Handler()
    handler.emit = seen.append
    logger = logging.getLogger(optuna_private.FAILED_TRIAL_LOGGER)
    logger.addHandler(handler)
    monkeypatch.setattr(logger, "disabled", False)
    monkeypatch.setattr(logger, "level", logging.NOTSET)  # whatever an earlier test (or lungsearch's quieting) set
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        optuna.create_study().optimize(lambda trial: 1 / 0, n_trials=1, catch=(ZeroDivisionError,))
    finally:
        logger.removeHandler(handler)
        optuna.logging.set_verbosity(verbosity)
    assert any("Trial 0 failed" in r.getMessage() for r in seen), [r.getMessage() for r in seen]


def test_heartbeat_enabled_tells_a_storage_with_heartbeats_from_one_without(tmp_path):
    assert optuna_private.heartbeat_enabled(search.open_storage(f"sqlite:///{tmp_path}/s.db", heartbeat=7))
    assert not optuna_private.heartbeat_enabled(search.open_storage(f"sqlite:///{tmp_path}/s.db", heartbeat=None))
    assert not optuna_private.heartbeat_enabled(optuna.storages.InMemoryStorage())


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used with Study.optimize")  # ask() stands in for a worker
def test_study_storage_and_trial_id_reach_the_trial_in_its_storage(tmp_path):
    storage = search.open_storage(f"sqlite:///{tmp_path}/s.db", heartbeat=7)
    study = optuna.create_study(storage=storage, study_name="s")
    trial = study.ask()
    assert optuna_private.heartbeat_enabled(optuna_private.study_storage(study))  # what the trial loop asks
    stored = optuna_private.study_storage(study).get_trial(optuna_private.trial_id(trial))
    assert stored.number == trial.number
    assert optuna_private.trial_id(study.trials[0]) == optuna_private.trial_id(trial)  # a FrozenTrial has it too
    assert optuna_private.stale_trial_ids(study) == []  # it beat within the grace period (none yet)
