"""Trials per hour of `lungsearch run --workers 2` against `--workers 1` on this machine.

Runs the real executable twice, side by side in one run, on the demo data with
the cnn space (small images, 1 epoch, batch size pinned), each on a fresh
SQLite study, and reports wall time and finished trials per hour (process
start and data loading included, as a user sees them).

    python -m bench.workers                 # 12 trials each, 32 px
    python -m bench.workers --trials 6      # quicker
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

from bench.results import below_defaults


def run(workers: int, trials: int, image_size: int, folder: str) -> dict:
    exe = shutil.which("lungsearch", path=os.path.dirname(sys.executable)) or "lungsearch"
    storage = f"sqlite:///{folder}/w{workers}.db"
    command = [exe, "run", "--data", "demo", "--space", "cnn", "--image-size", str(image_size), "--epochs", "1",
               "--batch-size", "32", "--trials", str(trials), "--sampler", "random", "--pruner", "none",
               "--storage", storage, "--workers", str(workers)]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"--workers {workers} failed ({done.returncode}): {done.stderr[-2000:]}")
    import optuna

    import search

    study = search.load_study(search.open_storage(storage, heartbeat=None), None)
    finished = search.count_finished(study)
    train = sum(t.user_attrs.get("train_seconds", 0.0) for t in study.trials)
    return {"workers": workers, "finished": finished, "seconds": round(seconds, 1),
            "trials_per_hour": round(finished / seconds * 3600, 1), "mean_train_seconds": round(train / max(1, finished), 2),
            "failed": sum(t.state == optuna.trial.TrialState.FAIL for t in study.trials)}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=12)
    ap.add_argument("--image-size", type=int, default=32)
    ap.add_argument("--no-record", action="store_true")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        one = run(1, args.trials, args.image_size, folder)
        print(f"--workers 1: {one}", flush=True)
        two = run(2, args.trials, args.image_size, folder)
        print(f"--workers 2: {two}", flush=True)
    ratio = two["trials_per_hour"] / one["trials_per_hour"]
    print(f"trials per hour, --workers 2 / --workers 1: {ratio:.2f} on {os.cpu_count()} cores")
    figures = {"workers_1": one, "workers_2": two, "two_over_one": round(ratio, 2), "trials": args.trials,
               "image_size": args.image_size, "reduced": below_defaults(ap, args, "trials", "image_size")}
    if not args.no_record:
        from bench.results import record

        record("workers", figures)
    return figures


if __name__ == "__main__":
    main()
