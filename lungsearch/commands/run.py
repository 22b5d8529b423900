"""`lungsearch run`: run or resume a search."""

from __future__ import annotations

import argparse
import os
import sys

from lungsearch import __version__
from lungsearch.commands._common import quiet_frameworks, storage_args

WEIGHTS_ENV = "LUNGSEARCH_WEIGHTS"  # backbone weights file for offline machines, when --weights is not given
SAMPLER_NAMES = ("tpe", "random", "cmaes", "qmc", "grid")  # = search.SAMPLERS (kept here so --help imports no Optuna)
PRUNER_NAMES = ("median", "sha", "hyperband", "none")  # = search.PRUNERS
DEADLINE_ENV = "LUNGSEARCH_DEADLINE"  # time.time() after which workers start no trial (--timeout of the whole run)
STARTED_ENV = "LUNGSEARCH_STARTED"  # time.time() the run began: workers' elapsed time and ETA count from it


def register(sub) -> None:
    p = sub.add_parser("run", help="run (or resume) a search", description="Run or resume an Optuna study that trains Keras models.")
    p.add_argument("--data", help="folder with train/<class>/ images (test/<class>/ is left for `best`), or 'demo' (default)")
    p.add_argument("--space", help="search space name (default cnn) or path to a .py space file")
    p.add_argument("--trials", type=int, help="total finished trials the study should reach, counting those of earlier runs (default 20)")
    p.add_argument("--epochs", type=int, help="epoch cap per trial (default 10)")
    p.add_argument("--image-size", type=int, help="input side in pixels (default: the space's, 64 for cnn)")
    p.add_argument("--color", choices=("grayscale", "rgb"), help="color mode (default: the space's)")
    p.add_argument("--batch-size", type=int, help="pin the batch size, for every space (default: tuned, or 32 for a space file without fit_options)")
    p.add_argument("--metric", choices=("val_auc", "val_accuracy"), help="objective to maximise (default val_auc)")
    p.add_argument("--sampler", choices=SAMPLER_NAMES, help="tpe (default), random, cmaes, qmc or grid; seeded by --seed")
    p.add_argument("--pruner", choices=PRUNER_NAMES, help="median (default), sha, hyperband or none")
    p.add_argument("--val-fraction", type=float, help="share of train held out by patient for validation (default 0.15)")
    p.add_argument("--seed", type=int, help="seed of split, sampler and weights (default 0)")
    p.add_argument("--timeout", type=float, help="stop starting new trials after this many seconds")
    p.add_argument("--no-class-weights", action="store_true", help="do not weight imbalanced classes")
    p.add_argument("--no-warm-start", action="store_true",
                   help="do not start a new study from the space's known-good points (cnn: the seeds' hand CNN)")
    p.add_argument("--cache-dir", help="where decoded images are cached (default: the user's cache dir, lungsearch/)")
    p.add_argument("--dedupe", action="store_true", help="drop byte-identical copies of test images and repeats from train/validation")
    p.add_argument("--group-pattern", metavar="REGEX",
                   help="regex whose first matching group is the patient id in a file name (default: Kermany names)")
    p.add_argument("--hflip", action="store_true", default=None, help="augment with random horizontal flips (off by default: X-rays have a fixed orientation)")
    p.add_argument("--weights", metavar="PATH", help=f"transfer spaces: local backbone weights file, or 'random' (default ${WEIGHTS_ENV}, else ImageNet: installed for efficientnet-lite0, downloaded by Keras for the others)")
    p.add_argument("--workers", type=int, help="worker processes on this machine, one study (default 1; one GPU each where there are several)")
    p.add_argument("--heartbeat", type=int, help="seconds between heartbeats of a running trial on RDB storage; a trial silent for twice that is failed and retried with the same parameters (default 30)")
    p.add_argument("--recycle", type=int, help="replace each worker process by a fresh one after this many trials, as Keras/TensorFlow memory grows from trial to trial in one process (default 10; 0: never, train in this process)")
    p.add_argument("--config", help="TOML file of run settings (flags override it)")
    p.add_argument("--quiet", action="store_true",
                   help="one line per finished trial: no trial-start or epoch lines, no progress bars (for scripts and logs)")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)  # set on the processes --workers starts
    storage_args(p, study_help="study name (default <space>-<data folder>); an existing study is resumed", default=None)
    p.add_argument("--artifacts", help="folder for kept models (default: beside the SQLite file)")
    p.add_argument("--keep-top", type=int, metavar="K",
                   help="keep the models of the K best trials, besides the accuracy/time front (default 3; `best --ensemble K` averages them)")
    p.set_defaults(func=cmd_run)


def config_from_args(args: argparse.Namespace):
    from lungsearch.config import resolve

    return resolve(
        args.config,
        data=args.data, space=args.space, study=args.study, storage=args.storage, artifacts=args.artifacts,
        trials=args.trials, epochs=args.epochs, image_size=args.image_size, color=args.color,
        batch_size=args.batch_size, metric=args.metric, sampler=args.sampler, pruner=args.pruner,
        val_fraction=args.val_fraction, seed=args.seed, timeout=args.timeout,
        class_weights=False if args.no_class_weights else None, warm_start=False if args.no_warm_start else None,
        cache_dir=args.cache_dir, dedupe=True if args.dedupe else None, group_pattern=args.group_pattern,
        hflip=args.hflip, weights=args.weights or os.environ.get(WEIGHTS_ENV) or None,
        workers=args.workers, heartbeat=args.heartbeat, recycle=args.recycle, keep_top=args.keep_top,
    )


def cmd_run(args: argparse.Namespace) -> int:
    from lungsearch.config import ConfigError
    from spaces import get_space

    config = config_from_args(args)
    space = get_space(config.space)  # fails fast on an unknown space, before any decoding
    config = config.with_updates(image_size=config.image_size or space.image_size, color=config.color or space.color_mode)
    if config.weights not in (None, "imagenet", "random") and not os.path.isfile(config.weights):
        raise ConfigError(f"weights file {config.weights} does not exist; give --weights (or ${WEIGHTS_ENV}) a backbone weights file, or 'random'")

    if space.weights_note and config.weights in (None, "imagenet") and not args.worker:  # once per run, not per trial
        print(f"note: {space.name}: {space.weights_note}", file=sys.stderr, flush=True)

    class_names = ("NORMAL", "PNEUMONIA")  # the demo's
    if config.data != "demo":  # a bad folder is one line now, not one per worker later
        from lungsearch import data as data_mod

        layout = data_mod.read_layout(config.data, seed=config.seed, group_pattern=config.group_pattern,
                                      cache_dir=config.cache_dir, splits_wanted=("train", "val"))
        class_names = layout.class_names
        images = len(layout.files("train")[0]) + len(layout.files("val")[0])  # an image size that cannot fit: before decoding
        data_mod.check_image_size(config.image_size, images, config.color, processes=1 if args.worker else config.workers)

    quiet_frameworks()
    import search

    # a user's file, or a weights file (one that does not fit, or that a safe loader refuses): one trial build now,
    # before anything is stored, so a broken one is one line, not a study of failed trials
    if not args.worker and ((space.source and space.source != space.name) or config.weights not in (None, "imagenet", "random")):
        import optuna

        import spaces

        channels = 1 if config.color == "grayscale" else 3
        spaces.check_build(space, optuna.create_study(sampler=optuna.samplers.RandomSampler(config.seed)).ask(),
                           input_shape=(config.image_size, config.image_size, channels), num_classes=len(class_names),
                           **build_facts(config))

    storage = search.open_storage(config.storage, heartbeat=config.heartbeat)
    left = check_resumable(storage, config)
    if not left and not args.worker:
        return already_done(storage, config)
    if not args.worker:
        warm_start(storage, config, space)
    # one process is enough, and starts faster, unless workers are asked for or a recycle falls due
    if not args.worker and (config.workers > 1 or (config.recycle and left > config.recycle)):
        return supervise(config, storage, quiet=args.quiet)
    return work(config, space, storage, as_worker=args.worker, quiet=args.quiet)


def build_facts(config) -> dict:
    """Fixed facts every trial's build gets beyond shape and classes (every space's build takes **_)."""
    return {"hflip": config.hflip, "weights": config.weights, "cache_dir": config.cache_dir}  # cache_dir: converted backbone weights


def check_resumable(storage, config) -> int:
    """Refuse to resume a study with settings that would make its trials incomparable.

    Returns how many trials are still to run.
    """
    import optuna

    import search
    from lungsearch.config import IDENTITY_KEYS, ConfigError

    name = config.study_name
    existing = {s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)}
    if name not in existing:
        return config.trials
    study = optuna.load_study(study_name=name, storage=storage)
    stored = study.user_attrs.get("config", {})
    mine = config.to_dict()
    differ = [k for k in IDENTITY_KEYS if k in stored and stored[k] != mine[k]]
    if differ:
        what = ", ".join(f"{k}={stored[k]!r} (now {mine[k]!r})" for k in differ)
        raise ConfigError(f"study {name!r} was made with {what}; resume with the same settings or pass a new --study name")
    return max(0, config.trials - search.count_finished(study))


def already_done(storage, config) -> int:
    """--trials is the study's total and it is reached: say so, and how to run more, instead of loading data for nothing."""
    import shlex

    import optuna

    import search
    from lungsearch.config import as_flags

    study = optuna.load_study(study_name=config.study_name, storage=storage)
    finished = search.count_finished(study)
    more = config.with_updates(trials=finished + config.trials)
    print(f"study {config.study_name!r} in {config.storage} already has {finished} finished trials, and --trials {config.trials} "
          f"is the study's total: nothing to run. To run {config.trials} more, raise --trials:", flush=True)
    print(f"  lungsearch run {shlex.join(as_flags(more))}", flush=True)
    summarise(study, config)
    return 0


def warm_start(storage, config, space) -> None:
    """A new study: enqueue the space's known-good points as its first trials (before any worker starts)."""
    import optuna

    import search
    from spaces import check_warm_start

    if not config.warm_start or not space.warm_starts:
        return
    for point in space.warm_starts:  # a user file's bad point is one line now, not a mislabelled trial later
        check_warm_start(space, point)
    study = optuna.create_study(storage=storage, study_name=config.study_name, direction="maximize", load_if_exists=True)
    pinned = {"batch_size": config.batch_size} if config.batch_size else None
    names = search.enqueue_warm_starts(study, space.warm_starts, limit=config.trials, pinned=pinned)
    if names:
        print(f"warm start: the first trial{'s are' if len(names) > 1 else ' is'} {', '.join(names)} "
              f"(the space's known-good point{'s' if len(names) > 1 else ''}; --no-warm-start to skip)", flush=True)


def resume_line(config) -> str:
    import shlex

    from lungsearch.config import as_flags

    return f"resume with: lungsearch run {shlex.join(as_flags(config))}"


def supervise(config, storage, *, quiet: bool = False) -> int:
    """Start config.workers worker processes on one study and wait for them (recycling each as asked)."""
    import tempfile
    import time

    import optuna

    import search
    from lungsearch.config import write_toml

    name = config.study_name

    deadline = None if config.timeout is None else time.time() + config.timeout

    def unfinished() -> bool:
        if deadline is not None and time.time() >= deadline:
            return False
        try:
            return search.count_finished(optuna.load_study(study_name=name, storage=storage)) < config.trials
        except KeyError:  # no worker has created the study yet
            return True

    print(f"study {name!r} in {config.storage}: {config.workers} worker process(es)"
          + (f", each replaced after {config.recycle} trials" if config.recycle else ""), flush=True)
    with tempfile.TemporaryDirectory(prefix="lungsearch-run-") as tmp:
        path = os.path.join(tmp, "config.toml")
        write_toml(config, path)
        command = search.workers.python_module_command("lungsearch", "run", "--config", path, "--worker", *(["--quiet"] if quiet else []))
        # --timeout is the whole run's, also across recycled workers: they get the deadline, not a fresh timeout
        extra = {STARTED_ENV: repr(time.time())}
        if deadline is not None:
            extra[DEADLINE_ENV] = repr(deadline)
        code = search.workers.supervise(command, config.workers, keep_going=unfinished, extra_env=extra)
    if code == search.workers.INTERRUPTED:
        print(f"\ninterrupted: running trials are marked FAIL, finished trials are kept; {resume_line(config)}", file=sys.stderr)
        return code
    if code == 0:
        summarise(optuna.load_study(study_name=name, storage=storage), config)
    return code


def work(config, space, storage, *, as_worker: bool = False, quiet: bool = False) -> int:
    """Run trials of the study in this process until it has config.trials finished (or recycling is due)."""
    import functools
    import signal
    import time

    import optuna

    import search
    from lungsearch import data as data_mod
    from lungsearch import train
    from lungsearch.progress import Progress

    def on_term(signum, _frame):  # a SIGTERM ends the trial like Ctrl-C: FAIL, storage consistent
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    name = config.study_name
    data = data_mod.load_search_data(
        config.data, image_size=config.image_size, color_mode=config.color,
        val_fraction=config.val_fraction, seed=config.seed,
        cache_dir=config.cache_dir, dedupe=config.dedupe, group_pattern=config.group_pattern,
    )
    build_kwargs = build_facts(config)
    fixed = {"batch_size": config.batch_size} if config.batch_size else None

    def sampler(trials_before: int):
        seed = sampler_seed(config.seed, trials_before)
        return search.make_sampler(config.sampler, seed, fixed, grid=getattr(space, "grid", None))

    study = optuna.create_study(
        storage=storage, study_name=name, direction="maximize", load_if_exists=True,
        sampler=sampler(0), pruner=search.make_pruner(config.pruner, config.seed),
    )
    trials_before = search.started_trials(study)  # warm starts still queued are not draws of the sampler
    # A resumed study or a recycled worker, seeded as at the start, would replay the first trials' draws.
    # QMC is the exception: it keeps its place in the sequence in the study, under its seed.
    if trials_before and config.sampler != "qmc":
        study.sampler = sampler(trials_before)
    artifacts = config.artifacts or search.default_artifact_dir(config.storage)
    store_study_attrs(study, config, data, space, artifacts)
    keeper = search.ModelKeeper(artifacts, keep_top=config.keep_top)
    worker = os.environ.get("LUNGSEARCH_WORKER") if as_worker else None
    timeout = config.timeout
    deadline = None if timeout is None else time.time() + timeout
    if as_worker and os.environ.get(DEADLINE_ENV):
        deadline = float(os.environ[DEADLINE_ENV])
        timeout = max(0.0, deadline - time.time())
    started = float(os.environ[STARTED_ENV]) if as_worker and os.environ.get(STARTED_ENV) else None
    progress = Progress(config.metric, total=config.trials, epochs=config.epochs, quiet=quiet, started=started, deadline=deadline,
                        worker=worker if config.workers > 1 else None, workers=config.workers)
    objective = search.Objective(
        space, input_shape=data.input_shape, num_classes=len(data.class_names), metric=config.metric,
        seed=config.seed, keeper=keeper, build_kwargs=build_kwargs, batch_size=config.batch_size, watcher=progress,
        fit=functools.partial(train.fit, data=data, epochs=config.epochs, use_class_weights=config.class_weights, monitor=config.metric,
                              on_batch=progress.batch if progress.bar else None),
    )
    before = search.count_finished(study)
    print(
        (f"worker {worker}: " if as_worker and worker else "")
        + f"study {name!r} in {config.storage}: {before} of {config.trials} trials finished; "
        f"data {len(data.train)} train / {len(data.val)} validation images, classes {', '.join(data.class_names)}, "
        f"{config.image_size}px {config.color}{data_summary(data.info)}",
        flush=True,
    )
    recycle = config.recycle if as_worker and config.recycle else None
    index = (worker or "1/1").split("/")[0]
    if as_worker and index.isdigit():  # queued warm starts are taken one worker at a time (SQLite locks no row)
        search.wait_for_earlier_workers(study, int(index))
    try:
        ran = search.run_trials(
            study, objective, total=config.trials, timeout=timeout, callbacks=[progress, keeper], max_trials=recycle,
        )
    except KeyboardInterrupt:
        if not as_worker:
            print(f"\ninterrupted: the running trial is marked FAIL, finished trials are kept; {resume_line(config)}", file=sys.stderr)
        return 130
    except search.StudyAborted as exc:
        print(f"lungsearch: error: {exc}", file=sys.stderr)
        return 1
    if recycle and ran >= recycle and search.count_finished(study) < config.trials:
        return search.workers.RECYCLE
    if not as_worker:
        summarise(study, config)
    return 0


def sampler_seed(seed: int, trials_before: int = 0) -> int:
    """The seed of this worker's sampler: --seed for the first worker of a new study, distinct otherwise.

    Workers seeded alike would propose the very same parameters to each other,
    and a process that joins a study with ``trials_before`` trials in it (a
    resumed run, a recycled worker) seeded as at the start would propose the
    first trials' parameters again (random and TPE start-up draws alike).
    """
    worker = os.environ.get("LUNGSEARCH_WORKER", "1/1").split("/")[0]
    first = seed + 1_000 * (int(worker) - 1) if worker.isdigit() else seed
    if not trials_before:
        return first
    import numpy as np

    return int(np.random.SeedSequence([first, trials_before]).generate_state(1)[0])


def summarise(study, config) -> None:
    import optuna

    import search

    from lungsearch.commands import _hints

    finished = search.count_finished(study)
    if study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        best = study.best_trial
        print(f"done: {finished} trials finished; best trial #{best.number} {config.metric}={best.value:.4f}", flush=True)
        _hints.show(_hints.after_run(config.storage, study.study_name))
    else:
        print(f"done: {finished} trials finished, none completed (all pruned or failed)", flush=True)


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
    for attempt in range(3):  # two workers creating one study may race on the first insert of a key
        try:
            _set_study_attrs(study, config, data, space, artifacts)
            return
        except Exception:
            if attempt == 2:
                raise
            import time

            time.sleep(0.5 + attempt)


def _set_study_attrs(study, config, data, space, artifacts: str) -> None:
    import keras
    import optuna

    from lungsearch import data as data_mod

    study.set_user_attr("config", config.to_dict())
    if study.metric_names != [config.metric]:  # optuna-dashboard and Optuna's plots name the objective, not "Objective 0"
        study.set_metric_names([config.metric])
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
