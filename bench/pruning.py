"""The same study with each pruner and with none, same wall budget: finished trials per hour and best validation AUC.

    python -m bench.pruning                                   # 3 seeds, none and median, 30 minutes each, chest_xray, 64 px
    python -m bench.pruning --pruners none,median,sha,hyperband   # and the other two pruners (about 6 hours)
    python -m bench.pruning --seeds 3 --budget 300 --epochs 5 --train-limit 2048   # a reduced run

Each pruner runs ``lungsearch run --pruner P --timeout BUDGET --seed S``
through the executable (``bench.harness.run_search``: run's defaults
otherwise, its sampler, warm starts first and ``--recycle``), on a fresh
SQLite study, and its figures are read back from the study
(``bench.harness.search_record``: epochs or trials ending past the budget are
not counted); the pruners run one after another.  Per seed (``--seeds`` of them
from ``--first-seed``) the order of the pruners rotates, and an epoch of a
fixed small CNN (the second of two) is timed before each, so machine drift
shows in the record.  Finished = COMPLETE + PRUNED (what ``--trials`` counts).
For the default pruner, per seed: trials_per_hour_ratio = its trials per hour
/ no pruning's, best_auc_delta = its best validation AUC - no pruning's; the
summary gives the median, min and max over seeds.  Goal: median ratio >= 3
with median best AUC delta >= -0.005.  The full size runs the default pruner
and none, the two the goal compares (about 3 hours for 3 seeds on 2 cores);
``--pruners`` adds sha and hyperband, which the first, one-seed run measured
(key ``pruning@2026-11-23``).  Key ``pruning`` (``_reduced`` below the
defaults), written after every pruner, with a ``seeds`` list.  A seed runs whole,
in one sitting; ``--resume`` keeps the seeds a run with the same flags
recorded and runs the rest, and ``--hours H`` starts no seed that would end
past H hours, so a bench of hours can be spread over sessions.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

from bench.harness import (CALIBRATION, DATA_ROOT, calibrate, limited_folder, load_arrays, rotated, run_search, search_record,
                           spread)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(argv=None) -> dict:
    import optuna

    from bench.results import below_defaults

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=os.path.join(DATA_ROOT, "chest_xray"), help="image folder or 'demo' (default: ../shared/data/chest_xray)")
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--budget", type=float, default=1800, help="wall seconds per pruner (default 1800)")
    ap.add_argument("--epochs", type=int, default=10, help="epoch cap per trial (default: lungsearch's 10)")
    ap.add_argument("--train-limit", type=int, default=None,
                    help="search this many of train/'s images, validation carved from them (a folder of links)")
    ap.add_argument("--pruners", default="none,median",
                    help="comma-separated, the first seed's order (default: none and lungsearch's default, median; "
                         "sha and hyperband may be added)")
    ap.add_argument("--seeds", type=int, default=3, help="seeds (default 3)")
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--resume", action="store_true", help="keep the seeds already recorded with these flags; run the rest")
    ap.add_argument("--hours", type=float, help="start no seed that would end past this many hours from now")
    ap.add_argument("--no-record", action="store_true")
    args = ap.parse_args(argv)
    args.reduced = below_defaults(ap, args, "budget", "epochs", "train_limit", "pruners", "seeds")
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    with tempfile.TemporaryDirectory(prefix="pruning-") as work:
        return run_seeds(args, limited_folder(args.data, args.train_limit, work))


def run_seeds(args, folder: str) -> dict:
    """The seeds not kept from the record, each whole: every pruner's search of ``folder``, after its calibration."""
    from bench.results import fits, machine, now, reduced_key, resumable

    data = load_arrays(folder, args.image_size)  # the calibration epoch's, and the counts the record gives
    print(f"{len(data.train)} train, {len(data.val)} validation images, {args.image_size} px, "
          f"{args.budget:.0f} s per pruner, at most {args.epochs} epochs per trial", flush=True)
    pruners = args.pruners.split(",")
    key = reduced_key("pruning", {"reduced": args.reduced})
    kept = {e["seed"]: e for e in (resumable(key, settings(args)) if args.resume else [])}
    seeds = [kept.get(args.first_seed + i) or {"seed": args.first_seed + i, "order": rotated(pruners, i)}
             for i in range(args.seeds)]
    seed_seconds = len(pruners) * (args.budget + 60)  # a pruner's budget and its calibration epoch
    start = time.monotonic()
    for entry in seeds:
        if set(pruners) <= set(entry.get("runs", {})):
            print(f"seed {entry['seed']}: kept from the record ({entry.get('date', 'an earlier run')})", flush=True)
            continue
        if not fits(start, args.hours, seed_seconds):
            print(f"stopped before seed {entry['seed']} (about {seed_seconds / 60:.0f} min, past --hours {args.hours}); "
                  "run again with --resume to go on", flush=True)
            break
        # a seed runs whole, in one sitting, so its pruners' calibration epochs compare; a broken one's figures go
        fresh = {"seed": entry["seed"], "order": entry["order"], "calibration_seconds": {}, "calibration_timing": CALIBRATION,
                 "runs": {}, "machine": machine(), "date": now()}
        entry.clear()
        entry.update(fresh)
        for pruner in entry["order"]:
            entry["calibration_seconds"][pruner] = calibrate(data, entry["seed"])
            with tempfile.TemporaryDirectory() as scratch:
                study = run_search(folder, budget=args.budget, epochs=args.epochs, seed=entry["seed"], folder=scratch,
                                   image_size=args.image_size, pruner=pruner)
                side = search_record(study, args.budget)
            side["trials_per_hour"] = round(side["trials_finished"] / args.budget * 3600, 1)
            entry["runs"][pruner] = side
            print(f"seed {entry['seed']} {pruner:<10} (calibration epoch {entry['calibration_seconds'][pruner]} s) "
                  f"{side['trials_finished']} finished ({side['pruned']} pruned), {side['trials_per_hour']} trials/hour, "
                  f"best val AUC {side['best']}, selected {side['selected_best']}", flush=True)
            summarise(args, data, seeds)  # recorded after every pruner, so a run stopped early keeps the pruners it finished
    figures = summarise(args, data, seeds)
    print({k: v for k, v in figures.items() if k != "seeds"})
    return figures


def settings(args) -> dict:
    """What makes two runs the same bench (``--resume`` continues only such a run), as the record keeps it."""
    return {"data": args.data, "image_size": args.image_size, "budget_seconds": args.budget, "epochs": args.epochs,
            "train_limit": args.train_limit, "pruners": args.pruners.split(","), "first_seed": args.first_seed,
            "seeds_asked": args.seeds}


def per_seed(runs: dict, default: str) -> dict:
    """The default pruner against none in one seed: trials-per-hour ratio and best AUC delta (where both ran)."""
    out = {}
    if default in runs and "none" in runs and runs["none"]["trials_per_hour"]:
        d, n = runs[default], runs["none"]
        out["trials_per_hour_ratio"] = round(d["trials_per_hour"] / n["trials_per_hour"], 3)
        if d["best"] is not None and n["best"] is not None:
            out["best_auc_delta"] = round(d["best"] - n["best"], 5)
    return out


def summarise(args, data, seeds: list[dict]) -> dict:
    """The figures of the seeds and pruners run so far; recorded unless ``--no-record``."""
    from lungsearch.config import RunConfig

    default = RunConfig().pruner
    pruners = args.pruners.split(",")
    complete = all(set(pruners) <= set(e.get("runs", {})) for e in seeds)
    seeds = [e for e in seeds if e.get("runs")]  # the seeds with something run
    for entry in seeds:
        entry.update(per_seed(entry["runs"], default))
    figures = {"reduced": args.reduced, "default_pruner": default, **settings(args), "train_images": len(data.train),
               "val_images": len(data.val), "all_run": complete, "seeds": seeds,
               "per_pruner": {p: {"trials_per_hour": spread(e["runs"][p]["trials_per_hour"] for e in seeds if p in e["runs"]),
                                  "best": spread(e["runs"][p]["best"] for e in seeds if p in e["runs"])} for p in pruners}}
    ratio = spread(e.get("trials_per_hour_ratio") for e in seeds)
    delta = spread(e.get("best_auc_delta") for e in seeds)
    if ratio:
        figures["trials_per_hour_ratio"] = ratio
    if delta:
        figures["best_auc_delta"] = delta
        figures["goal_met"] = ratio["median"] >= 3 and delta["median"] >= -0.005
    if not args.no_record:
        from bench.results import record

        record("pruning", figures)
    return figures


if __name__ == "__main__":
    main()
