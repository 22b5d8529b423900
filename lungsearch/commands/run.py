"""`lungsearch run`: run or resume a search."""

from __future__ import annotations

import argparse
import os
import sys

from lungsearch import __version__
from lungsearch.commands._common import quiet_frameworks, storage_args

WEIGHTS_ENV = "LUNGSEARCH_WEIGHTS"  # backbone weights file for offline machines, when --weights is not given


def register(sub) -> None:
    p = sub.add_parser("run", help="run (or resume) a search", description="Run or resume an Optuna study that trains Keras models.")
    p.add_argument("--data", help="folder with train/<class>/ images (test/<class>/ is left for `best`), or 'demo' (default)")
    p.add_argument("--space", help="search space name (default cnn) or path to a .py space file")
    p.add_argument("--trials", type=int, help="total finished trials the study should reach, counting those of earlier runs (default 20)")
    p.add_argument("--epochs", type=int, help="epoch cap per trial (default 10)")
    p.add_argument("--image-size", type=int, help="input side in pixels (default: the space's, 64 for cnn)")
    p.add_argument("--color", choices=("grayscale", "rgb"), help="color mode (default: the space's)")
    p.add_argument("--batch-size", type=int, help="pin the batch size (default: tuned)")
    p.add_argument("--metric", choices=("val_auc", "val_accuracy"), help="objective to maximise (default val_auc)")
    p.add_argument("--sampler", help="tpe (default), random or qmc")
    p.add_argument("--pruner", help="median (default), sha, hyperband or none")
    p.add_argument("--val-fraction", type=float, help="share of train held out by patient for validation (default 0.15)")
    p.add_argument("--seed", type=int, help="seed of split, sampler and weights (default 0)")
    p.add_argument("--timeout", type=float, help="stop starting new trials after this many seconds")
    p.add_argument("--no-class-weights", action="store_true", help="do not weight imbalanced classes")
    p.add_argument("--cache-dir", help="where decoded images are cached (default: the user's cache dir, lungsearch/)")
    p.add_argument("--dedupe", action="store_true", help="drop byte-identical copies of test images and repeats from train/validation")
    p.add_argument("--group-pattern", metavar="REGEX",
                   help="regex whose first matching group is the patient id in a file name (default: Kermany names)")
    p.add_argument("--hflip", action="store_true", default=None, help="augment with random horizontal flips (off by default: X-rays have a fixed orientation)")
    p.add_argument("--weights", metavar="PATH", help=f"transfer spaces: local backbone weights file, or 'random' (default ${WEIGHTS_ENV}, else imagenet if it can be fetched)")
    p.add_argument("--config", help="TOML file of run settings (flags override it)")
    storage_args(p, study_help="study name (default <space>-<data folder>); an existing study is resumed", default=None)
    p.add_argument("--artifacts", help="folder for kept models (default: beside the SQLite file)")
    p.set_defaults(func=cmd_run)


def config_from_args(args: argparse.Namespace):
    from lungsearch.config import resolve

    return resolve(
        args.config,
        data=args.data, space=args.space, study=args.study, storage=args.storage, artifacts=args.artifacts,
        trials=args.trials, epochs=args.epochs, image_size=args.image_size, color=args.color,
        batch_size=args.batch_size, metric=args.metric, sampler=args.sampler, pruner=args.pruner,
        val_fraction=args.val_fraction, seed=args.seed, timeout=args.timeout,
        class_weights=False if args.no_class_weights else None,
        cache_dir=args.cache_dir, dedupe=True if args.dedupe else None, group_pattern=args.group_pattern,
        hflip=args.hflip, weights=args.weights or os.environ.get(WEIGHTS_ENV) or None,
    )


def cmd_run(args: argparse.Namespace) -> int:
    from lungsearch.config import IDENTITY_KEYS, ConfigError
    from spaces import get_space

    config = config_from_args(args)
    space = get_space(config.space)  # fails fast on an unknown space, before any decoding
    config = config.with_updates(image_size=config.image_size or space.image_size, color=config.color or space.color_mode)
    if config.data != "demo" and not os.path.isdir(config.data):
        raise ConfigError(f"data folder {config.data} does not exist; give --data a folder with train/<class>/ images, or --data demo")
    if config.weights not in (None, "imagenet", "random") and not os.path.isfile(config.weights):
        raise ConfigError(f"weights file {config.weights} does not exist; give --weights (or ${WEIGHTS_ENV}) a backbone weights file, or 'random'")

    quiet_frameworks()
    import functools

    import optuna

    import search
    from lungsearch import data as data_mod
    from lungsearch import train
    from lungsearch.progress import TrialPrinter

    storage = search.open_storage(config.storage)
    name = config.study_name
    existing = {s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)}
    if name in existing:
        stored = optuna.load_study(study_name=name, storage=storage).user_attrs.get("config", {})
        mine = config.to_dict()
        differ = [k for k in IDENTITY_KEYS if k in stored and stored[k] != mine[k]]
        if differ:
            what = ", ".join(f"{k}={stored[k]!r} (now {mine[k]!r})" for k in differ)
            raise ConfigError(f"study {name!r} was made with {what}; resume with the same settings or pass a new --study name")

    data = data_mod.load_search_data(
        config.data, image_size=config.image_size, color_mode=config.color,
        val_fraction=config.val_fraction, seed=config.seed,
        cache_dir=config.cache_dir, dedupe=config.dedupe, group_pattern=config.group_pattern,
    )
    facts = {"input_shape": data.input_shape, "num_classes": len(data.class_names)}
    build_kwargs = {"hflip": config.hflip, "weights": config.weights}
    if space.source and space.source != space.name:  # a user's file: one trial build now, so a broken file is one line
        import spaces

        spaces.check_build(space, optuna.create_study(sampler=optuna.samplers.RandomSampler(config.seed)).ask(), **facts, **build_kwargs)
    fixed = {"batch_size": config.batch_size} if config.batch_size else None
    study = optuna.create_study(
        storage=storage, study_name=name, direction="maximize", load_if_exists=True,
        sampler=search.make_sampler(config.sampler, config.seed, fixed),
        pruner=search.make_pruner(config.pruner, config.seed),
    )
    artifacts = config.artifacts or search.default_artifact_dir(config.storage)
    store_study_attrs(study, config, data, space, artifacts)
    keeper = search.ModelKeeper(artifacts)
    objective = search.Objective(
        space, input_shape=data.input_shape, num_classes=len(data.class_names), metric=config.metric,
        seed=config.seed, keeper=keeper, build_kwargs=build_kwargs,
        fit=functools.partial(train.fit, data=data, epochs=config.epochs, use_class_weights=config.class_weights, monitor=config.metric),
    )
    before = search.count_finished(study)
    print(
        f"study {name!r} in {config.storage}: {before} of {config.trials} trials finished; "
        f"data {len(data.train)} train / {len(data.val)} validation images, classes {', '.join(data.class_names)}, "
        f"{config.image_size}px {config.color}{data_summary(data.info)}",
        flush=True,
    )
    printer = TrialPrinter(config.metric, total=config.trials)
    try:
        search.run_trials(study, objective, total=config.trials, timeout=config.timeout, callbacks=[printer, keeper])
    except KeyboardInterrupt:
        print(f"\ninterrupted: finished trials are stored; run the same command again to resume study {name!r}", file=sys.stderr)
        return 130
    except search.StudyAborted as exc:
        print(f"lungsearch: error: {exc}", file=sys.stderr)
        return 1
    finished = search.count_finished(study)
    if study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        best = study.best_trial
        print(f"done: {finished} trials finished; best trial #{best.number} {config.metric}={best.value:.4f}")
        print(f"next: lungsearch report --study {name}   |   lungsearch best --study {name} --export model.keras")
    else:
        print(f"done: {finished} trials finished, none completed (all pruned or failed)")
    return 0


def data_summary(info: dict) -> str:
    """``; 2260/375 patients (overlap 0), 3 unreadable files skipped`` for the start line."""
    parts = []
    if "groups" in info:
        parts.append(f"{info['groups'].get('train')}/{info['groups'].get('val')} patients (overlap {info.get('group_overlap')})")
    if info.get("skipped"):
        parts.append(f"{len(info['skipped'])} unreadable files skipped (listed in the study)")
    if info.get("deduped"):
        parts.append(f"{len(info['deduped'])} duplicates dropped")
    return "; " + ", ".join(parts) if parts else ""


def store_study_attrs(study, config, data, space, artifacts: str) -> None:
    """What a study needs to say how it was made, and what `best` needs to export."""
    import keras
    import optuna

    from lungsearch import data as data_mod

    study.set_user_attr("config", config.to_dict())
    study.set_user_attr("space", {"name": space.name, "source": space.source or space.name})
    study.set_user_attr("class_names", list(data.class_names))
    study.set_user_attr("data", {k: v for k, v in data.info.items() if k != "skipped"})
    study.set_user_attr("skipped_files", data.info.get("skipped", []))
    study.set_user_attr("input_shape", list(data.input_shape))
    study.set_user_attr("color_mode", config.color)
    study.set_user_attr("group_pattern", data.info.get("group_pattern", data_mod.DEFAULT_GROUP_PATTERN))
    study.set_user_attr("artifacts", os.path.abspath(artifacts))
    study.set_user_attr(
        "versions",
        {"lungsearch": __version__, "keras": keras.__version__, "optuna": optuna.__version__, "backend": keras.backend.backend()},
    )
