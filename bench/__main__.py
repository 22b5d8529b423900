"""List the benchmarks, or run one (or all) with their flags, or with small settings.

    python -m bench                          # list them
    python -m bench overhead --repeats 3     # run one; flags go to it
    python -m bench --small all              # every benchmark at small settings, one after another

A run below a benchmark's defaults says "reduced": true and is recorded under
KEY_reduced in bench/results.json, never over the full-size KEY.
"""

from __future__ import annotations

import importlib
import sys

# name -> (what it measures, flags for a small run that finishes in minutes)
BENCHES = {
    "overhead": ("one epoch inside a lungsearch trial vs a bare model.fit epoch (key overhead)",
                 ["--train-limit", "1024", "--repeats", "3"]),
    "search_vs_keras_tuner": ("lungsearch vs keras-tuner Hyperband and RandomSearch, same callbacks, 3 seeds, picks on test "
                              "(key search_vs_keras_tuner; --space NAME: key search_vs_keras_tuner_NAME)",
                              ["--sets", "covid19", "--seeds", "1", "--budget", "120", "--epochs", "5", "--tuners", "lungsearch,hyperband"]),
    "pruning": ("each pruner and none, same budget, 3 seeds rotated: trials/hour and best AUC (key pruning)",
                ["--seeds", "1", "--budget", "300", "--epochs", "5", "--train-limit", "2048"]),
    "cache": ("first decode vs cached load of chest_xray (key cache)", []),
    "accuracy": ("a search with the defaults, best --export, test metrics with CIs (key accuracy_cpu)",
                 ["--budget", "600", "--image-size", "64"]),
    "memory": ("peak RSS over 30 trials (key memory)", ["--image-size", "32"]),
    "storage": ("4 workers on SQLite WAL vs journal vs rollback (key storage)", ["--trials", "40"]),
    "workers": ("--workers 2 vs --workers 1 (key workers)", ["--trials", "6"]),
    "gpu": ("training images/s of the cnn space here and on this machine's CPU (key gpu; the search: python -m bench.gpu search --help)",
            ["throughput", "--images", "512", "--epochs", "1"]),
    "selection": ("validation signals and threshold rules against test figures, every kept trial (key selection)",
                  ["--sets", "covid19", "--seeds", "1", "--budget", "60", "--epochs", "3"]),
    "vs_hand": ("the seeds' hand CNN (5 seeds) vs the quick start and the 30-minute search, test split (key vs_hand)",
                ["--sets", "covid19", "--budget", "120", "--seeds", "2"]),
    "imagenet": ("efficientnet-lite0's warm starts from ImageNet vs random weights, test split (key imagenet)",
                 ["--sets", "covid19", "--epochs", "2"]),
    "hand_variants": ("one change at a time to the hand CNN (standardisation, intensity, affine), test split (key hand_variants)",
                      ["--sets", "covid19", "--seeds", "2", "--variants", "base;standardize"]),
    "feature_cache": ("efficientnet-lite0 trials and searches with the feature cache on and off, side by side (key feature_cache)",
                      ["--sets", "covid19", "--budget", "120", "--trials", "frozen"]),
    "backbones": ("EfficientNet-Lite0/1/2 at several sizes: frozen features, 5-fold OOF AUC on train, paired bootstrap (key backbones)",
                  ["--set", "covid19", "--candidates", "lite0@128,lite0@160", "--folds", "3", "--epochs", "2"]),
    "spaces_epoch": ("parameters, FLOPs and seconds per epoch of each space (key spaces_epoch)", ["cnn", "dense"]),
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    small = "--small" in argv
    if small:
        argv.remove("--small")
    if not argv or argv[0] in ("-h", "--help", "list"):
        print(__doc__.strip() + "\n")
        try:
            for name, (what, flags) in BENCHES.items():
                print(f"  {name:<22} {what}\n  {'':<22} small: python -m bench.{name} {' '.join(flags)}")
            sys.stdout.flush()
        except BrokenPipeError:  # `python -m bench | head`
            sys.stdout = None
        return 0
    name, rest = argv[0], argv[1:]
    names = list(BENCHES) if name == "all" else [name]
    unknown = [n for n in names if n not in BENCHES]
    if unknown:
        print(f"python -m bench: unknown benchmark {unknown[0]!r}; choose one of {', '.join(BENCHES)} or all", file=sys.stderr)
        return 2
    for n in names:
        flags = (BENCHES[n][1] if small else []) + rest
        print(f"== python -m bench.{n} {' '.join(flags)}", flush=True)
        module = importlib.import_module(f"bench.{n}")
        saved, sys.argv = sys.argv, [f"bench.{n}", *flags]  # modules that parse sys.argv themselves
        try:
            module.main()
        finally:
            sys.argv = saved
    return 0


if __name__ == "__main__":
    sys.exit(main())
