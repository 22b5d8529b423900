"""The one training path: a run's settings and data in, the objective that trains any trial of the study out.

`run` trains the study's trials with :func:`objective`; `best --retrain` (and
anything after it that trains a stored trial again) calls :func:`retrain`,
which goes through the very same :meth:`search.Objective.train` with a
``FixedTrial`` of the stored params.  So the seed formula
(:func:`search.trial_seed`), the build facts (:func:`build_facts`), the pinned
batch size, the epoch cap and the monitored metric exist in one place, and a
retrained trial reproduces the search's validation figures.
"""

from __future__ import annotations

import functools

import optuna

import search
from lungsearch.config import RunConfig
from search.objective import EPOCH_CAP_ATTR, FEATURES_ATTR

# why a trial still training when run --refine's search share of --timeout ends was pruned (its stored reason)
STOP_REASON = "run --refine: the search's time in --timeout ended"  # its share, or the rest refine gave back


def build_facts(config: RunConfig) -> dict:
    """Fixed facts every trial's build gets beyond shape and classes (every space's build takes **_)."""
    return {"hflip": config.hflip, "weights": config.weights, "cache_dir": config.cache_dir}  # cache_dir: converted backbone weights


def objective(config: RunConfig, space, data, *, keeper=None, watcher=None, on_batch=None, epochs: int | None = None,
              pool=None, stop_at: float | None = None) -> search.Objective:
    """The objective that trains trials of a study run with ``config`` on ``data``.

    ``epochs``: the cap, where it is not ``config.epochs`` (a retrain of a
    trial that was run under another ``--epochs``).  ``pool`` (all images,
    {"train": rows, "val": rows}): ``data`` is a fold of those images, and the
    cached features are computed once for all of them (a refit).
    ``stop_at`` (``time.time()``): the search's share of ``run --refine``'s
    --timeout ends then; a trial still training is stopped and pruned (see
    :class:`search.Objective`), so that refine has the rest.
    """
    from lungsearch import train
    from lungsearch.features import FeatureCache

    features = None
    if config.feature_cache and space.feature_split is not None:
        features = FeatureCache(space.feature_split, config.cache_dir, label=str(data.info.get("source", config.data)),
                                pool=pool[0] if pool else None, rows=pool[1] if pool else None)
    return search.Objective(
        space, input_shape=data.input_shape, num_classes=len(data.class_names), metric=config.metric, seed=config.seed,
        keeper=keeper, build_kwargs=build_facts(config), batch_size=config.batch_size, watcher=watcher,
        epochs=int(epochs or config.epochs), on_batch=on_batch, stop_at=stop_at, stop_reason=STOP_REASON,
        fit=functools.partial(train.fit, data=data, use_class_weights=config.class_weights, monitor=config.metric,
                              features=features),
    )


def search_data(config: RunConfig, *, source: str | None = None, color_mode: str | None = None, group_pattern: str | None = None,
                processes: int = 1):
    """The train/validation data of a study run with ``config``, decoded as the search decodes it (never the test split).

    ``source``, ``color_mode`` and ``group_pattern`` override the config's with
    what a stored study resolved them to (an absolute data path, the space's color);
    ``processes``: how many will hold the data at once (a run's workers), for the memory check.
    """
    from lungsearch import data as data_mod

    return data_mod.load_search_data(
        source or config.data, image_size=config.image_size, color_mode=color_mode or config.color or "grayscale",
        val_fraction=config.val_fraction, seed=config.seed, cache_dir=config.cache_dir, dedupe=config.dedupe,
        group_pattern=group_pattern or config.group_pattern, processes=processes,
    )


def stored_config(study: optuna.Study) -> RunConfig:
    """The config a study was last run with, as a :class:`RunConfig` (keys of older versions dropped, new ones defaulted).

    The one reader of a study's input: its ``image_size`` and ``color``, as the
    run resolved them (the space's own where no flag gave them).
    """
    attrs = study.user_attrs
    config = RunConfig.from_dict(attrs.get("config") or {})
    # Studies made before this version also stored the input as the user attributes input_shape ([side, side, channels])
    # and color_mode; read them where the config lacks the value (with_updates leaves a None alone).
    shape = attrs.get("input_shape")
    return config.with_updates(image_size=config.image_size or (int(shape[0]) if shape else None),
                               color=config.color or attrs.get("color_mode"))


def retrain(study: optuna.Study, trial: optuna.trial.FrozenTrial, data, *, space=None) -> search.Trained:
    """Train ``trial`` again from its stored params, exactly as the search trained it.

    The epoch cap is the one the trial ran under (``epoch_cap``, stored since
    this function exists; older trials fall back to the study's ``--epochs``),
    and so is the path: on cached features where the trial recorded them.
    """
    from spaces import get_space

    config = stored_config(study)
    if space is None:
        space = get_space((study.user_attrs.get("space") or {}).get("source") or config.space)
    fixed = optuna.trial.FixedTrial(space.fixed_params(trial.params), number=trial.number)
    cap = trial.user_attrs.get(EPOCH_CAP_ATTR)
    # the path the trial took: on cached features where it recorded them, else on pixels (every trial before the cache)
    config = config.with_updates(feature_cache=bool(trial.user_attrs.get(FEATURES_ATTR)))
    return objective(config, space, data, epochs=cap).train(fixed)
