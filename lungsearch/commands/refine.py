"""`lungsearch refine`: refit the study's best trials on K folds of all its training images, for out-of-fold selection.

Named for what it does to the search's choice: the search ranks trials on one
validation split; refining ranks its finalists again on predictions for every
training image, each made by a model that did not see it.
"""

from __future__ import annotations

import argparse

from lungsearch.commands._common import quiet_frameworks, storage_args


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
    p.set_defaults(func=cmd_refine)


def cmd_refine(args: argparse.Namespace) -> int:
    quiet_frameworks()
    import search
    from lungsearch import refine

    study = search.load_study(search.open_storage(args.storage, must_exist=True), args.study)
    record = refine.refine(study, top=args.top, folds=args.folds, timeout=args.timeout)
    line = refine.summary_line(record)
    if line:
        print(line)
    return 0
