"""Hand over a trained model: the .keras file, and a JSON that says what it is."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import optuna
from optuna.trial import TrialState

import search
from lungsearch import __version__


class ExportError(ValueError):
    """The asked-for model cannot be exported."""

    user_error = True  # the CLI prints it on one line and exits 2


def meta_path(model_path: str) -> str:
    return os.path.splitext(model_path)[0] + ".json"


def pick_trial(study: optuna.Study, trial_number: int | None) -> optuna.trial.FrozenTrial:
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not done:
        raise ExportError(f"study {study.study_name!r} has no completed trial yet; run more trials first")
    if trial_number is None:
        return study.best_trial
    for t in done:
        if t.number == trial_number:
            return t
    raise ExportError(f"trial {trial_number} is not a completed trial of {study.study_name!r}; see `lungsearch report`")


def export_best(study: optuna.Study, dest: str, trial_number: int | None = None) -> dict:
    if not dest.endswith(".keras"):
        raise ExportError(f"--export must name a .keras file, got {dest}")
    trial = pick_trial(study, trial_number)
    artifacts = study.user_attrs.get("artifacts") or ""
    keeper = search.ModelKeeper(artifacts) if os.path.isdir(artifacts) else None
    if keeper is None or not keeper.has_model(trial):
        raise ExportError(
            f"the model of trial {trial.number} was not kept (only best and Pareto-front models are, in {artifacts or 'no folder'})"
        )
    os.makedirs(os.path.dirname(os.path.abspath(dest)), exist_ok=True)
    keeper.export(trial, dest)
    attrs = study.user_attrs
    config = attrs.get("config", {})
    meta = {
        "class_names": attrs.get("class_names"),
        "image_size": config.get("image_size"),
        "input_shape": attrs.get("input_shape"),
        "color_mode": attrs.get("color_mode"),
        "preprocessing": "raw uint8 pixels in; rescaling is inside the model",
        "study": study.study_name,
        "trial": trial.number,
        "space": attrs.get("space"),
        "params": trial.params,
        "objective": config.get("metric"),
        "validation": {k: trial.user_attrs.get(k) for k in ("val_accuracy", "val_auc", "val_loss")},
        "train_seconds": trial.user_attrs.get("train_seconds"),
        "epochs": trial.user_attrs.get("epochs"),
        "param_count": trial.user_attrs.get("param_count"),
        "data": attrs.get("data"),
        "versions": {**attrs.get("versions", {}), "lungsearch_export": __version__},
    }
    with open(meta_path(dest), "w") as fh:
        json.dump(meta, fh, indent=2)
    check_loads(dest)
    return meta


def check_loads(path: str) -> None:
    """Load the model in a fresh process, as its user will."""
    code = "import sys, keras; keras.models.load_model(sys.argv[1])"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([sys.executable, "-c", code, path], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["unknown error"])[-1]
        raise ExportError(f"exported {path} does not load in a fresh process: {tail}")
