"""`lungsearch run` around its trials: refuse an incomparable resume, say when --trials is reached, warm-start a new study, sum up.

Everything here reads or writes the study in storage before the first trial
or after the last; :mod:`lungsearch.commands._run_trials` runs the trials and
:mod:`lungsearch.commands._run_workers` starts worker processes for them.
"""

from __future__ import annotations


def check_resumable(storage, config, identity: dict | None = None) -> int:
    """Refuse to resume a study with settings, or data, that would make its trials incomparable.

    ``identity``: :func:`lungsearch.data.content_fingerprint` of ``--data`` now
    (None for the demo).  The data is compared by content, not by the text of
    ``--data``: the same folder given by another path resumes, another folder
    of the same name is refused.  Returns how many trials are still to run.
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
    differ = [k for k in IDENTITY_KEYS if k != "data" and k in stored and stored[k] != mine[k]]
    check_same_data(study, config, identity)
    if differ:
        what = ", ".join(f"{k}={stored[k]!r} (now {mine[k]!r})" for k in differ)
        raise ConfigError(f"study {name!r} was made with {what}; resume with the same settings or pass a new --study name")
    return max(0, config.trials - search.count_finished(study))


def check_same_data(study, config, identity: dict | None) -> None:
    """Refuse ``--data`` when it is not the folder the study was made on (compared by its files, or by its resolved path)."""
    import os

    from lungsearch.config import ConfigError

    was = study.user_attrs.get("data") or {}
    then = was.get("source") or (study.user_attrs.get("config") or {}).get("data")
    now = "demo" if identity is None else os.path.abspath(config.data)
    new_study = "resume with the folder the study was made on, or pass a new --study name to start a study on this one"
    if then is None:
        return
    if (then == "demo") != (identity is None):
        raise ConfigError(f"study {config.study_name!r} was made on {then}, not {now}; {new_study}")
    if identity is None:
        return
    stored = was.get("content_fingerprint")
    if stored is None:  # a study from before fingerprints: the resolved paths must agree
        if os.path.realpath(then) != os.path.realpath(now):
            raise ConfigError(f"study {config.study_name!r} was made on {then}, and --data is {now}; {new_study}")
        return
    if stored != identity["content_fingerprint"]:
        files_then, files_now = was.get("files") or {}, identity["files"]
        counts = ", ".join(f"{k} {files_then.get(k, '?')} then, {files_now.get(k, 0)} now" for k in ("train", "val"))
        same = "the same folder, whose images changed" if os.path.realpath(then) == os.path.realpath(now) else "another folder"
        raise ConfigError(f"study {config.study_name!r} was made on {then}; --data {now} is {same} (image files by name and size "
                          f"differ: {counts}); {new_study}")


def already_done(storage, config, *, next_lines: bool = True) -> int:
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
    summarise(study, config, next_lines=next_lines)
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
    again = search.requeue_interrupted(study)  # a resumed study: a warm start Ctrl-C stopped runs again
    if again:
        print(f"warm start: running again {', '.join(repr(n) for n in again)}, interrupted in an earlier run", flush=True)
    if names:
        quoted = [f'"{n}"' for n in names]  # a name may hold commas ("frozen backbone, small head")
        listed = quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} and {quoted[-1]}"
        print(f"warm start: the first trial{'s are' if len(names) > 1 else ' is'} {listed} "
              f"(the space's known-good point{'s' if len(names) > 1 else ''}; --no-warm-start to skip)", flush=True)


def resume_line(config) -> str:
    import shlex

    from lungsearch.config import as_flags

    return f"resume with: lungsearch run {shlex.join(as_flags(config))}"


def summarise(study, config, *, next_lines: bool = True) -> None:
    """The closing lines of a search: how many trials finished and the best; with ``next_lines``, the `next:` commands
    (``run --refine`` prints those once, after refine)."""
    import optuna

    import search

    from lungsearch.commands import hints

    finished = search.count_finished(study)
    if study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        best = study.best_trial
        print(f"done: {finished} trials finished; best trial #{best.number} {config.metric}={best.value:.4f}", flush=True)
        if next_lines:
            hints.show(hints.after_run(config.storage, study.study_name))
    elif not finished and config.timeout:  # the timeout came before any trial started (the trials waiting stay for the next run)
        import sys

        print("done: no trial finished", flush=True)
        print(f"warning: --timeout {config.timeout:g} s ran out before any trial finished; give a longer --timeout "
              f"(one trial takes at least the start-up and one epoch); {resume_line(config)}", file=sys.stderr, flush=True)
    else:
        print(f"done: {finished} trials finished, none completed (all pruned or failed)", flush=True)
        import collections
        import sys

        reasons = [search.loop.trial_reason(t) for t in study.get_trials(deepcopy=False)
                   if t.state.is_finished()]
        kinds = collections.Counter(r.split(":")[0].split(" at epoch")[0] for r in reasons)  # "not built", "pruned", ...
        if kinds:
            kind, count = kinds.most_common(1)[0]
            example = next(r for r in reasons if r.startswith(kind))
            hint = ("the space cannot build a model at this --image-size: give a larger one (the space's default where unsure)"
                    if kind == "not built" else "`lungsearch report` lists every trial's reason in trials.csv")
            print(f"warning: no trial completed; {count} of {len(reasons)} {kind} (e.g. {example}); {hint}", file=sys.stderr, flush=True)
