"""Optuna's own plots of a study (history, intermediate values, importances) as HTML, and the importances printed.

A plot is skipped, with the reason printed, where the study cannot support it;
importances from fewer than ``RELIABLE_IMPORTANCE_TRIALS`` completed trials
carry a caveat in the figure, the printout and the report's notes.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import optuna
from optuna.trial import TrialState

from lungsearch.report.fronts import write_html
from search.overview import metric_name

MIN_TRIALS_FOR_IMPORTANCE = 4  # fANOVA on fewer completed trials says nothing
RELIABLE_IMPORTANCE_TRIALS = 20  # below this, importances are printed and drawn with a caveat


def write_optuna_plots(study: optuna.Study, out_dir: str, stream=None) -> tuple[list, list[str]]:
    """optuna.visualization's history, intermediate values and importances, each as HTML (skipped when they cannot apply).

    Returns ([(name, path, figure)], notes).
    """
    import functools

    from optuna import visualization as vis

    named = {"target_name": metric_name(study)}  # the objective's name on the axis, not "Objective Value"
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    importances_possible = len(complete) >= MIN_TRIALS_FOR_IMPORTANCE and _varied_params(complete)
    caveat = importance_caveat(len(complete))
    plots = [("optimization_history", functools.partial(vis.plot_optimization_history, **named), len(complete) >= 1, "no completed trial"),
             ("intermediate_values", vis.plot_intermediate_values, any(t.intermediate_values for t in study.trials), "no trial reported per-epoch values"),
             ("param_importances", functools.partial(vis.plot_param_importances, **named), importances_possible,
              f"fewer than {MIN_TRIALS_FOR_IMPORTANCE} completed trials with varied params")]
    figures, notes = [], []
    for name, plot, possible, reason in plots:
        if not possible:
            print(f"  ({name}.html skipped: {reason})", file=stream)
            continue
        path = os.path.join(out_dir, f"{name}.html")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fig = plot(study)
        except (ValueError, RuntimeError) as exc:  # e.g. importances when every trial shares one value
            print(f"  ({name}.html skipped: {exc})", file=stream)
            continue
        if name == "param_importances" and caveat:
            fig.update_layout(title=f"Hyperparameter importances: {caveat}")
        write_html(fig, path)
        figures.append((name, path, fig))
    if importances_possible:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                importances = optuna.importance.get_param_importances(study)
            line = "param importances (fANOVA): " + ", ".join(f"{k} {v:.2f}" for k, v in importances.items())
            print(line + (f"\n  ({caveat})" if caveat else ""), file=stream)
            if caveat:
                notes.append(f"Parameter importances: {caveat}.")
        except (ValueError, RuntimeError):
            pass
    return figures, notes


def importance_caveat(completed: int) -> str | None:
    if completed >= RELIABLE_IMPORTANCE_TRIALS:
        return None
    return (f"from {completed} completed trials, fewer than {RELIABLE_IMPORTANCE_TRIALS}: a rough guide at best, "
            "they can change order with a few more trials")


def _varied_params(trials) -> bool:
    values = [t.value for t in trials]
    return len({tuple(sorted(t.params.items())) for t in trials}) > 1 and np.ptp(values) > 0
