"""Read a study back from storage: top trials, Pareto fronts, and Optuna's own plots.

Everything comes from the study's storage, and every user attribute is read
with a default, so a study from any space, or an old one that lacks some
attributes, still gets every part of the report that its trials can support.

One module per job, imported in this order (each uses only those above it):

- :mod:`~lungsearch.report.frames`: the trials table, degenerate trials, the Pareto fronts
- :mod:`~lungsearch.report.fronts`: a front as PNG and interactive HTML, :func:`write_html`
- :mod:`~lungsearch.report.optuna_plots`: Optuna's own plots and the parameter importances
- :mod:`~lungsearch.report.index`: index.html, the whole report in one file
- :mod:`~lungsearch.report.summary`: the printed summary, and the note where the models are not on disk
- :mod:`~lungsearch.report.write`: :func:`write_report`, every file of a report

Callers use ``lungsearch.report.<name>`` for the names below.
"""

from lungsearch.report.frames import ACCURACY_NOTE, CHANCE_AUC, degenerate_mask, front_frame, majority_rate, trials_frame
from lungsearch.report.fronts import DEGENERATE_LABEL, NEEDS_PLOTLY, count_label, log_ticks, log_x, write_html
from lungsearch.report.optuna_plots import MIN_TRIALS_FOR_IMPORTANCE, RELIABLE_IMPORTANCE_TRIALS, importance_caveat
from lungsearch.report.summary import TOP, models_note, summary
from lungsearch.report.write import COST_AXES, write_report

__all__ = [
    "ACCURACY_NOTE", "CHANCE_AUC", "COST_AXES", "DEGENERATE_LABEL", "MIN_TRIALS_FOR_IMPORTANCE", "NEEDS_PLOTLY",
    "RELIABLE_IMPORTANCE_TRIALS", "TOP",
    "count_label", "degenerate_mask", "front_frame", "importance_caveat", "log_ticks", "log_x", "majority_rate", "models_note",
    "summary", "trials_frame", "write_html", "write_report",
]
