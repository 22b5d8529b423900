"""ImageNet weights against random init, the cnn space and the hand CNN, on the test splits.

    python -m bench.imagenet                                   # chest_xray and covid19 at 64 px
    python -m bench.imagenet --sets covid19 --sizes 64,96 --epochs 5

Per data set and image size, two studies of the ``efficientnet-lite0`` space
through the real executable, each of exactly its two warm starts (``--trials
2``): trial 0 the backbone frozen under a small head, trial 1 the head first
and then the whole network at 1/50 of the learning rate.  ``imagenet`` starts
both from the ImageNet weights installed with lungsearch, ``random`` from
random weights (``--weights random``), everything else equal.  Each trial's
kept model is exported with ``best --export --trial N`` and tested once, and
so are the study's pick (``best --export``: validation chooses) and the two
averaged (``best --export --ensemble 2``).  The cnn
space and the hand CNN on the same data at 64 px are read from
``bench.vs_hand``'s stored run (named in the record), not re-run.  Key
``imagenet`` (``imagenet_reduced`` with fewer than 5 epochs), written after
every study.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

from bench.harness import DATA_ROOT, export, lungsearch, study_facts


def one_study(folder: str, work: str, size: int, epochs: int, weights: str | None) -> dict:
    name = "imagenet" if weights is None else weights
    storage = f"sqlite:///{work}/{name}-{size}.db"
    flags = ["--space", "efficientnet-lite0", "--trials", "2", "--epochs", str(epochs), "--image-size", str(size),
             "--recycle", "0"] + (["--weights", weights] if weights else [])
    start = time.perf_counter()
    lungsearch("run", "--data", folder, *flags, "--storage", storage, "--study", name)
    seconds = time.perf_counter() - start
    _, facts = study_facts(storage)
    out = {"flags": flags, "seconds": round(seconds, 1), "image_size": size, "best_trial": facts.get("best_trial")}
    for trial in (0, 1):
        out[f"trial{trial}"] = export(storage, f"{work}/{name}-{size}-t{trial}", "--trial", str(trial))
    # the two warm starts averaged (frozen features carried to chest_xray's test split, fine-tuning won validation)
    out["ensemble"] = export(storage, f"{work}/{name}-{size}-ensemble", "--ensemble", "2")
    pick = out[f"trial{facts['best_trial']}"]
    out.update(test_auc=pick["test_auc"], test_accuracy=pick["test_accuracy"], test=pick["test"], val_auc=pick["val_auc"])
    print(f"  {name} {size}px ({seconds:.0f} s): frozen test AUC {out['trial0']['test_auc']:.3f} / acc {out['trial0']['test_accuracy']:.3f}, "
          f"fine-tuned {out['trial1']['test_auc']:.3f} / {out['trial1']['test_accuracy']:.3f}, both averaged "
          f"{out['ensemble']['test_auc']:.3f} / {out['ensemble']['test_accuracy']:.3f}; validation picks trial {facts['best_trial']}",
          flush=True)
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sets", default="chest_xray,covid19")
    ap.add_argument("--sizes", default="64", help="comma-separated input sides (default 64)")
    ap.add_argument("--epochs", type=int, default=5, help="epoch cap of each trial (default 5)")
    ap.add_argument("--sides", default="imagenet,random")
    ap.add_argument("--no-record", action="store_true")
    args = ap.parse_args(argv)
    key = "imagenet" if args.epochs >= 5 else "imagenet_reduced"
    from bench.results import load, record

    stored = load()
    results = (stored.get(key) or {}).get("sets", {}) if not args.no_record else {}
    sides = args.sides.split(",")
    with tempfile.TemporaryDirectory(prefix="imagenet-") as tmp:
        for name in [s for s in args.sets.split(",") if s]:
            for size in [int(s) for s in args.sizes.split(",") if s]:
                work = os.path.join(tmp, f"{name}-{size}")
                os.makedirs(work)
                print(f"== {name} {size}px", flush=True)
                entry = results.setdefault(name, {}).setdefault(str(size), {})
                for side in sides:
                    entry[side] = one_study(os.path.join(DATA_ROOT, name), work, size, args.epochs, None if side == "imagenet" else "random")
                    hand = ((stored.get("vs_hand") or {}).get("sets") or {}).get(name) or {}
                    entry["baselines_64px"] = {"source": "bench.vs_hand (key vs_hand)", "hand_auc_median": hand.get("hand_auc_median"),
                                               "hand_auc_best": hand.get("hand_auc_best"), "cnn_search_auc": hand.get("search_auc"),
                                               "cnn_quick_auc": hand.get("quick_auc")}
                    if not args.no_record:
                        record(key, {"reduced": key.endswith("_reduced"), "epochs": args.epochs, "sets": results})
    return results


if __name__ == "__main__":
    main()
