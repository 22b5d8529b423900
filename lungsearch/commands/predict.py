"""`lungsearch predict`: class probabilities, the decision, Grad-CAM and feature maps."""

from __future__ import annotations

import argparse


def register(sub) -> None:
    p = sub.add_parser("predict", help="classify images with an exported model (Grad-CAM and feature maps optional)")
    p.add_argument("images", nargs="+", metavar="IMAGE_OR_DIR", help="image files, or folders searched for images")
    p.add_argument("--model", required=True, metavar="PATH.keras", help="a model written by `lungsearch best --export` (its .json beside it)")
    p.add_argument("--gradcam", metavar="DIR", help="write a Grad-CAM overlay PNG per image here")
    p.add_argument("--activations", metavar="DIR", help="write feature-map grids of each conv layer per image here")
    p.set_defaults(func=cmd_predict)


def cmd_predict(args: argparse.Namespace) -> int:
    from lungsearch import predict as predict_mod
    from lungsearch.commands.common import quiet_frameworks

    meta = predict_mod.load_meta(args.model)  # fail on a bad model or image before importing Keras
    paths, images = predict_mod.readable(meta, predict_mod.image_files(args.images))  # before Keras loads
    quiet_frameworks()
    model = predict_mod.load_model(args.model, meta)  # refused where it is not the model its .json describes
    predictions = predict_mod.predict(model, meta, paths, images)
    names = list(meta["class_names"])
    width = max(len(p.path) for p in predictions)
    d = meta.get("decision") or {}
    rule = f"{names[d['positive']]} if p >= {d['threshold']:.4f}" if d.get("threshold") is not None else "most probable class"
    print(f"{'image':<{width}}  " + "  ".join(f"{n:>12}" for n in names) + f"  decision ({rule})")
    for p in predictions:
        print(f"{p.path:<{width}}  " + "  ".join(f"{p.probabilities[n]:>12.4f}" for n in names) + f"  {p.decision}")
    if args.gradcam:
        files = predict_mod.write_gradcams(model, meta, predictions, args.gradcam)
        print(f"wrote {len(files)} Grad-CAM overlays to {args.gradcam}")
    if args.activations:
        files = predict_mod.write_activations(model, predictions, args.activations)
        print(f"wrote {len(files)} feature-map grids to {args.activations}")
    return 0
