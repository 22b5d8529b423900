"""The trial loop: run a study until it holds the number of trials asked for."""

from __future__ import annotations

import time
from typing import Callable, Iterable

import optuna
from optuna.trial import TrialState

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)  # what counts towards --trials; failures are retried
MAX_CONSECUTIVE_FAILURES = 3


class StudyAborted(RuntimeError):
    """Every recent trial failed: something is wrong with the set-up, not with the trials."""


def count_finished(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=FINISHED))


def run_trials(
    study: optuna.Study,
    objective: Callable[[optuna.Trial], float],
    *,
    total: int,
    timeout: float | None = None,
    callbacks: Iterable[Callable] = (),
) -> int:
    """Run trials until ``total`` are finished (COMPLETE or PRUNED); returns how many ran now.

    A failing trial (an exception in the objective) is stored as FAIL with its
    reason and does not stop the study, unless several fail in a row.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    failures: list[str] = []
    ran = 0

    def watch(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        nonlocal ran
        ran += 1
        if trial.state == TrialState.FAIL:
            failures.append(trial.system_attrs.get("fail_reason", "unknown error"))
            if len(failures) >= MAX_CONSECUTIVE_FAILURES:
                study.stop()
        else:
            failures.clear()
        if count_finished(study) >= total:
            study.stop()

    while count_finished(study) < total:
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            break
        study.optimize(
            objective,
            n_trials=total - count_finished(study),
            timeout=left,
            catch=(Exception,),
            callbacks=[watch, *callbacks],
        )
        if len(failures) >= MAX_CONSECUTIVE_FAILURES:
            raise StudyAborted(f"{len(failures)} trials in a row failed; the last with: {failures[-1]}")
    return ran
