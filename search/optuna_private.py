"""The private parts of Optuna that lungsearch relies on, each behind one function here.

Optuna may move a private name in any release without notice. Keeping every
use in this module means a new version breaks in one place, and
``tests/search/test_optuna_private.py`` says which name moved the moment the
new version is installed, instead of a trial loop failing mid-search. Each
function says the version it was checked on and what public API would
replace it. Nothing else in the project reaches into Optuna's private names.
"""

from __future__ import annotations

import optuna

CHECKED_ON = "5.1.0"  # the Optuna version every name below was read against

# The logger that reports a failed trial (``Trial N failed with parameters ...``), with its traceback.
# Checked on 5.1.0 (optuna/study/_optimize.py logs through ``optuna.logging.get_logger(__name__)``).
# Public replacement: none; a callback sees the failure but cannot quiet the line Optuna logs.
FAILED_TRIAL_LOGGER = "optuna.study._optimize"


def heartbeat_enabled(storage: optuna.storages.BaseStorage) -> bool:
    """Whether ``storage`` records heartbeats, so that a dead worker's trial is failed after a grace period.

    Checked on 5.1.0: ``optuna.storages._heartbeat.is_heartbeat_enabled``
    (neither it nor ``BaseHeartbeat`` is re-exported by ``optuna.storages``).
    Public replacement: none; lungsearch could remember the ``heartbeat``
    it gave :func:`search.open_storage` instead of asking the storage.
    """
    from optuna.storages._heartbeat import is_heartbeat_enabled

    return is_heartbeat_enabled(storage)


def study_storage(study: optuna.Study) -> optuna.storages.BaseStorage:
    """The storage ``study`` reads and writes.

    Checked on 5.1.0: ``Study._storage``. Public replacement: none on the
    study; pass the storage from :func:`search.open_storage` alongside it.
    """
    return study._storage


def trial_id(trial: optuna.Trial | optuna.trial.FrozenTrial) -> int:
    """The storage's id of ``trial`` (not its number), which the storage's own methods take.

    Checked on 5.1.0: ``Trial._trial_id`` and ``FrozenTrial._trial_id``.
    Public replacement: none; ``Trial.set_system_attr`` (removed in Optuna 3)
    was the public way to store a system attribute without it.
    """
    return trial._trial_id


def stale_trial_ids(study: optuna.Study) -> list[int]:
    """Ids of ``study``'s running trials whose heartbeat is older than the storage's grace period.

    Checked on 5.1.0: ``RDBStorage._get_stale_trial_ids(study._study_id)``
    (what ``optuna.storages.fail_stale_trials`` asks before failing them).
    Public replacement: none that only looks; the tests wait on it rather
    than sleep through the grace period.
    """
    return list(study._storage._get_stale_trial_ids(study._study_id))
