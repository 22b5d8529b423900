"""`lungsearch evaluate`: score an exported model on any labelled folder (a hospital's own images)."""

from __future__ import annotations

import argparse


def register(sub) -> None:
    p = sub.add_parser("evaluate", help="score an exported model on a labelled folder with its stored threshold",
                       description="Score a model written by `lungsearch best --export` on DIR/<class>/ images (or DIR/test/<class>/): "
                                   "the stored decision threshold, each metric with a bootstrap 95%% CI, confusion matrix and ROC.")
    p.add_argument("--model", required=True, metavar="PATH.keras", help="a model written by `lungsearch best --export` (its .json beside it)")
    p.add_argument("--data", required=True, metavar="DIR", help="folder of <class>/ image folders, named as the model's classes (any case)")
    p.add_argument("--out", metavar="DIR", help="folder for evaluation.json/.md and PNGs (default: evaluation-<DIR name> beside the model)")
    p.add_argument("--bootstrap", type=int, default=1000, metavar="N", help="bootstrap resamples for the 95%% CIs (default 1000)")
    p.set_defaults(func=cmd_evaluate)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from lungsearch import evaluate, external
    from lungsearch.commands.common import quiet_frameworks
    from lungsearch.predict import load_meta

    if args.bootstrap < 10:
        raise external.ExternalError("--bootstrap needs at least 10 resamples")
    meta = load_meta(args.model)  # a bad model path fails before Keras loads
    external.labelled_files(args.data, meta["class_names"])  # and so does a folder whose classes do not match
    quiet_frameworks()
    result = external.evaluate_folder(args.model, args.data, out_dir=args.out, n_bootstrap=args.bootstrap)
    for path in result["files"]:
        print(f"wrote {path}")
    if result["card"]:
        print(f"appended to {result['card']}")
    test = result["evaluation"]["test"]
    d = meta.get("decision") or {}
    rule = f"{meta['class_names'][d['positive']]} if p >= {d['threshold']:.4f}" if d.get("threshold") is not None else "most probable class"
    print(f"{result['folder']}: {test['n']} images ({', '.join(f'{k} {v}' for k, v in test['counts'].items())}), "
          f"decision {rule} (stored with the model)")
    print(f"95% CI: {evaluate.summary_line(test)}")
    return 0
