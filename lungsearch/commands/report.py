"""`lungsearch report`: read a study back and write its Pareto front."""

from __future__ import annotations

import argparse

from lungsearch.commands.common import quiet_frameworks, storage_args


def register(sub) -> None:
    p = sub.add_parser("report", help="top trials, Pareto fronts (accuracy and objective vs time and size), Optuna plots")
    storage_args(p)
    p.add_argument("--out", default="report", help="folder for trials.csv, the Pareto CSV/PNG/HTML files and Optuna plots (default ./report)")
    p.set_defaults(func=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    quiet_frameworks()
    import search
    from lungsearch import report

    study = search.load_study(search.open_storage(args.storage, read_only=True), args.study)
    for path in report.write_report(study, args.out, storage=args.storage):
        print(f"wrote {path}")
    return 0
