"""`lungsearch refine`: refit the study's best trials on K folds of all its training images, for out-of-fold selection.

Named for what it does to the search's choice: the search ranks trials on one
validation split; refining ranks its finalists again on predictions for every
training image, each made by a model that did not see it.
"""

from __future__ import annotations

import argparse
import os
import sys

from lungsearch.commands.common import quiet_frameworks, storage_args


def register(sub) -> None:
    from lungsearch.refine import DEFAULT_FOLDS, DEFAULT_TOP

    p = sub.add_parser("refine", help="refit the best trials on K folds of train + validation: out-of-fold figures for `best`",
                       description="Refit the study's best trials (the finalists) on K patient-grouped, stratified folds of train "
                                   "and validation together. Every training image gets a prediction from a model that never saw "
                                   "it; each finalist's out-of-fold AUC, log-loss and Brier score are stored in the study and its "
                                   "fold models beside its kept models, for `best`. Resumable: a killed refine loses nothing it "
                                   "stored. Never reads the test split.")
    storage_args(p)
    p.add_argument("--top", type=int, default=DEFAULT_TOP, metavar="N", help=f"how many of the best trials to refit (default {DEFAULT_TOP})")
    p.add_argument("--folds", type=int, default=DEFAULT_FOLDS, metavar="K", help=f"folds (default {DEFAULT_FOLDS})")
    p.add_argument("--timeout", type=float, metavar="S", help="stop starting new fold fits after this many seconds")
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="worker processes on this machine, each fitting its share of the fold fits (default 1; one GPU each "
                        "where there are several)")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)  # set on the processes --workers starts
    p.set_defaults(func=cmd_refine)


def cmd_refine(args: argparse.Namespace) -> int:
    quiet_frameworks()
    import search
    from lungsearch import refine

    study = search.load_study(search.open_storage(args.storage, must_exist=True), args.study)
    if args.worker:  # one of the processes of --workers: its share, figures left to the process that started it
        index, count = (int(v) for v in os.environ["LUNGSEARCH_WORKER"].split("/"))
        refine.refine(study, top=args.top, folds=args.folds, timeout=args.timeout, shard=(index - 1, count),
                      log=lambda line: print(f"w{index}/{count} {line}", flush=True))
        return 0
    if args.workers < 1:
        raise refine.RefineError(f"--workers must be at least 1, got {args.workers}")
    left = 0
    if args.workers > 1:
        record = refine.refine(study, top=args.top, folds=args.folds, fit=False)  # checks the settings, stores them, says what is left
        stored = study.user_attrs
        left = sum(refine.unit_key(n, k) not in stored for n in record["finalists"] for k in range(args.folds))
    if left:
        command = search.workers.python_module_command(
            "lungsearch", "refine", "--storage", args.storage, "--study", study.study_name, "--top", str(args.top),
            "--folds", str(args.folds), "--worker", *(["--timeout", str(args.timeout)] if args.timeout else []))
        code = search.workers.supervise(command, min(args.workers, left))  # no worker without a fold fit to do
        if code != 0:
            print(f"refine: a worker stopped (exit {code}); what the workers finished is stored, and `lungsearch refine` "
                  "carries on", file=sys.stderr)
            return code
    record = refine.refine(study, top=args.top, folds=args.folds, timeout=args.timeout, fit=args.workers == 1)
    line = refine.summary_line(record)
    if line:
        print(line)
    return 0
