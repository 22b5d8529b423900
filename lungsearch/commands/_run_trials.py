"""`lungsearch run` in one process: load the data, open the study, run trials until the study has enough.

This is what a lone run does, and what each worker process of ``--workers``
does (with ``--worker``): its sampler is seeded apart from the other workers'
and from earlier runs', the study's user attributes say how it was made, and
the run's deadline and start time come from the supervisor's environment
(:data:`DEADLINE_ENV`, :data:`STARTED_ENV`).
"""

from __future__ import annotations

import os
import sys

from lungsearch import __version__
from lungsearch.commands._run_study import resume_line, summarise

DEADLINE_ENV = "LUNGSEARCH_DEADLINE"  # time.time() after which workers start no trial (--timeout of the whole run)
STARTED_ENV = "LUNGSEARCH_STARTED"  # time.time() the run began: workers' elapsed time and ETA count from it
STOP_ENV = "LUNGSEARCH_STOP_AT_DEADLINE"  # "1": the deadline also stops a trial still training (run --refine)


def work(config, space, storage, data, *, as_worker: bool = False, quiet: bool = False, stop_trials: bool = False,
         next_lines: bool = True) -> int:
    """Run trials of the study in this process on ``data`` (:func:`lungsearch.trial.search_data`) until it has
    config.trials finished (or recycling is due).

    ``stop_trials`` (a worker: :data:`STOP_ENV`): where there is a --timeout, a
    trial still training at its end is stopped and pruned, as ``run --refine``
    needs the rest of the time; otherwise, as in Optuna, the timeout only stops
    starting trials.

    While the trials run, a SIGTERM ends the running trial like Ctrl-C (FAIL,
    storage consistent); the handler before is back on return, so what comes
    after in the same process (``run --refine``'s refine) is ended by SIGTERM
    as a plain ``lungsearch refine`` is, not by a KeyboardInterrupt that
    Python drops where it lands in a garbage-collection callback.  Such a
    drop during the trials is caught too: Ctrl-C and SIGTERM are also noted,
    and a noted one is raised again before the next training batch and after
    the next finished trial.
    """
    import signal

    noted: list[int] = []

    def on_signal(signum, _frame):
        noted.append(signum)
        raise KeyboardInterrupt

    watched = [signal.SIGTERM]
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # not where a caller made Ctrl-C do something else
        watched.append(signal.SIGINT)
    previous = {signum: signal.signal(signum, on_signal) for signum in watched}
    try:
        return _work(config, space, storage, data, as_worker=as_worker, quiet=quiet, stop_trials=stop_trials,
                     next_lines=next_lines, noted=noted)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _work(config, space, storage, data, *, as_worker: bool, quiet: bool, stop_trials: bool, next_lines: bool,
          noted: list) -> int:
    import time

    import optuna

    import search
    from lungsearch import trial as trial_mod
    from lungsearch.progress import Progress

    name = config.study_name
    fixed = {"batch_size": config.batch_size} if config.batch_size else None

    def sampler(trials_before: int):
        seed = sampler_seed(config.seed, trials_before)
        return search.make_sampler(config.sampler, seed, fixed, grid=space.grid)

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
    if as_worker:
        stop_trials = os.environ.get(STOP_ENV) == "1"
    started = float(os.environ[STARTED_ENV]) if as_worker and os.environ.get(STARTED_ENV) else None
    progress = Progress(config.metric, total=config.trials, epochs=config.epochs, quiet=quiet, started=started, deadline=deadline,
                        worker=worker if config.workers > 1 else None, workers=config.workers)

    def interrupt_if_noted(*_args) -> None:  # a Ctrl-C or SIGTERM whose KeyboardInterrupt Python dropped (see work)
        if noted:
            raise KeyboardInterrupt

    def on_batch(epoch: int, step: int, steps: int | None) -> None:
        interrupt_if_noted()
        if progress.bar:
            progress.batch(epoch, step, steps)

    objective = trial_mod.objective(config, space, data, keeper=keeper, watcher=progress, on_batch=on_batch,
                                    stop_at=deadline if stop_trials else None)
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
            study, objective, total=config.trials, timeout=timeout, callbacks=[progress, keeper, interrupt_if_noted],
            max_trials=recycle,
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
        summarise(study, config, next_lines=next_lines)
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


def data_summary(info: dict) -> str:
    """``; 2260/375 patients (overlap 0), 3 unreadable files skipped`` for the start line."""
    parts = []
    if (info.get("grouping") or {}).get("by") == "image":  # no patient ids in the names: never "overlap 0"
        parts.append("split by image (no patient id in most file names)")
    elif "groups" in info:
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
    study.set_user_attr("group_pattern", data.info.get("group_pattern", data_mod.DEFAULT_GROUP_PATTERN))
    study.set_user_attr("artifacts", os.path.abspath(artifacts))
    study.set_user_attr(
        "versions",
        {"lungsearch": __version__, "keras": keras.__version__, "optuna": optuna.__version__, "backend": keras.backend.backend()},
    )
