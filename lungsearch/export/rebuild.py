"""A trial's data and model back as the search had them: the kept models, the data folder, retraining.

The train/validation data is decoded exactly as the search did (never the
test split), and a trial whose model is not kept is trained again through the
search's own training path (:mod:`lungsearch.trial`), from its stored params.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass

import optuna

import search
from lungsearch.export.base import ExportError
from lungsearch.export.model import ensemble_model, members_of


def keeper(study: optuna.Study) -> search.ModelKeeper | None:
    """The study's kept models (``run --keep-top``), or None where their folder is not on this machine."""
    artifacts = study.user_attrs.get("artifacts") or ""
    return search.ModelKeeper(artifacts) if os.path.isdir(artifacts) else None


def data_source(study: optuna.Study) -> str:
    """The data folder as an absolute path (the search stored it), so `best` works from any folder."""
    attrs = study.user_attrs
    source = (attrs.get("data") or {}).get("source") or (attrs.get("config") or {}).get("data")
    if not source:
        raise ExportError(f"study {study.study_name!r} does not say which data it was made on")
    return source


def search_data(study: optuna.Study):
    """The study's train/validation data, decoded exactly as the search did (never the test split)."""
    from lungsearch import data as data_mod
    from lungsearch import trial as trial_mod

    attrs = study.user_attrs
    if not attrs.get("config"):
        raise ExportError(f"study {study.study_name!r} stores no config (made by an older lungsearch?); cannot rebuild its data")
    return trial_mod.search_data(trial_mod.stored_config(study), source=data_source(study),
                                 group_pattern=attrs.get("group_pattern", data_mod.DEFAULT_GROUP_PATTERN))


def retrain(study: optuna.Study, trial: optuna.trial.FrozenTrial, data) -> search.Trained:
    """Rebuild ``trial``'s model from its stored params and train it as the search did (:func:`lungsearch.trial.retrain`)."""
    from lungsearch import trial as trial_mod

    return trial_mod.retrain(study, trial, data)


@dataclass
class Built:
    """The model an export writes, what it averages, and the training curves its report shows."""

    model: object
    members: list[str]  # the sub-models whose probabilities it averages (:func:`~lungsearch.export.model.members_of`); [] for one
    history: dict  # the first trial's training curves
    kept_epoch: int | None  # 1-based: the epoch whose weights were kept


def build(study: optuna.Study, trials: list, data, kept, missing: list[int], *, retrain_model: bool, refined=None, log=print) -> Built:
    """One trial's model, the K trials' averaged, or (``refined``) the refined finalists' fold models mixed.

    A trial whose model is not kept (``missing``), or every trial under
    ``retrain_model``, is trained again from its params; the others are read
    from ``kept`` (:func:`keeper`). The augmentation layers do nothing at inference, so the
    exported model leaves them out and loads in plain Keras.
    """
    import keras

    from spaces import augment

    trial = trials[0]
    kept_epoch = trial.user_attrs.get("final_epoch")
    augment.register()  # a kept model may hold RandomAffine
    members, history = [], None
    for t in ([] if refined is not None else trials):
        if t.number in missing or retrain_model:
            log(f"trial #{t.number}: training again from its params {t.params}")
            trained = retrain(study, t, data)
            model = trained.model
            if t is trial:  # the curves shown are the best trial's
                history, kept_epoch = trained.history, (trained.final % max(trained.epochs, 1)) + 1
        else:
            with tempfile.TemporaryDirectory() as tmp:
                path = os.path.join(tmp, "kept.keras")
                kept.export(t, path)
                model = keras.models.load_model(path, compile=False)  # for inference: no optimizer state
        members.append(augment.inference_model(model))
    if refined is not None:
        from lungsearch.export.refined import build_model

        model = build_model(study, refined)
    else:
        model = members[0] if len(members) == 1 else ensemble_model(members)
    averaged = members_of(model) if refined is not None or len(members) > 1 else []
    return Built(model, averaged, history if history is not None else trial.user_attrs.get("history") or {}, kept_epoch)
