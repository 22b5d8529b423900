"""`lungsearch best`: export a trained model with what it is."""

from __future__ import annotations

import argparse

from lungsearch.commands._common import quiet_frameworks, storage_args


def register(sub) -> None:
    p = sub.add_parser("best", help="export the best trial's trained model")
    storage_args(p)
    p.add_argument("--export", required=True, metavar="PATH.keras", help="where to write the model (a .json lands beside it)")
    p.add_argument("--trial", type=int, help="export this trial instead of the best (its model must have been kept)")
    p.set_defaults(func=cmd_best)


def cmd_best(args: argparse.Namespace) -> int:
    quiet_frameworks()
    import search
    from lungsearch import export

    study = search.load_study(search.open_storage(args.storage, must_exist=True), args.study)
    meta = export.export_best(study, args.export, trial_number=args.trial)
    metrics = ", ".join(f"{k}={v:.4f}" for k, v in meta["validation"].items() if isinstance(v, float))
    print(f"wrote {args.export} and {export.meta_path(args.export)}: trial #{meta['trial']} {metrics}")
    return 0
