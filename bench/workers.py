"""Trials per hour of `lungsearch run --workers 2` against `--workers 1` on this machine.

Runs the real executable for each side, on the demo data with the cnn space
(small images, 1 epoch, batch size pinned), each on a fresh SQLite study, and
reports wall time and finished trials per hour (process start and data loading
included, as a user sees them).  Like with like: both sides get the same
``--recycle`` (default 0: no worker process is ever replaced; with 1 worker
``run`` then trains in its own process), and the pair is repeated
``--repeats`` times with the order alternating, so drift of the machine falls
on both sides.  Reported: each pair's ratio and the median, min and max.

What 2 cores can show: whether a second worker process adds throughput when
one trial does not keep both cores busy (small images, small batches), not how
the search scales; a bigger machine or the GPU (``bench.gpu search
--workers N``) is where scaling is measured.

    python -m bench.workers                 # 12 trials each, 32 px, 3 pairs
    python -m bench.workers --trials 6      # quicker
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

from bench.harness import lungsearch, spread
from bench.results import below_defaults


def run(workers: int, trials: int, image_size: int, folder: str, recycle: int = 0, tag: str = "") -> dict:
    storage = f"sqlite:///{folder}/w{workers}{tag}.db"
    start = time.perf_counter()
    lungsearch("run", "--data", "demo", "--space", "cnn", "--image-size", str(image_size), "--epochs", "1",
               "--batch-size", "32", "--trials", str(trials), "--sampler", "random", "--pruner", "none",
               "--storage", storage, "--workers", str(workers), "--recycle", str(recycle))
    seconds = time.perf_counter() - start
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
    ap.add_argument("--recycle", type=int, default=0, help="run's --recycle, the same for both sides (default 0: never)")
    ap.add_argument("--repeats", type=int, default=3, help="pairs of sides, the order alternating (default 3)")
    ap.add_argument("--no-record", action="store_true")
    args = ap.parse_args(argv)
    pairs = []
    figures = {}
    with tempfile.TemporaryDirectory() as folder:
        for i in range(args.repeats):
            pair = {"order": [1, 2] if i % 2 == 0 else [2, 1]}
            for workers in pair["order"]:
                pair[f"workers_{workers}"] = run(workers, args.trials, args.image_size, folder, args.recycle, tag=f"-{i}")
                print(f"pair {i}, --workers {workers}: {pair[f'workers_{workers}']}", flush=True)
            pair["two_over_one"] = round(pair["workers_2"]["trials_per_hour"] / pair["workers_1"]["trials_per_hour"], 3)
            pairs.append(pair)
            ratio = spread(p["two_over_one"] for p in pairs)
            print(f"trials per hour, --workers 2 / --workers 1: {pair['two_over_one']:.2f} (median so far {ratio['median']}) "
                  f"on {os.cpu_count()} cores", flush=True)
            figures = {"pairs": pairs, "two_over_one": ratio, "recycle": args.recycle, "cores": os.cpu_count(),
                       "trials": args.trials, "image_size": args.image_size,
                       "reduced": below_defaults(ap, args, "trials", "image_size", "repeats")}
            if not args.no_record:  # after every pair, so a run stopped early keeps what it finished
                from bench.results import record

                record("workers", figures)
    return figures


if __name__ == "__main__":
    main()
