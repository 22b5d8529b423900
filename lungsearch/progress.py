"""One line per finished trial: number, state, value, time, epochs, best so far."""

from __future__ import annotations

import sys

import optuna
from optuna.trial import TrialState


class TrialPrinter:
    def __init__(self, metric: str, total: int, stream=None):
        self.metric, self.total, self.stream = metric, total, stream or sys.stdout

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        attrs = trial.user_attrs
        finished = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))
        parts = [f"[{finished}/{self.total}] trial {trial.number:>3}", f"{trial.state.name:<8}"]
        if attrs.get("warm_start"):
            parts.insert(1, f"(warm start {attrs['warm_start']})")
        if trial.state == TrialState.COMPLETE:
            parts.append(f"{self.metric}={trial.value:.4f}")
        elif "history" in attrs and attrs["history"].get(self.metric):
            parts.append(f"{self.metric}={attrs['history'][self.metric][-1]:.4f}")
        if "train_seconds" in attrs:
            parts.append(f"{attrs['train_seconds']:.1f}s")
        if "epochs" in attrs:
            parts.append(f"{attrs['epochs']} ep")
        if trial.state == TrialState.FAIL:
            parts.append(f"({trial.system_attrs.get('fail_reason', 'failed')})")
        try:
            best = study.best_trial
            parts.append(f"best #{best.number} {best.value:.4f}")
        except ValueError:
            pass
        print("  ".join(parts), file=self.stream, flush=True)
