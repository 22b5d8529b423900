"""A trial's data and model back as the search had them: the kept models, the data folder, retraining.

The train/validation data is decoded exactly as the search did (never the
test split), and a trial whose model is not kept is trained again through the
search's own training path (:mod:`lungsearch.trial`), from its stored params.
"""

from __future__ import annotations

import os

import optuna

import search
from lungsearch.export.base import ExportError


def _keeper(study: optuna.Study):
    artifacts = study.user_attrs.get("artifacts") or ""
    return search.ModelKeeper(artifacts) if os.path.isdir(artifacts) else None


def data_source(study: optuna.Study) -> str:
    """The data folder as an absolute path (the search stored it), so `best` works from any folder."""
    attrs = study.user_attrs
    source = (attrs.get("data") or {}).get("source") or (attrs.get("config") or {}).get("data")
    if not source:
        raise ExportError(f"study {study.study_name!r} does not say which data it was made on")
    return source


def _search_data(study: optuna.Study):
    """The study's train/validation data, decoded exactly as the search did (never the test split)."""
    from lungsearch import data as data_mod
    from lungsearch.trial import search_data, stored_config

    attrs = study.user_attrs
    if not attrs.get("config"):
        raise ExportError(f"study {study.study_name!r} stores no config (made by an older lungsearch?); cannot rebuild its data")
    return search_data(stored_config(study), source=data_source(study),
                       group_pattern=attrs.get("group_pattern", data_mod.DEFAULT_GROUP_PATTERN))


def retrain(study: optuna.Study, trial: optuna.trial.FrozenTrial, data) -> search.Trained:
    """Rebuild ``trial``'s model from its stored params and train it as the search did (:func:`lungsearch.trial.retrain`)."""
    from lungsearch import trial as trial_mod

    return trial_mod.retrain(study, trial, data)
