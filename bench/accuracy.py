"""Accuracy on this CPU: a search with the defaults for a wall budget, then ``best --export``; test metrics with CIs.

    python -m bench.accuracy                              # 30 minutes, chest_xray, lungsearch's defaults
    python -m bench.accuracy --budget 600                 # a reduced run

Runs the real executable: ``lungsearch run --data DATA --trials 10000
--timeout BUDGET`` (every other setting lungsearch's default) on a fresh SQLite
study, then ``lungsearch best --export`` (the test split is read there, once),
and prints test accuracy, sensitivity, specificity and ROC AUC with their 95%
bootstrap CIs next to Kermany et al. (Cell 2018) and the seed-style hand CNN
measured on this data.  Goal: test accuracy >= 0.90.  Key ``accuracy_cpu``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

KERMANY = {"accuracy": 0.928, "sensitivity": 0.932, "specificity": 0.901, "roc_auc": 0.968}
HAND_CNN = {"accuracy": 0.756, "roc_auc": 0.903}  # the seed-style hand CNN on this data (issue 7)
METRICS = ("accuracy", "sensitivity", "specificity", "roc_auc")


def lungsearch(*args: str) -> None:
    exe = shutil.which("lungsearch", path=os.path.dirname(sys.executable)) or "lungsearch"
    done = subprocess.run([exe, *args], capture_output=True, text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    if done.returncode != 0:
        raise SystemExit(f"lungsearch {' '.join(args)} failed ({done.returncode}): {done.stderr[-2000:]}")


def main(argv=None) -> dict:
    from bench.overhead import SHARED

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=os.path.normpath(SHARED), help="image folder with train/ and test/ (default: ../shared/data/chest_xray)")
    ap.add_argument("--budget", type=float, default=1800, help="wall seconds of the search (default 1800)")
    ap.add_argument("--image-size", type=int, default=None, help="default: the space's own")
    ap.add_argument("--no-record", action="store_true")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory() as folder:
        storage = f"sqlite:///{folder}/accuracy.db"
        run = ["run", "--data", args.data, "--trials", "10000", "--timeout", str(args.budget), "--storage", storage]
        if args.image_size:
            run += ["--image-size", str(args.image_size)]
        start = time.perf_counter()
        lungsearch(*run)
        search_seconds = time.perf_counter() - start
        import search

        study = search.load_study(search.open_storage(storage, heartbeat=None), None)
        finished = search.count_finished(study)
        model = os.path.join(folder, "best.keras")
        lungsearch("best", "--storage", storage, "--export", model, "--out", folder)
        with open(os.path.join(folder, "evaluation.json")) as fh:
            evaluation = json.load(fh)
    metrics = evaluation["test"]["metrics"]
    test = {k: metrics[k] for k in METRICS if k in metrics}
    print(f"search {search_seconds:.0f} s, {finished} finished trials; test metrics (95% CI) vs Kermany et al. / hand CNN:")
    for k, m in test.items():
        lo, hi = m["ci95"]
        print(f"  {k:<12} {m['value']:.3f} [{lo:.3f}, {hi:.3f}]   Kermany {KERMANY.get(k, '-')}   hand CNN {HAND_CNN.get(k, '-')}")
    figures = {"reduced": args.budget < 1800, "data": args.data, "budget_seconds": args.budget,
               "search_seconds": round(search_seconds, 1), "trials_finished": finished, "test": test,
               "test_accuracy": test["accuracy"]["value"], "test_auc": test.get("roc_auc", {}).get("value"),
               "goal_met": test["accuracy"]["value"] >= 0.90, "kermany": KERMANY, "hand_cnn": HAND_CNN}
    if not args.no_record:
        from bench.results import record

        record("accuracy_cpu", figures)
    return figures


if __name__ == "__main__":
    main()
