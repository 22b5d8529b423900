"""The trial loop: run a study until it holds the number of trials asked for.

Several processes (on one machine or many) may run this loop on one study at
once.  ``total`` stays the study's total across all of them, exactly: a worker
starts a trial only while finished + running trials are fewer than ``total``,
and a trial that still finds itself beyond ``total`` once started (two workers
asked at the same instant) fails at once, before training, with its reason.
While the remaining trials are running elsewhere, a worker waits instead of
leaving, so it can take over a trial that fails or whose worker dies.
"""

from __future__ import annotations

import gc
import sys
import time
import warnings
from typing import Callable, Iterable

import optuna
from optuna.trial import TrialState

from search.optuna_private import heartbeat_enabled, study_storage, trial_id

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)  # what counts towards --trials; failures are retried
MAX_CONSECUTIVE_FAILURES = 3
SURPLUS_ATTR = "surplus"  # user attr of a trial failed before training because the study was already full
REASON_ATTR = "fail_reason"  # user attr: why a trial failed (Optuna 5 stores no reason itself)
OOM_ATTR = "out_of_memory"
WAIT_SECONDS = 2.0  # poll interval while other workers run the last trials


class StudyAborted(RuntimeError):
    """Every recent trial failed: something is wrong with the set-up, not with the trials."""


class StudyFull(RuntimeError):
    """This trial would take the study beyond its total; it is failed without training."""


def count_finished(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=FINISHED))


def count_running(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))


def is_out_of_memory(exc: BaseException) -> bool:
    """Host MemoryError, or a backend's out-of-memory error (TF ResourceExhaustedError, CUDA OOM)."""
    if isinstance(exc, MemoryError):
        return True
    name = type(exc).__name__.lower()
    text = str(exc).lower()
    return "resourceexhausted" in name or "outofmemory" in name or "out of memory" in text or "oom when allocating" in text


def fail_reason(trial: optuna.trial.FrozenTrial) -> str:
    return trial.user_attrs.get(REASON_ATTR) or trial.system_attrs.get("fail_reason") or "unknown error"


def trial_reason(trial: optuna.trial.FrozenTrial) -> str:
    """Why a trial was pruned or failed, as stored; "" for a completed or running one."""
    if trial.state == TrialState.PRUNED:
        return str(trial.user_attrs.get("pruned_reason") or "pruned")
    if trial.state == TrialState.FAIL:
        return fail_reason(trial)
    return ""


def fail_stale(study: optuna.Study) -> None:
    """Mark trials of dead workers FAIL (and queue their retries), where heartbeats are on."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


class Guarded:
    """The objective, plus the --trials guard and a stored reason for every failure."""

    def __init__(self, objective: Callable[[optuna.Trial], float], total: int):
        self.objective, self.total = objective, total

    def __call__(self, trial: optuna.Trial) -> float:
        claimed = [
            t for t in trial.study.get_trials(deepcopy=False, states=(*FINISHED, TrialState.RUNNING))
            if t.state != TrialState.RUNNING or t.number <= trial.number
        ]
        if len(claimed) > self.total:
            trial.set_user_attr(SURPLUS_ATTR, True)
            _set_reason(trial, f"not run: the study already had its {self.total} trials finished or running")
            raise StudyFull(f"study already has {self.total} trials finished or running")
        try:
            return self.objective(trial)
        except optuna.TrialPruned:
            raise
        except KeyboardInterrupt:
            _set_reason(trial, "interrupted (Ctrl-C or SIGTERM)")
            raise
        except ArithmeticError as exc:
            if isinstance(exc, ZeroDivisionError):  # a bug, not a diverging model
                _set_reason(trial, f"{type(exc).__name__}: {exc}")
                raise
            # NaN or infinite loss (lungsearch.train raises NonFiniteLoss): the model diverged,
            # a result about these parameters, so the trial is pruned, not failed
            trial.set_user_attr("pruned_reason", f"non-finite loss: {exc}")
            raise optuna.TrialPruned(f"non-finite loss: {exc}") from exc
        except Exception as exc:
            oom = is_out_of_memory(exc)
            if oom:
                trial.set_user_attr(OOM_ATTR, True)
                _free_memory()
            prefix = "out of memory: " if oom else ""
            _set_reason(trial, f"{prefix}{type(exc).__name__}: {_first_line(exc)}")
            raise


def _first_line(exc: BaseException) -> str:
    """The message of ``exc`` without Keras' decorations (ANSI codes, argument dumps)."""
    import re

    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].startswith("Exception encountered when calling"):
        lines = lines[1:]
    return (lines[0] if lines else "")[:300]


def _set_reason(trial: optuna.Trial, reason: str) -> None:
    """Store why a trial failed: a user attr (shown by the dashboard) and the ``fail_reason`` system attr."""
    trial.set_user_attr(REASON_ATTR, reason)
    trial.storage.set_trial_system_attr(trial_id(trial), "fail_reason", reason)


def _free_memory() -> None:
    keras = sys.modules.get("keras")  # only a process that trains has Keras loaded; never import it here
    if keras is not None:
        try:
            keras.backend.clear_session(free_memory=True)
        except Exception:  # freeing is best effort after an OOM
            pass
    gc.collect()


def run_trials(
    study: optuna.Study,
    objective: Callable[[optuna.Trial], float],
    *,
    total: int,
    timeout: float | None = None,
    callbacks: Iterable[Callable] = (),
    max_trials: int | None = None,
    wait: float = WAIT_SECONDS,
) -> int:
    """Run trials until ``total`` are finished (COMPLETE or PRUNED); returns how many ran here.

    A failing trial (an exception in the objective) is stored as FAIL with its
    reason and does not stop the study, unless several fail in a row.
    ``max_trials`` stops this process after that many trials (for recycling).
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    guarded = Guarded(objective, total)
    failures: list[str] = []
    ran = 0

    callbacks = list(callbacks)

    def watch(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        nonlocal ran
        if trial.user_attrs.get(SURPLUS_ATTR):
            return  # never trained: neither a failure to count nor a result to show
        ran += 1
        if trial.state == TrialState.FAIL:
            failures.append(fail_reason(trial))
        else:
            failures.clear()
        for callback in callbacks:
            callback(study, trial)

    while True:
        fail_stale(study)
        finished = count_finished(study)
        if finished >= total or (max_trials is not None and ran >= max_trials):
            break
        if deadline is not None and time.monotonic() >= deadline:
            break
        if finished + count_running(study) >= total:
            if not heartbeat_enabled(study_storage(study)):
                break  # without heartbeats a dead worker's trial would look alive for ever
            time.sleep(wait)  # the last trials run elsewhere; stay to take over one that fails
            continue
        study.optimize(guarded, n_trials=1, catch=(Exception,), callbacks=[watch], gc_after_trial=True)
        if len(failures) >= MAX_CONSECUTIVE_FAILURES:
            raise StudyAborted(f"{len(failures)} trials in a row failed; the last with: {failures[-1]}")
    return ran
