"""Hand over a trained model: the .keras file, a JSON that says what it is, and its evaluation.

:func:`export_best` (``lungsearch best --export``) does it; each of its jobs is
a module here, imported in this order (each uses only those above it):

- :mod:`~lungsearch.export.base`: :class:`ExportError`, :data:`FORMAT`, :func:`meta_path`
- :mod:`~lungsearch.export.staging`: write every file beside its target, then move them all into place at once
- :mod:`~lungsearch.export.pick`: which trial(s) to export
- :mod:`~lungsearch.export.model`: the ensemble model, what it averages, and the fresh-process reload check
- :mod:`~lungsearch.export.rebuild`: the study's data and the trials' model, kept or trained again
- :mod:`~lungsearch.export.held_out`: the test split, checked up front and read once
- :mod:`~lungsearch.export.decision`: the threshold rule and the decision it makes
- :mod:`~lungsearch.export.meta`: model.json
- :mod:`~lungsearch.export.card`: MODEL_CARD.md, the model card written beside the model
- :mod:`~lungsearch.export.refined`: the model and its threshold from `refine`'s out-of-fold predictions
- :mod:`~lungsearch.export.best`: :func:`export_best`, which runs them in turn

Callers use ``lungsearch.export.<name>`` for the names below; a test that
monkeypatches a module-level name patches the module that holds it.
"""

from lungsearch.export.base import FORMAT, ExportError, meta_path
from lungsearch.export.pick import default_ensemble, pick_trial, pick_trials
from lungsearch.export.rebuild import retrain
from lungsearch.export.best import export_best

__all__ = ["FORMAT", "ExportError", "default_ensemble", "export_best", "meta_path", "pick_trial", "pick_trials", "retrain"]
