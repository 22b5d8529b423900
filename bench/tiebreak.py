"""Trials that tie on validation AUC: does their validation log-loss order them as out-of-fold AUC does?

    python -m bench.tiebreak                                   # covid19, seeds 0 and 1: a 600 s search, then refine --top 10
    python -m bench.tiebreak --sets covid19 --seeds 0 --budget 90 --top 4 --no-record   # a smoke

On covid19 (36 validation images) and the Covid/Normal folder, most of a
search's decent trials score validation AUC 1.0 (14 of the 15 finalists the
recorded refine runs hold on covid19, all 15 on covid_normal), so the
study's ranking orders them by trial number, earlier first: refine's
finalists (:func:`lungsearch.refine.finalists`) and ``best``'s top 3
(:mod:`lungsearch.export.pick`) are the first trials to reach 1.0, an order
that says nothing of how good they are.  Validation
log-loss is not saturated there and is already stored for every trial.

Per (set, seed), through the real executable: ``lungsearch run --space
efficientnet-lite0 --epochs 5 --trials 1000 --timeout BUDGET --seed S`` (600 s
by default, two thirds of a 30-minute ``run --refine``'s search share, so that
two seeds and their refits fit in an hour), then ``lungsearch refine --top
TOP`` (10 by default) with no timeout (5 folds, refine's default), which refits
the TOP best in today's order.  Among the refined finalists that tie at the
study's best validation AUC, the record keeps each one's number, validation
AUC and log-loss, OOF AUC and OOF log-loss, and for each candidate order
(``val_loss``: lower first; ``number``: earlier first, today's) Spearman's rho
with OOF AUC, the mean OOF AUC of the 5 it would make finalists, and the
highest OOF AUC among those 5 (the finalist ``best``'s bag would take).  The
test split is not read: this chooses on out-of-fold figures only, for a
confirmation on another set's test split afterwards.  Key ``tiebreak``
(``tiebreak_reduced`` below the defaults), written after every run.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np

from bench.harness import data_folder, lungsearch

SPACE = "efficientnet-lite0"
SETS = ("covid19",)
FINALISTS = 5  # refine's default --top: the finalists an order makes
ORDERS = ("val_loss", "number")


def tied_rows(study) -> list[dict]:
    """The refined finalists at the study's best validation AUC: number, validation AUC and log-loss, OOF AUC and log-loss."""
    from lungsearch import refine

    results = (refine.load(study) or {}).get("results") or {}
    trials = {t.number: t for t in study.trials}
    rows = [{"number": int(n), "val_auc": trials[int(n)].value, "val_loss": trials[int(n)].user_attrs.get("val_loss"),
             "oof_auc": f["oof_auc"], "oof_log_loss": f["oof_log_loss"]} for n, f in results.items()]
    top = max((r["val_auc"] for r in rows), default=None)
    return sorted((r for r in rows if r["val_auc"] == top and r["val_loss"] is not None), key=lambda r: r["number"])


def compare(rows: list[dict], finalists: int = FINALISTS) -> dict:
    """Each order of the tied rows against their OOF AUC: Spearman's rho, and what the ``finalists`` it puts first score."""
    import warnings

    from scipy.stats import ConstantInputWarning, spearmanr

    out = {"tied": len(rows)}
    for order in ORDERS:  # each order ranks its rows lowest first (ties: the earlier trial)
        ranked = sorted(rows, key=lambda r: (r[order], r["number"]))
        first = [r["oof_auc"] for r in ranked[:finalists]]
        rho = None
        if len(rows) >= 3:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConstantInputWarning)
                value = spearmanr([-r[order] for r in rows], [r["oof_auc"] for r in rows]).statistic
            rho = round(float(value), 3) if np.isfinite(value) else None
        out[order] = {"spearman_with_oof_auc": rho, "finalists": [r["number"] for r in ranked[:finalists]],
                      "mean_oof_auc": round(float(np.mean(first)), 5) if first else None,
                      "best_oof_auc": round(float(max(first)), 5) if first else None}
    return out


def one_run(name: str, seed: int, work: str, args) -> dict:
    import optuna

    folder = data_folder(name, work)
    storage = f"sqlite:///{work}/{name}-{seed}.db"
    start = time.perf_counter()
    lungsearch("run", "--data", folder, "--space", SPACE, "--trials", "1000", "--epochs", str(args.epochs), "--seed", str(seed),
               "--cache-dir", os.path.join(work, "cache"), "--storage", storage, "--study", "s", "--quiet", "--timeout", str(args.budget))
    search_seconds = time.perf_counter() - start
    start = time.perf_counter()
    lungsearch("refine", "--storage", storage, "--study", "s", "--top", str(args.top))
    refine_seconds = time.perf_counter() - start
    study = optuna.load_study(study_name="s", storage=storage)
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    best = max(t.value for t in complete)
    rows = tied_rows(study)
    return {"search_seconds": round(search_seconds, 1), "refine_seconds": round(refine_seconds, 1), "trials": len(study.trials),
            "complete": len(complete), "at_best_val_auc": sum(t.value == best for t in complete), "best_val_auc": best,
            "rows": rows, **compare(rows, FINALISTS)}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sets", default=",".join(SETS))
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--budget", type=int, default=600, help="seconds of search per run (default 600)")
    ap.add_argument("--top", type=int, default=10, help="finalists refitted per run (default 10)")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--no-record", action="store_true")
    args = ap.parse_args(argv)
    from bench.results import below_defaults, load, now, record

    reduced = below_defaults(ap, args, "budget", "top", "epochs")
    key = "tiebreak_reduced" if reduced else "tiebreak"
    settings = {"budget": args.budget, "top": args.top, "epochs": args.epochs}
    old = (load().get(key) or {}) if not args.no_record else {}
    runs = old.get("sets", {}) if {k: old.get(k) for k in settings} == settings else {}
    command = "python -m bench.tiebreak " + " ".join(argv if argv is not None else sys.argv[1:])
    for seed in [int(s) for s in args.seeds.split(",") if s]:
        for name in [s for s in args.sets.split(",") if s]:
            with tempfile.TemporaryDirectory(prefix=f"tiebreak-{name}-{seed}-") as work:
                entry = {"command": command.strip(), "date": now(), **one_run(name, seed, work, args)}
            runs.setdefault(name, {})[str(seed)] = entry
            print(f"  {name} seed {seed}: {entry['tied']} refined finalists tied at val AUC {entry['best_val_auc']:.4f} "
                  f"({entry['at_best_val_auc']} of {entry['complete']} completed trials); "
                  + "; ".join(f"{o}: rho {entry[o]['spearman_with_oof_auc']}, first {FINALISTS} mean OOF AUC "
                              f"{entry[o]['mean_oof_auc']}, best {entry[o]['best_oof_auc']}" for o in ORDERS), flush=True)
            if not args.no_record:
                record(key, {"reduced": reduced, "space": SPACE, **settings, "sets": runs})
    return runs


if __name__ == "__main__":
    main()
