"""Warm starts: a space's known-good points, enqueued as the first trials of a new study.

TPE over two dozen parameters needs many trials to find what a student's
default finds at once, so a new study starts from the points the space ships
(``WARM_STARTS``).  Each is enqueued with ``study.enqueue_trial`` and marked
with the user attribute ``warm_start`` (its name); the sampler then learns
from it like from any other trial, so the search's best value is never below
its warm start's.
"""

from __future__ import annotations

import time

import optuna
from optuna.trial import TrialState

ATTR = "warm_start"  # user attr of an enqueued warm-start trial: the point's name


def enqueue_warm_starts(study: optuna.Study, points, *, limit: int | None = None, pinned: dict | None = None) -> list[str]:
    """Enqueue ``points`` ({"name", "params"}) into a study that has no trial yet; returns the names enqueued.

    A study that already holds trials (resumed, or made before warm starts) is
    left alone.  ``limit`` caps how many are enqueued (no more than the trials
    asked for); ``pinned`` overrides params the run fixes (``--batch-size``).
    """
    if study.get_trials(deepcopy=False):
        return []
    names = []
    for point in list(points)[: limit if limit is not None else None]:
        params = dict(point["params"])
        for key, value in (pinned or {}).items():
            if key in params:
                params[key] = value
        study.enqueue_trial(params, user_attrs={ATTR: point["name"]}, skip_if_exists=True)
        names.append(point["name"])
    return names


def requeue_interrupted(study: optuna.Study) -> list[str]:
    """Enqueue again each warm start whose trial was interrupted (Ctrl-C, SIGTERM) and that no other trial stands for.

    Without this a resumed study never ran a warm start that Ctrl-C stopped, and
    "the best is never below the warm starts" quietly stopped holding.  A warm
    start that failed for another reason (a bug, out of memory) is left failed:
    running it again on every resume would fail again.  Returns the names enqueued.
    """
    from search.loop import REASON_ATTR

    trials = study.get_trials(deepcopy=False)
    standing = {t.user_attrs[ATTR] for t in trials if t.user_attrs.get(ATTR) and t.state != TrialState.FAIL}
    names = []
    for t in trials:
        name = t.user_attrs.get(ATTR)
        reason = str(t.user_attrs.get(REASON_ATTR) or t.system_attrs.get("fail_reason") or "")
        if name and t.state == TrialState.FAIL and name not in standing and reason.startswith("interrupted"):
            # the point as it was enqueued (Optuna's fixed_params): complete even where Ctrl-C came before every suggest
            study.enqueue_trial(dict(t.system_attrs.get("fixed_params") or t.params), user_attrs={ATTR: name})
            standing.add(name)
            names.append(name)
    return names


def started_trials(study: optuna.Study) -> int:
    """Trials the sampler has drawn or run, not counting warm starts still waiting in the queue."""
    return len([t for t in study.get_trials(deepcopy=False) if t.state != TrialState.WAITING])


def wait_for_earlier_workers(study: optuna.Study, worker_index: int, *, timeout: float = 300.0, poll: float = 0.5) -> None:
    """Worker ``worker_index`` (1-based) waits until workers 1..k-1 have each taken a queued warm start.

    Optuna takes a queued trial by reading it WAITING and then writing it
    RUNNING; on SQLite nothing locks the row in between, so two workers
    starting together both took warm start 0, trained it twice, and the second
    crashed telling a finished trial.  Staggering the first takes avoids that:
    worker k starts once at most ``queued - (k - 1)`` warm starts are still waiting.
    """
    if worker_index <= 1:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        marked = [t for t in study.get_trials(deepcopy=False) if t.user_attrs.get(ATTR)]
        waiting = sum(t.state == TrialState.WAITING for t in marked)
        if waiting == 0 or waiting <= len(marked) - (worker_index - 1):
            return
        time.sleep(poll)
