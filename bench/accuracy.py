"""Accuracy on this CPU: a search with the defaults for a wall budget, then ``best --export``; test metrics with CIs.

    python -m bench.accuracy                              # 30 minutes, chest_xray, lungsearch's defaults
    python -m bench.accuracy --budget 600                 # a reduced run

Runs the real executable: ``lungsearch run --data DATA --trials 10000
--timeout BUDGET`` (every other setting lungsearch's default) on a fresh SQLite
study, then ``lungsearch best --export`` (the test split is read there, once),
and prints test accuracy, sensitivity, specificity and ROC AUC with their 95%
bootstrap CIs next to Kermany et al. (Cell 2018, a published figure) and the
seeds' hand CNN as ``bench.vs_hand``'s stored run measured it on chest_xray
(named with its date and command; where there is none, or the data is not
chest_xray, the record says the hand CNN was not measured).  Goal: test
accuracy >= 0.90.  Key ``accuracy_cpu``.
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
KERMANY_SOURCE = "Kermany et al., Cell 2018 (published; not measured here)"
METRICS = ("accuracy", "sensitivity", "specificity", "roc_auc")


def hand_cnn(stored: dict, data: str) -> dict:
    """The hand CNN's test figures on ``data`` from ``bench.vs_hand``'s stored run (key ``vs_hand``), named by its date
    and command; ``{"measured": False, "why": ...}`` where that run has no hand side on chest_xray or ``data`` is not chest_xray."""
    if os.path.basename(os.path.normpath(data)) != "chest_xray":
        return {"measured": False, "why": "bench.vs_hand measures the hand CNN on chest_xray only; not measured on this data"}
    run = stored.get("vs_hand") or {}
    hand = ((run.get("sets") or {}).get("chest_xray") or {}).get("hand")
    if not hand:
        return {"measured": False, "why": "no stored bench.vs_hand run of the hand CNN on chest_xray "
                                          "(python -m bench.vs_hand --sets chest_xray --sides hand)"}
    return {"measured": True, "source": f"bench.vs_hand, {run.get('date')}, {run.get('command')}", "seeds": len(hand.get("seeds", [])),
            **{k: hand[k] for k in ("auc_median", "auc_best", "accuracy_median")}}


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
    from bench.results import load, record

    hand = hand_cnn(load(), args.data)
    hand_of = {"accuracy": hand.get("accuracy_median"), "roc_auc": hand.get("auc_median")}
    print(f"search {search_seconds:.0f} s, {finished} finished trials; test metrics (95% CI) vs Kermany et al. / hand CNN (median of seeds):")
    for k, m in test.items():
        lo, hi = m["ci95"]
        mine = "-" if hand_of.get(k) is None else f"{hand_of[k]:.3f}"
        print(f"  {k:<12} {m['value']:.3f} [{lo:.3f}, {hi:.3f}]   Kermany {KERMANY.get(k, '-')}   hand CNN {mine}")
    print(f"Kermany: {KERMANY_SOURCE}")
    print(f"hand CNN: {hand['source']}, {hand['seeds']} seeds, best seed's AUC {hand['auc_best']:.3f}" if hand["measured"]
          else f"hand CNN: not measured ({hand['why']})")
    figures = {"reduced": args.budget < 1800, "data": args.data, "budget_seconds": args.budget,
               "search_seconds": round(search_seconds, 1), "trials_finished": finished, "test": test,
               "test_accuracy": test["accuracy"]["value"], "test_auc": test.get("roc_auc", {}).get("value"),
               "goal_met": test["accuracy"]["value"] >= 0.90, "kermany": {"source": KERMANY_SOURCE, **KERMANY}, "hand_cnn": hand}
    if not args.no_record:
        record("accuracy_cpu", figures)
    return figures


if __name__ == "__main__":
    main()
