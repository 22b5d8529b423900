"""Which local storage survives parallel workers: SQLite (WAL + busy timeout) or Optuna's journal file?

Runs ``--workers`` processes of the real trial loop (search.run_trials) on one
study per storage, side by side in one run, with a short objective (a few ms
of work plus several user attributes and per-epoch reports, like a real
trial's writes), and counts errors (failed trials and crashed workers) and
trials per hour.  Training time is left out on purpose: it is the same for
every storage and would hide the storage's own cost and contention.

    python -m bench.storage                  # 4 workers x 150 trials each
    python -m bench.storage --trials 40      # quicker
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import tempfile
import time

KINDS = {
    "sqlite-wal": lambda d: f"sqlite:///{d}/wal.db",  # lungsearch's SQLite: WAL, busy timeout, heartbeats
    "journal": lambda d: f"journal:///{d}/journal.log",  # Optuna's JournalFileBackend (file locks)
    "sqlite-plain": lambda d: f"sqlite:///{d}/plain.db",  # Optuna's own defaults: rollback journal, no timeout set
}


def _objective(trial):
    x = trial.suggest_float("x", -5, 5)
    y = trial.suggest_int("y", 1, 64, log=True)
    z = trial.suggest_categorical("z", ["adam", "sgd", "rmsprop"])
    for epoch in range(3):  # like per-epoch validation reports
        trial.report(-(x * x) - epoch, epoch)
        time.sleep(0.005)
    for key in ("train_seconds", "epochs", "param_count", "val_accuracy", "val_auc", "val_loss"):
        trial.set_user_attr(key, 1.0)
    trial.set_user_attr("history", {"loss": [1.0, 0.5, 0.25], "opt": z})
    return -(x * x) + y * 0.0


def _worker(kind: str, url: str, name: str, total: int, queue) -> None:
    import optuna

    import search

    optuna.logging.set_verbosity(optuna.logging.CRITICAL)
    errors = []
    try:
        if kind == "sqlite-plain":
            storage = optuna.storages.RDBStorage(url)
        else:
            storage = search.open_storage(url, heartbeat=5)
        study = optuna.load_study(study_name=name, storage=storage)
        search.run_trials(study, _objective, total=total)
    except Exception as exc:  # a crashed worker is the error this bench counts
        errors.append(f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
    queue.put(errors)


def measure(kind: str, folder: str, workers: int, total: int) -> dict:
    import optuna
    from optuna.trial import TrialState

    import search

    url = KINDS[kind](folder)
    storage = optuna.storages.RDBStorage(url) if kind == "sqlite-plain" else search.open_storage(url, heartbeat=5)
    name = f"bench-{kind}"
    optuna.create_study(storage=storage, study_name=name, direction="maximize")
    queue = mp.get_context("spawn").Queue()
    procs = [mp.get_context("spawn").Process(target=_worker, args=(kind, url, name, total, queue)) for _ in range(workers)]
    start = time.perf_counter()
    for p in procs:
        p.start()
    crashes = []
    for _ in procs:
        crashes += queue.get()
    for p in procs:
        p.join()
    seconds = time.perf_counter() - start
    trials = optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)
    finished = sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
    failed = [t for t in trials if t.state == TrialState.FAIL and not t.user_attrs.get("surplus")]
    return {
        "workers": workers, "target": total, "finished": finished, "failed_trials": len(failed),
        "surplus_trials": sum(bool(t.user_attrs.get("surplus")) for t in trials),
        "crashed_workers": len(crashes), "errors": crashes[:3] + [t.user_attrs.get("fail_reason") for t in failed[:3]],
        "seconds": round(seconds, 1), "trials_per_hour": round(finished / seconds * 3600),
    }


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--trials", type=int, default=600, help="study total, shared by the workers")
    ap.add_argument("--kinds", default=",".join(KINDS), help=f"comma list of {', '.join(KINDS)}")
    ap.add_argument("--no-record", action="store_true")
    args = ap.parse_args(argv)
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        for kind in args.kinds.split(","):
            results[kind] = measure(kind, folder, args.workers, args.trials)
            r = results[kind]
            print(f"{kind:<13} {r['finished']}/{r['target']} finished, {r['failed_trials']} failed trials, "
                  f"{r['crashed_workers']} crashed workers, {r['surplus_trials']} surplus, {r['seconds']} s, "
                  f"{r['trials_per_hour']} trials/hour  {r['errors'] or ''}", flush=True)
    if "sqlite-wal" in results and "journal" in results:
        ratio = results["sqlite-wal"]["trials_per_hour"] / max(1, results["journal"]["trials_per_hour"])
        print(f"sqlite-wal / journal trials per hour: {ratio:.2f}")
        results["wal_over_journal"] = round(ratio, 2)
    if not args.no_record:
        from bench.results import below_defaults, record

        results["reduced"] = below_defaults(ap, args, "workers", "trials", "kinds")
        record("storage", results)
    return results


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    main()
