"""A trial's data and model back as the search had them: the kept models, the data folder, retraining.

The train/validation data is decoded exactly as the search did (never the
test split), and a trial whose model is not kept is rebuilt from its stored
params (``FixedTrial``) with the facts and seed the search gave it, then
trained as the search trained it.
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

    attrs = study.user_attrs
    config = attrs.get("config")
    if not config:
        raise ExportError(f"study {study.study_name!r} stores no config (made by an older lungsearch?); cannot rebuild its data")
    return data_mod.load_search_data(
        data_source(study), image_size=config["image_size"], color_mode=attrs.get("color_mode") or config.get("color") or "grayscale",
        val_fraction=config.get("val_fraction", 0.15), seed=config.get("seed", 0),
        group_pattern=attrs.get("group_pattern", data_mod.DEFAULT_GROUP_PATTERN),
        cache_dir=config.get("cache_dir"), dedupe=bool(config.get("dedupe", False)),
    )


def retrain(study: optuna.Study, trial: optuna.trial.FrozenTrial, data, *, verbose: int = 0):
    """Rebuild ``trial``'s model from its stored params and train it as the search did: (model, FitResult)."""
    import keras

    from lungsearch import train
    from spaces import get_space

    attrs = study.user_attrs
    config = attrs.get("config", {})
    space_ref = (attrs.get("space") or {}).get("source") or config.get("space") or "cnn"
    space = get_space(space_ref)
    fixed = optuna.trial.FixedTrial(space.fixed_params(trial.params), number=trial.number)
    keras.backend.clear_session(free_memory=True)
    keras.utils.set_random_seed(config.get("seed", 0) * 100_003 + trial.number)  # the seed the search gave this trial
    # the facts the search built it with: --weights random must retrain from random weights, --hflip with flips
    facts = {k: config[k] for k in ("hflip", "weights", "cache_dir") if config.get(k) is not None}
    model = space.build(fixed, input_shape=data.input_shape, num_classes=len(data.class_names), **facts)
    options = space.fit_options(fixed)
    if config.get("batch_size"):  # pinned by --batch-size, as the search trained it
        options = {**options, "batch_size": int(config["batch_size"])}
    epochs = int(trial.user_attrs.get("epochs") or config.get("epochs", 10))
    result = train.fit(model, data, epochs=epochs, use_class_weights=config.get("class_weights", True), verbose=verbose,
                       monitor=config.get("metric", "val_loss"), **options)  # the search restored the best epoch of its objective
    return model, result
