"""One change at a time to the seeds' hand CNN, on the test splits: does it carry past validation?

    python -m bench.hand_variants                                   # chest_xray and covid19, 5 seeds, every variant
    python -m bench.hand_variants --sets covid19 --seeds 2 --variants standardize   # a reduced run

Each variant is ``bench/hand_cnn.py`` with ``$LUNGSEARCH_HAND_VARIANT`` set
(``base`` = none), trained through ``lungsearch run --trials 1 --epochs 10
--image-size 64`` per seed and scored once by ``best --export``, exactly as
``bench.vs_hand``'s hand side.  A fixed network isolates the change: no
search, no selection among trials.  Key ``hand_variants``
(``hand_variants_reduced`` with fewer than 5 seeds), written after every
variant.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile

from bench.harness import DATA_ROOT, side_hand

VARIANTS = ("base", "standardize", "intensity", "affine", "standardize,intensity")


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sets", default="chest_xray,covid19", help="comma-separated data sets under ../shared/data")
    ap.add_argument("--variants", default=";".join(VARIANTS), help=f"semicolon-separated (default: {';'.join(VARIANTS)})")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--no-record", action="store_true")
    args = ap.parse_args(argv)
    key = "hand_variants" if args.seeds >= 5 else "hand_variants_reduced"
    from bench.results import load, record

    results = (load().get(key) or {}).get("sets", {}) if not args.no_record else {}
    saved = os.environ.get("LUNGSEARCH_HAND_VARIANT")
    try:
        with tempfile.TemporaryDirectory(prefix="hand_variants-") as tmp:
            for name in [s for s in args.sets.split(",") if s]:
                for variant in [v for v in args.variants.split(";") if v]:
                    os.environ["LUNGSEARCH_HAND_VARIANT"] = "" if variant == "base" else variant
                    work = os.path.join(tmp, name, variant.replace(",", "+"))
                    os.makedirs(work)
                    print(f"== {name} {variant}", flush=True)
                    side = side_hand(os.path.join(DATA_ROOT, name), work, args.seeds)
                    side["accuracy_values"] = [r["test_accuracy"] for r in side["seeds"]]
                    side["balanced_accuracy_median"] = statistics.median(r["test_balanced_accuracy"] for r in side["seeds"])
                    results.setdefault(name, {})[variant] = side
                    if not args.no_record:
                        record(key, {"reduced": key.endswith("_reduced"), "seeds": args.seeds, "sets": results})
    finally:
        if saved is None:
            os.environ.pop("LUNGSEARCH_HAND_VARIANT", None)
        else:
            os.environ["LUNGSEARCH_HAND_VARIANT"] = saved
    return results


if __name__ == "__main__":
    main()
