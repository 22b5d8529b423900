"""`lungsearch run`: run or resume a search.

This module holds the flags, the config they resolve to, and :func:`cmd_run`,
which checks what can fail fast and then runs the search; the pieces live beside it:

- :mod:`lungsearch.commands._run_study`: resume checks, --trials already reached, warm starts, the closing summary
- :mod:`lungsearch.commands._run_trials`: trials in this process (:func:`work`), sampler seeds, the study's attributes
- :mod:`lungsearch.commands._run_workers`: worker processes for ``--workers`` (:func:`supervise`)

:func:`~lungsearch.commands._run_trials.sampler_seed` is public here too: the keras-tuner bench seeds its sampler as a run does;
so are the environment variables a supervisor hands its workers (:data:`DEADLINE_ENV`, :data:`STOP_ENV`).
"""

from __future__ import annotations

import argparse
import os
import sys

from lungsearch.commands._run_study import already_done, check_resumable, warm_start
# public here, see above: sampler_seed; and the environment a supervisor gives its workers (DEADLINE_ENV, STOP_ENV)
from lungsearch.commands._run_trials import DEADLINE_ENV, STOP_ENV, sampler_seed, work
from lungsearch.commands._run_workers import supervise
from lungsearch.commands.common import flag, quiet_frameworks, storage_args
from lungsearch.config import CHOICES

WEIGHTS_ENV = "LUNGSEARCH_WEIGHTS"  # backbone weights file for offline machines, when --weights is not given
SAMPLER_NAMES = CHOICES["sampler"]  # = search.SAMPLERS (kept in config so --help imports no Optuna)
PRUNER_NAMES = CHOICES["pruner"]  # = search.PRUNERS
REFINE_SHARE = 0.5  # of --timeout left to refine under --refine (bench.refine measures the split)
# run --refine: where refine refits nothing, the search gets the rest of --timeout back if at least this much is left
# (less would go to decoding the images again and stopping the trial it starts)
SEARCH_AGAIN_SECONDS = 60.0


def register(sub) -> None:
    p = sub.add_parser("run", help="run (or resume) a search", description="Run or resume an Optuna study that trains Keras models.")
    p.add_argument("--data", help="folder with train/<class>/ images (test/<class>/ is left for `best`), or 'demo' (default)")
    p.add_argument("--space", help="search space name (default cnn) or path to a .py space file")
    p.add_argument("--trials", type=int, help="total finished trials the study should reach, counting those of earlier runs (default 20)")
    p.add_argument("--epochs", type=int, help="epoch cap per trial (default 10)")
    p.add_argument("--image-size", type=int, help="input side in pixels (default: the space's, 64 for cnn)")
    p.add_argument("--color", choices=CHOICES["color"], help="color mode (default: the space's)")
    p.add_argument("--batch-size", type=int, help="pin the batch size, for every space (default: tuned, or 32 for a space file without fit_options)")
    p.add_argument("--metric", choices=CHOICES["metric"], help="objective to maximise (default val_auc)")
    p.add_argument("--sampler", choices=SAMPLER_NAMES, help="tpe (default), random, cmaes, qmc or grid; seeded by --seed")
    p.add_argument("--pruner", choices=PRUNER_NAMES, help="median (default), sha, hyperband or none")
    p.add_argument("--val-fraction", type=float, help="share of train held out by patient for validation (default 0.15)")
    p.add_argument("--seed", type=int, help="seed of split, sampler and weights (default 0)")
    p.add_argument("--timeout", type=float, help="stop starting new trials after this many seconds")
    p.add_argument("--refine", action="store_true",
                   help="after the search, `lungsearch refine` its best trials (5 finalists, 5 folds) so that `best` chooses on "
                        "out-of-fold predictions; within the same --timeout: at "
                        f"{1 - REFINE_SHARE:.0%} of it the search stops (a trial still training is pruned, once the study has "
                        "a completed one) and refine gets the rest, or gives it back to the search where it can refit "
                        "not even the best finalist in it")
    p.add_argument("--no-class-weights", action="store_true", help="do not weight imbalanced classes")
    p.add_argument("--no-warm-start", action="store_true",
                   help="do not start a new study from the space's known-good points (cnn: the seeds' hand CNN)")
    p.add_argument("--no-feature-cache", action="store_true",
                   help="train every epoch on pixels, even where a transfer model's frozen backbone could run once per image "
                        "and its cached output train the rest (the default; the trial's line says which path it took)")
    p.add_argument("--cache-dir", help="where decoded images are cached (default: the user's cache dir, lungsearch/)")
    p.add_argument("--dedupe", action="store_true", help="drop byte-identical copies of test images and repeats from train/validation")
    p.add_argument("--group-pattern", metavar="REGEX",
                   help="regex whose first matching group is the patient id in a file name (default: Kermany, NIH ChestX-ray14, CheXpert and MIMIC-CXR names)")
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
        feature_cache=False if args.no_feature_cache else None,
        cache_dir=args.cache_dir, dedupe=True if args.dedupe else None, group_pattern=args.group_pattern,
        hflip=args.hflip, weights=args.weights or os.environ.get(WEIGHTS_ENV) or None,
        workers=args.workers, heartbeat=args.heartbeat, recycle=args.recycle, keep_top=args.keep_top,
    )


def cmd_run(args: argparse.Namespace) -> int:
    import time

    started = time.monotonic()
    config = config_from_args(args)
    refine_after = bool(getattr(args, "refine", False)) and not args.worker
    ends = started + config.timeout if config.timeout else None  # the end of the user's whole --timeout
    if refine_after and config.timeout:
        config = config.with_updates(timeout=config.timeout * (1.0 - REFINE_SHARE))
    code = _search(args, config, stop_trials=refine_after, next_lines=not refine_after)
    if code != 0 or not refine_after:
        return code
    import search
    from lungsearch import refine
    from lungsearch.commands import hints

    study = search.load_study(search.open_storage(config.storage), config.study_name)
    # the rest of --timeout (the search had its first share of it)
    try:
        record = refine.refine(study, timeout=None if ends is None else max(1.0, ends - time.monotonic()))
    except KeyboardInterrupt:  # the search's next: lines were held back for after refine: say them here
        print("\ninterrupted: the fold fits refine finished are stored, and this carries on from them:", file=sys.stderr)
        hints.show([hints.command("refine", *hints.where(config.storage, config.study_name))], stream=sys.stderr)
        hints.show(hints.after_run(config.storage, config.study_name), stream=sys.stderr)
        return 130
    line = refine.summary_line(record)
    if line:
        print(line)
    rest = 0.0 if ends is None else ends - time.monotonic()
    if not record.get("finalists") and rest >= SEARCH_AGAIN_SECONDS:
        # refine began nothing (the best finalist's fold fits do not fit what is left, _within said so): the rest of
        # --timeout goes back to the search rather than ending the run half-way through the user's time
        print(f"run --refine: the search goes on for the {rest:.0f} s refine could not use (`lungsearch refine` with no "
              "--timeout refits the finalists later)", flush=True)
        code = _search(args, config.with_updates(timeout=rest), stop_trials=True, next_lines=False)
        if code != 0:
            return code
    hints.show(hints.after_run(config.storage, config.study_name))  # refine has refused a study with no completed trial
    return 0


def _search(args: argparse.Namespace, config, *, stop_trials: bool = False, next_lines: bool = True) -> int:
    """The search of `run` for ``config``: checks what can fail fast, then trains the trials here or in workers.

    ``stop_trials``: a trial still training when config.timeout ends is stopped and pruned (``run --refine``).
    ``next_lines``: close with the `next:` commands (``run --refine`` prints them once, after refine).
    """
    from lungsearch.config import ConfigError
    from spaces import get_space

    space = get_space(config.space)  # fails fast on an unknown space, before any decoding
    config = config.with_updates(image_size=config.image_size or space.image_size, color=config.color or space.color_mode)
    if config.weights not in (None, "imagenet", "random") and not os.path.isfile(config.weights):
        raise ConfigError(f"weights file {config.weights} does not exist; give --weights (or ${WEIGHTS_ENV}) a backbone weights file, or 'random'")

    if config.workers > config.trials and not args.worker:  # a process beyond the trials would never train one
        print(f"warning: --workers {config.workers} is more than the {config.trials} trials; starting {config.trials}",
              file=sys.stderr, flush=True)
        config = config.with_updates(workers=config.trials)
    if config.workers > (os.cpu_count() or 1) and not args.worker:
        print(f"warning: --workers {config.workers} on {os.cpu_count()} cores: the workers share them, so each trial "
              "trains slower (the memory check before decoding counts every worker)", file=sys.stderr, flush=True)
    if space.weights_note and config.weights in (None, "imagenet") and not args.worker:  # once per run, not per trial
        print(f"note: {space.name}: {space.weights_note}", file=sys.stderr, flush=True)

    from lungsearch import data as data_mod

    class_names = ("NORMAL", "PNEUMONIA")  # the demo's
    identity = None  # what a resume compares the study's data with (None: the demo)
    if config.data != "demo":  # a bad folder is one line now, not one per worker later
        layout = data_mod.read_layout(config.data, seed=config.seed, group_pattern=config.group_pattern,
                                      cache_dir=config.cache_dir, splits_wanted=("train", "val"))
        class_names = layout.class_names
        identity = data_mod.content_fingerprint(layout)
        names = layout.files("train")[0] + layout.files("val")[0]
        by_image = data_mod.check_coverage(data_mod.group_coverage(names, config.group_pattern), config.group_pattern, config.data)
        if by_image and not args.worker:  # a pattern of the user's that finds no patient at all has raised instead
            print(f"warning: {data_mod.word(by_image, flag)}", file=sys.stderr, flush=True)
        if layout.kind != "class-folders" and "test" not in layout.folders and not args.worker:
            print(f"warning: {config.data} has train/ but no test/: the search runs, but `best` evaluates the exported model "
                  "once on test/<class>/ images (patients not in train/); add them before `best`", file=sys.stderr, flush=True)

    quiet_frameworks()
    import search

    # a user's file, or a weights file (one that does not fit, or that a safe loader refuses): one trial build now,
    # before anything is stored, so a broken one is one line, not a study of failed trials
    if not args.worker and ((space.source and space.source != space.name) or config.weights not in (None, "imagenet", "random")):
        import optuna

        import spaces
        from lungsearch.trial import build_facts

        channels = 1 if config.color == "grayscale" else 3
        spaces.check_build(space, optuna.create_study(sampler=optuna.samplers.RandomSampler(config.seed)).ask(),
                           input_shape=(config.image_size, config.image_size, channels), num_classes=len(class_names),
                           **build_facts(config))

    storage = search.open_storage(config.storage, heartbeat=config.heartbeat)
    left = check_resumable(storage, config, identity)
    if not left and not args.worker:
        return already_done(storage, config, next_lines=next_lines)
    # decoded before anything is stored: images that cannot fit in memory are one line (counting every worker,
    # who then find them in the cache), not a study with its warm starts queued and no trial run
    from lungsearch.trial import search_data

    data = search_data(config, processes=1 if args.worker else config.workers)
    if not args.worker:
        warm_start(storage, config, space)
    # one process is enough, and starts faster, unless workers are asked for or a recycle falls due
    if not args.worker and (config.workers > 1 or (config.recycle and left > config.recycle)):
        del data  # each worker process maps its own from the cache; this one only watches them
        return supervise(config, storage, quiet=args.quiet, stop_trials=stop_trials, next_lines=next_lines)
    return work(config, space, storage, data, as_worker=args.worker, quiet=args.quiet, stop_trials=stop_trials,
                next_lines=next_lines)
