"""`lungsearch best`: export a trained model with what it is, evaluated once on the test split."""

from __future__ import annotations

import argparse

from lungsearch.commands.common import quiet_frameworks, storage_args


def register(sub) -> None:
    p = sub.add_parser("best", help="export a trial's trained model and evaluate it once on the test split",
                       description="Export a trained model (.keras + .json) and write evaluation.json/.md and plots. "
                                   "The decision threshold is chosen on validation; the test split is read once, here.")
    storage_args(p)
    p.add_argument("--export", required=True, metavar="PATH.keras", help="where to write the model (a .json lands beside it)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--trial", type=int, help="export this trial instead of the best")
    which.add_argument("--max-train-seconds", type=float, metavar="S",
                       help="export the most accurate trial (a Pareto point) that trained within S seconds")
    p.add_argument("--ensemble", type=int, default=None, metavar="K",
                   help="average the probabilities of the K best trials in one model (their models kept by `run --keep-top`); "
                        "default: the 3 best where their models are kept, else the best alone (bench/RESULTS.md says why); "
                        "1: the best trial alone")
    p.add_argument("--refined", choices=("bag", "select", "average", "off"), default=None,
                   help="where `lungsearch refine` has refitted the best trials on folds: bag (default: the finalist with the "
                        "highest out-of-fold AUC, its fold models averaged), select (ensemble selection over the finalists on "
                        "their out-of-fold predictions), average (the 3 refined finalists of highest validation AUC, all their "
                        "fold models averaged), off (as without refine); the threshold is chosen on out-of-fold predictions")
    p.add_argument("--fold-calibration", choices=("platt", "off"), default="platt",
                   help="with refined finalists of a two-class study: platt (default) calibrates each fold model on its own "
                        "held-out predictions before they are averaged and the threshold chosen (the fold models rank alike "
                        "but score on different scales); off: the fold models as refitted")
    p.add_argument("--retrain", action="store_true",
                   help="train the trial again from its stored params (needed when its model was not kept)")
    p.add_argument("--min-sensitivity", type=float, metavar="F",
                   help="pick the most specific threshold whose validation sensitivity is >= F (default: max Youden's J)")
    p.add_argument("--threshold-rule", choices=("youden", "youden-mid", "half", "temperature"), default="youden",
                   help="how a two-class model's threshold is chosen on validation: youden (default: max Youden's J, ties to the "
                        "higher threshold), youden-mid (the middle of the thresholds of max J), half (0.5 on the class-weighted "
                        "model's probability), temperature (temperature scaling fitted on validation, then the training "
                        "prevalence as the threshold); bench.selection compares them")
    p.add_argument("--out", metavar="DIR", help="folder for evaluation.json/.md and PNGs (default: beside the model)")
    p.add_argument("--bootstrap", type=int, default=1000, metavar="N", help="bootstrap resamples for the 95%% CIs (default 1000)")
    p.set_defaults(func=cmd_best)


def cmd_best(args: argparse.Namespace) -> int:
    quiet_frameworks()
    import search
    from lungsearch import evaluate, export

    if args.bootstrap < 10:
        raise export.ExportError("--bootstrap needs at least 10 resamples")
    study = search.load_study(search.open_storage(args.storage, read_only=True), args.study)
    meta = export.export_best(
        study, args.export, trial_number=args.trial, max_train_seconds=args.max_train_seconds, retrain_model=args.retrain,
        min_sensitivity=args.min_sensitivity, threshold_rule=args.threshold_rule, out_dir=args.out, n_bootstrap=args.bootstrap, ensemble=args.ensemble,
        refined_rule=args.refined, fold_calibration=args.fold_calibration,
    )
    for path in meta["files"]:
        print(f"wrote {path}")
    test = {"metrics": {k: {"value": v, "ci95": meta["test_ci95"][k], "ci_method": meta.get("test_ci_method", {}).get(k)}
                        for k, v in meta["test"].items()}}
    d = meta["decision"]
    rule = f"threshold {d['threshold']:.4f} ({d['rule']})" if d.get("threshold") is not None else d["rule"]
    which = (f"ensemble of trials #{', #'.join(str(m['trial']) for m in meta['ensemble'])} (probabilities averaged)"
             if meta.get("ensemble") else f"trial #{meta['trial']}")
    if meta.get("refined"):
        r = meta["refined"]
        which = (f"refined ({r['rule']}): trial{'s' if len(r['weights']) > 1 else ''} "
                 f"#{', #'.join(r['weights'])}, {r['folds']} fold models each, averaged")
    print(f"{which}, {rule}; reloaded in a fresh process: ok")
    print(f"test ({meta['data']['test_count']} images, 95% CI): {evaluate.summary_line(test)}")
    from lungsearch.commands import hints

    example = hints.test_image(study)
    if example:
        hints.show(hints.after_best(args.export, example))
    else:  # demo data lives in memory: there is no image file to name
        print(f"then, on an X-ray file of yours: {hints.after_best(args.export, 'XRAY.png')[0]}")
    return 0
