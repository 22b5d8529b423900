"""The same study with each pruner and with none, same wall budget: finished trials per hour and best validation AUC.

    python -m bench.pruning                                   # 30 minutes per pruner, chest_xray, 64 px
    python -m bench.pruning --budget 300 --epochs 5 --train-limit 2048   # a reduced run

Each pruner runs lungsearch's in-process search (``search.Objective`` +
``lungsearch.train.fit`` on SQLite, default sampler, same seed, same arrays)
for ``--budget`` seconds; the pruners run one after another in this process,
in the order given.  Finished = COMPLETE + PRUNED (what ``--trials`` counts).
For the default pruner: trials_per_hour_ratio = its trials per hour / no
pruning's, best_auc_delta = its best validation AUC - no pruning's.  Goal:
ratio >= 3 with best AUC within 0.005.  Key ``pruning``.
"""

from __future__ import annotations

import argparse
import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(argv=None) -> dict:
    import optuna

    import spaces
    from bench.overhead import SHARED, load
    from bench.results import below_defaults
    from bench.search_vs_keras_tuner import run_lungsearch

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=os.path.normpath(SHARED), help="image folder or 'demo' (default: ../shared/data/chest_xray)")
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--budget", type=float, default=1800, help="wall seconds per pruner (default 1800)")
    ap.add_argument("--epochs", type=int, default=10, help="epoch cap per trial (default: lungsearch's 10)")
    ap.add_argument("--train-limit", type=int, default=None, help="train on this many images (validation whole)")
    ap.add_argument("--pruners", default="none,median,sha,hyperband", help="comma-separated, run in this order")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-record", action="store_true")
    args = ap.parse_args(argv)
    args.reduced = below_defaults(ap, args, "budget", "epochs", "train_limit", "pruners")
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    space = spaces.get_space("cnn")
    data = load(args.data, args.image_size, args.train_limit, args.seed)
    print(f"{len(data.train)} train, {len(data.val)} validation images, {args.image_size} px, "
          f"{args.budget:.0f} s per pruner, at most {args.epochs} epochs per trial", flush=True)
    runs = {}
    figures = {}
    with tempfile.TemporaryDirectory() as folder:
        for pruner in args.pruners.split(","):
            side = run_lungsearch(space, data, budget=args.budget, epochs=args.epochs, seed=args.seed, folder=folder, pruner=pruner)
            side["trials_per_hour"] = round(side["trials_finished"] / args.budget * 3600, 1)
            runs[pruner] = side
            print(f"{pruner:<10} {side['trials_finished']} finished ({side['pruned']} pruned), "
                  f"{side['trials_per_hour']} trials/hour, best val AUC {side['best']}, selected {side['selected_best']}", flush=True)
            # recorded after every pruner, so a run stopped early keeps the pruners it finished
            figures = summarise(args, data, runs)
    print({k: v for k, v in figures.items() if k != "runs"})
    return figures


def summarise(args, data, runs: dict) -> dict:
    """The figures of the pruners run so far; recorded unless ``--no-record``."""
    from lungsearch.config import RunConfig

    default = RunConfig().pruner
    figures = {"reduced": args.reduced, "default_pruner": default, "data": args.data, "image_size": args.image_size,
               "budget_seconds": args.budget, "epochs": args.epochs, "train_images": len(data.train),
               "val_images": len(data.val), "pruners_run": list(runs),
               "all_pruners_run": len(runs) == len(args.pruners.split(",")), "runs": runs}
    if default in runs and "none" in runs and runs["none"]["trials_per_hour"]:
        d, n = runs[default], runs["none"]
        figures["trials_per_hour_ratio"] = round(d["trials_per_hour"] / n["trials_per_hour"], 3)
        if d["best"] is not None and n["best"] is not None:
            figures["best_auc_delta"] = round(d["best"] - n["best"], 5)
            figures["goal_met"] = figures["trials_per_hour_ratio"] >= 3 and figures["best_auc_delta"] >= -0.005
    if not args.no_record:
        from bench.results import record

        record("pruning", figures)
    return figures


if __name__ == "__main__":
    main()
