"""The ``lungsearch`` command.  Heavy imports happen inside the commands."""

from __future__ import annotations

import argparse
import os
import sys

from lungsearch import __version__

def _user_errors() -> tuple[type[Exception], ...]:
    from lungsearch.config import ConfigError
    from lungsearch.data import DataError
    from spaces import SpaceError

    from lungsearch.export import ExportError
    from search.storage import StorageError

    return (ConfigError, DataError, ExportError, SpaceError, StorageError)


def _quiet_frameworks() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import warnings

    warnings.filterwarnings("ignore", message=".*ExperimentalWarning.*")
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


# --------------------------------------------------------------------------- run


def cmd_run(args: argparse.Namespace) -> int:
    from lungsearch.config import IDENTITY_KEYS, ConfigError, resolve
    from spaces import get_space

    config = resolve(
        args.config,
        data=args.data, space=args.space, study=args.study, storage=args.storage, artifacts=args.artifacts,
        trials=args.trials, epochs=args.epochs, image_size=args.image_size, color=args.color,
        batch_size=args.batch_size, metric=args.metric, sampler=args.sampler, pruner=args.pruner,
        val_fraction=args.val_fraction, seed=args.seed, timeout=args.timeout,
        class_weights=False if args.no_class_weights else None,
    )
    space = get_space(config.space)  # fails fast on an unknown space, before any decoding
    config = config.with_updates(
        image_size=config.image_size or space.image_size, color=config.color or space.color_mode
    )
    if config.data != "demo" and not os.path.isdir(config.data):
        raise ConfigError(f"data folder {config.data} does not exist; give --data a folder with train/<class>/ images, or --data demo")

    _quiet_frameworks()
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
    )
    fixed = {"batch_size": config.batch_size} if config.batch_size else None
    study = optuna.create_study(
        storage=storage, study_name=name, direction="maximize", load_if_exists=True,
        sampler=search.make_sampler(config.sampler, config.seed, fixed),
        pruner=search.make_pruner(config.pruner, config.seed),
    )
    artifacts = config.artifacts or search.default_artifact_dir(config.storage)
    _store_study_attrs(study, config, data, space, artifacts)
    keeper = search.ModelKeeper(artifacts)
    objective = search.Objective(
        space, input_shape=data.input_shape, num_classes=len(data.class_names), metric=config.metric,
        seed=config.seed, keeper=keeper,
        fit=functools.partial(train.fit, data=data, epochs=config.epochs, use_class_weights=config.class_weights),
    )
    before = search.count_finished(study)
    print(
        f"study {name!r} in {config.storage}: {before} of {config.trials} trials finished; "
        f"data {len(data.train)} train / {len(data.val)} validation images, classes {', '.join(data.class_names)}, "
        f"{config.image_size}px {config.color}",
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
    completed = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if completed:
        best = study.best_trial
        print(f"done: {finished} trials finished; best trial #{best.number} {config.metric}={best.value:.4f}")
        print(f"next: lungsearch report --study {name}   |   lungsearch best --study {name} --export model.keras")
    else:
        print(f"done: {finished} trials finished, none completed (all pruned or failed)")
    return 0


def _store_study_attrs(study, config, data, space, artifacts: str) -> None:
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
    study.set_user_attr("group_pattern", data_mod.DEFAULT_GROUP_PATTERN)
    study.set_user_attr("artifacts", os.path.abspath(artifacts))
    study.set_user_attr(
        "versions", {"lungsearch": __version__, "keras": keras.__version__, "optuna": optuna.__version__,
                     "backend": keras.backend.backend()}
    )


# --------------------------------------------------------------------------- report, best, dashboard


def cmd_report(args: argparse.Namespace) -> int:
    _quiet_frameworks()
    import search
    from lungsearch import report

    study = search.load_study(search.open_storage(args.storage, must_exist=True), args.study)
    written = report.write_report(study, args.out)
    for path in written:
        print(f"wrote {path}")
    return 0


def cmd_best(args: argparse.Namespace) -> int:
    _quiet_frameworks()
    import search
    from lungsearch import export

    study = search.load_study(search.open_storage(args.storage, must_exist=True), args.study)
    meta = export.export_best(study, args.export, trial_number=args.trial)
    print(f"wrote {args.export} and {export.meta_path(args.export)}: trial #{meta['trial']} "
          + ", ".join(f"{k}={v:.4f}" for k, v in meta["validation"].items() if isinstance(v, float)))
    return 0


def cmd_dashboard(args: argparse.Namespace) -> int:
    import optuna_dashboard

    import search

    storage = search.open_storage(args.storage, must_exist=True)
    from optuna.artifacts import FileSystemArtifactStore

    artifacts = search.default_artifact_dir(args.storage)
    store = FileSystemArtifactStore(artifacts) if os.path.isdir(artifacts) else None
    print(f"optuna-dashboard on http://127.0.0.1:{args.port} (Ctrl-C to stop)", flush=True)
    optuna_dashboard.run_server(storage, host="127.0.0.1", port=args.port, artifact_store=store)
    return 0


# --------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lungsearch", description="Hyperparameter search for chest X-ray classifiers.")
    parser.add_argument("--version", action="version", version=f"lungsearch {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="run (or resume) a search", description="Run or resume an Optuna study that trains Keras models.")
    run.add_argument("--data", help="folder with train/<class>/ images (test/<class>/ is left for `best`), or 'demo' (default)")
    run.add_argument("--space", help="search space name (default cnn) or path to a .py space file")
    run.add_argument("--trials", type=int, help="total finished trials the study should reach, counting those of earlier runs (default 20)")
    run.add_argument("--epochs", type=int, help="epoch cap per trial (default 10)")
    run.add_argument("--image-size", type=int, help="input side in pixels (default: the space's, 64 for cnn)")
    run.add_argument("--color", choices=("grayscale", "rgb"), help="color mode (default: the space's)")
    run.add_argument("--batch-size", type=int, help="pin the batch size (default: tuned)")
    run.add_argument("--metric", choices=("val_auc", "val_accuracy"), help="objective to maximise (default val_auc)")
    run.add_argument("--sampler", help="tpe (default), random or qmc")
    run.add_argument("--pruner", help="median (default), sha, hyperband or none")
    run.add_argument("--val-fraction", type=float, help="share of train held out by patient for validation (default 0.15)")
    run.add_argument("--seed", type=int, help="seed of split, sampler and weights (default 0)")
    run.add_argument("--timeout", type=float, help="stop starting new trials after this many seconds")
    run.add_argument("--no-class-weights", action="store_true", help="do not weight imbalanced classes")
    run.add_argument("--config", help="TOML file of run settings (flags override it)")
    _storage_args(run, study_help="study name (default <space>-<data folder>); an existing study is resumed", default=None)
    run.add_argument("--artifacts", help="folder for kept models (default: beside the SQLite file)")
    run.set_defaults(func=cmd_run)

    report = sub.add_parser("report", help="trials table and Pareto front of accuracy vs training time")
    _storage_args(report)
    report.add_argument("--out", default="report", help="folder for pareto.csv and pareto.png (default ./report)")
    report.set_defaults(func=cmd_report)

    best = sub.add_parser("best", help="export the best trial's trained model")
    _storage_args(best)
    best.add_argument("--export", required=True, metavar="PATH.keras", help="where to write the model (a .json lands beside it)")
    best.add_argument("--trial", type=int, help="export this trial instead of the best (its model must have been kept)")
    best.set_defaults(func=cmd_best)

    dash = sub.add_parser("dashboard", help="start optuna-dashboard on 127.0.0.1")
    _storage_args(dash, with_study=False)
    dash.add_argument("--port", type=int, default=8080)
    dash.set_defaults(func=cmd_dashboard)
    return parser


def _storage_args(parser, study_help="study name (default: the newest)", with_study=True, default="sqlite:///studies.db"):
    parser.add_argument("--storage", default=default, help="Optuna storage URL (default sqlite:///studies.db)")
    if with_study:
        parser.add_argument("--study", help=study_help)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except _user_errors() as exc:
        print(f"lungsearch: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
