"""Keep the trained models that matter; delete the rest.

A trial's model is kept while it is among the ``keep_top`` best trials (by
the objective: what ``best --ensemble K`` averages) or on the Pareto front of
validation accuracy against training time.  Models live in an Optuna artifact
store (a folder), linked from the trial's ``model_artifact`` user attribute;
once a model is dominated it can never come back, so deletion is safe with
several workers.
"""

from __future__ import annotations

import os
import shutil
import tempfile

import numpy as np
import optuna
from optuna.artifacts import FileSystemArtifactStore, upload_artifact
from optuna.trial import TrialState

from search.pareto import pareto_mask

ARTIFACT_ATTR = "model_artifact"
FOLDER_ATTR = "artifacts"  # study user attr: the folder of the study's kept models


def model_file(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> str | None:
    """The path of ``trial``'s kept model where that file is on disk now, else None.

    A trial's ``model_artifact`` attribute outlives its file: the keeper deletes
    the models of trials that a later one dominates, and a database copied
    without its artifacts folder (``studies.db.example``) has none at all.
    """
    artifact = trial.user_attrs.get(ARTIFACT_ATTR)
    folder = study.user_attrs.get(FOLDER_ATTR)
    if not artifact or not folder:
        return None
    path = os.path.join(folder, artifact)
    return path if os.path.isfile(path) else None


def models_missing(study: optuna.Study) -> bool:
    """Models were kept for this study, and not one of them is on disk: a database that came without its models."""
    recorded = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.user_attrs.get(ARTIFACT_ATTR)]
    return bool(recorded) and not any(model_file(study, t) for t in recorded)


def why_no_model(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> str:
    """In words, why ``trial`` has no model file to export (for when :func:`model_file` is None)."""
    folder = study.user_attrs.get(FOLDER_ATTR) or "no folder recorded"
    if trial.user_attrs.get(ARTIFACT_ATTR) and not os.path.isdir(folder):
        return (f"this database came without its models: trial {trial.number}'s was kept in {folder}, which is not on this "
                "machine (a study database copied alone, like studies.db.example)")
    if trial.user_attrs.get(ARTIFACT_ATTR):
        return (f"the model of trial {trial.number} is no longer kept: it was deleted from {folder} when later trials "
                "dominated it (only best and Pareto-front models are kept)")
    return f"the model of trial {trial.number} was not kept (only best and Pareto-front models are, in {folder})"


# `best` averages the 3 best trials unless told otherwise, so a run keeps the models of the 3 best by default (`run
# --keep-top`, `best --ensemble`: the one default of both): over 14 searches in bench/RESULTS.md ("Averaging the top 3:
# `best`'s default"), the top 3 averaged scored a higher test AUC than the single pick in 11 (median +0.009, from -0.010
# to +0.053); its 3 losses were all 30-minute cnn searches on chest_xray.
DEFAULT_ENSEMBLE = 3


class ModelKeeper:
    def __init__(self, folder: str, keep_top: int | None = None):
        """Keep models in ``folder``: of the ``keep_top`` best trials (None: :data:`DEFAULT_ENSEMBLE`) and the front."""
        os.makedirs(folder, exist_ok=True)
        self.folder = folder
        self.keep_top = DEFAULT_ENSEMBLE if keep_top is None else max(1, int(keep_top))
        self.store = FileSystemArtifactStore(folder)

    def path(self, artifact_id: str) -> str:
        return os.path.join(self.folder, artifact_id)

    def has_model(self, trial: optuna.trial.FrozenTrial) -> bool:
        artifact = trial.user_attrs.get(ARTIFACT_ATTR)
        return bool(artifact) and os.path.isfile(self.path(artifact))

    def worth_keeping(self, study: optuna.Study, value: float, accuracy: float, seconds: float) -> bool:
        """Would a trial with these results be among the top ``keep_top`` or on the front right now?"""
        done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if len(done) < self.keep_top or value >= _kth_best([t.value for t in done], self.keep_top):
            return True
        return bool(_front(done, extra=(accuracy, seconds))[-1])

    def save(self, trial: optuna.Trial, model) -> str:
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, f"trial-{trial.number}.keras")
            model.save(path)
            artifact_id = upload_artifact(artifact_store=self.store, file_path=path, study_or_trial=trial)
        trial.set_user_attr(ARTIFACT_ATTR, artifact_id)
        return artifact_id

    def __call__(self, study: optuna.Study, _trial: optuna.trial.FrozenTrial) -> None:
        """Study callback: delete the models of trials that are now dominated."""
        every = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        done = [t for t in every if self.has_model(t)]
        if len(done) < 2:
            return
        # top-k among all completed trials (a kept model's rank can only fall), ties kept
        cut = _kth_best([t.value for t in every], self.keep_top)
        keep = _front(done) | (np.array([t.value for t in done]) >= cut)
        for t, k in zip(done, keep):
            if not k:
                try:
                    self.store.remove(t.user_attrs[ARTIFACT_ATTR])
                except Exception:  # another worker removed it first
                    pass

    def export(self, trial: optuna.trial.FrozenTrial, dest: str) -> None:
        shutil.copyfile(self.path(trial.user_attrs[ARTIFACT_ATTR]), dest)


def _kth_best(values, k: int) -> float:
    """The k-th largest value (the smallest of fewer)."""
    ordered = sorted(values, reverse=True)
    return ordered[min(k, len(ordered)) - 1] if ordered else -np.inf


def _front(trials, extra: tuple[float, float] | None = None) -> np.ndarray:
    """Pareto mask of validation accuracy (max) vs training time (min); ``extra`` is appended last."""
    points = [(t.user_attrs.get("val_accuracy", -np.inf), t.user_attrs.get("train_seconds", np.inf)) for t in trials]
    if extra is not None:
        points.append(extra)
    acc, sec = np.array(points, dtype=float).T
    return pareto_mask(acc, sec)
