"""The feature cache on and off, side by side: seconds per trial, trials per budget, and what the export scores.

    python -m bench.feature_cache                                  # chest_xray and covid19, 30-minute searches
    python -m bench.feature_cache --sets covid19 --budget 300      # reduced: recorded under feature_cache_reduced

Per data set, two parts, each side in its own process through the real executable:

1. ``trials``: the same trials with ``--feature-cache`` on and off (``--trials``
   of the warm starts: frozen backbone, head then fine-tune, and a partly
   frozen one with its last 2 blocks trainable, each as its own one-trial study
   with ``--no-warm-start`` and the trial enqueued): seconds per trial (first
   pass included), validation AUC.  Sides ``off``, ``on`` (the features
   computed, or read where an earlier trial of the set has the same cut: its
   record says which) and ``on_again`` (read back).
2. ``search``: the same study (same seed) for ``--budget`` seconds with the
   cache on and off (the order rotated between sets), then ``best --export``
   once on each: trials finished, best validation AUC, the export's test AUC,
   accuracy and balanced accuracy with CIs, and the cache's size on disk.

Results go under key ``feature_cache`` (``feature_cache_reduced`` below the
defaults), written after every side, so a run cut short keeps what it finished.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time

from bench.harness import DATA_ROOT, export, lungsearch, study_facts

SPACE = "efficientnet-lite0"
# the trials of part 1: name -> params (the space's two warm starts, and one with its last 2 blocks trainable)
TRIALS = {
    "frozen": {"trainable_blocks": 0, "head_batch_norm": False, "head_dropout": 0.2, "head_units": 32, "optimizer": "adam",
               "learning_rate": 1e-3, "fine_tune": False, "batch_size": 32},
    "head_then_fine_tune": {"trainable_blocks": 0, "head_batch_norm": False, "head_dropout": 0.2, "head_units": 128,
                            "optimizer": "adam", "learning_rate": 1e-3, "fine_tune": True, "fine_tune_lr_factor": 0.02,
                            "batch_size": 32},
    "last_2_blocks": {"trainable_blocks": 2, "head_batch_norm": False, "head_dropout": 0.2, "head_units": 32, "optimizer": "adam",
                      "learning_rate": 1e-3, "fine_tune": False, "batch_size": 32},
}


def cache_bytes(folder: str) -> int:
    """Bytes of the feature entries in a cache folder (not the decoded images beside them)."""
    total = 0
    for name in os.listdir(folder) if os.path.isdir(folder) else ():
        if name.startswith("features-"):
            for root, _, files in os.walk(os.path.join(folder, name)):
                total += sum(os.path.getsize(os.path.join(root, f)) for f in files)
    return total


def one_trial(folder: str, work: str, cache_dir: str, name: str, side: str, size: int, epochs: int, seed: int) -> dict:
    """One trial of ``TRIALS[name]`` as a one-trial study, the cache on or off (``side``): its seconds and figures."""
    import optuna

    cached = side != "off"
    storage = f"sqlite:///{work}/{name}-{side}.db"
    study = optuna.create_study(storage=storage, study_name="t", direction="maximize")
    study.enqueue_trial(TRIALS[name])
    flags = ["--space", SPACE, "--trials", "1", "--epochs", str(epochs), "--image-size", str(size), "--seed", str(seed),
             "--no-warm-start", "--recycle", "0", "--cache-dir", cache_dir, "--quiet"] + ([] if cached else ["--no-feature-cache"])
    start = time.perf_counter()
    lungsearch("run", "--data", folder, *flags, "--storage", storage, "--study", "t")
    wall = time.perf_counter() - start
    trial = optuna.load_study(study_name="t", storage=storage).trials[0]
    return {"wall_seconds": round(wall, 1), "train_seconds": trial.user_attrs.get("train_seconds"), "epochs": trial.user_attrs.get("epochs"),
            "val_auc": trial.value, "feature_cache": trial.user_attrs.get("feature_cache")}


def one_search(folder: str, work: str, cache_dir: str, cached: bool, size: int, epochs: int, budget: int, seed: int) -> dict:
    side = "on" if cached else "off"
    storage = f"sqlite:///{work}/search-{side}.db"
    flags = ["--space", SPACE, "--trials", "1000", "--timeout", str(budget), "--epochs", str(epochs), "--image-size", str(size),
             "--seed", str(seed), "--cache-dir", cache_dir, "--quiet"] + ([] if cached else ["--no-feature-cache"])
    start = time.perf_counter()
    lungsearch("run", "--data", folder, *flags, "--storage", storage, "--study", "s")
    wall = time.perf_counter() - start
    _, facts = study_facts(storage, switches=False)
    picked = export(storage, os.path.join(work, f"export-{side}"))
    return {"flags": flags, "wall_seconds": round(wall, 1), **facts, "trials_per_hour": round(facts["trials"] * 3600 / wall, 1),
            "export": picked, "cache_bytes": cache_bytes(cache_dir) if cached else 0}


def flops_split(size: int, blocks: int) -> dict:
    """Forward FLOPs per image of the frozen part and of the trained rest, for a trial with ``blocks`` trainable blocks.

    An estimate of the cache's speed-up: per training step the pixel path runs
    the frozen part forward and the rest forward and backward (about 3x its
    forward), the cached path the rest alone; so about (frozen + 3 rest) /
    (3 rest) where time follows FLOPs.  Depthwise convolutions at high
    resolution are slower per FLOP, so the early, frozen layers cost more than
    their share and measured speed-ups run somewhat above the estimate.
    """
    import keras
    import optuna

    from spaces import get_space
    from spaces.flops import layer_flops, leaf_layers

    space = get_space(SPACE)
    params = {**TRIALS["last_2_blocks"], "trainable_blocks": blocks}
    model = space.build(optuna.trial.FixedTrial(params), input_shape=(size, size, 1), num_classes=2)
    base = next(layer for layer in model.layers if isinstance(layer, keras.Model))
    first = next((i for i, layer in enumerate(base.layers) if layer.trainable and layer.weights), len(base.layers))
    frozen = sum(layer_flops(layer) for layer in list(leaf_layers(base))[:first])
    total = sum(layer_flops(layer) for layer in leaf_layers(model))
    rest = total - frozen
    return {"trainable_blocks": blocks, "image_size": size, "frozen_mflops": round(frozen / 1e6, 1), "rest_mflops": round(rest / 1e6, 1),
            "rest_share": round(rest / total, 3), "speedup_estimate": round((frozen + 3 * rest) / (3 * rest), 2)}


def quickstart(args, sets: list[str], sides: list[str]) -> dict:
    """The README's quick start (``run --space efficientnet-lite0 --trials 10 --epochs 5``, then ``best --export``) timed as a
    new user meets it: a cold cache (images decoded, features computed), the cache on or off; the export's test figures."""
    from bench.results import load, record

    entry = load().get("feature_cache_quickstart") or {}
    runs = entry.setdefault("sets", {})
    for name in sets:
        for side in sides:
            with tempfile.TemporaryDirectory(prefix=f"quickstart-{name}-{side}-") as work:
                storage = f"sqlite:///{work}/studies.db"
                flags = ["--space", SPACE, "--trials", "10", "--epochs", "5", "--seed", str(args.seed), "--cache-dir", os.path.join(work, "cache"),
                         "--quiet"] + ([] if side == "on" else ["--no-feature-cache"])
                start = time.perf_counter()
                lungsearch("run", "--data", os.path.join(DATA_ROOT, name), *flags, "--storage", storage)
                run_seconds = time.perf_counter() - start
                start = time.perf_counter()
                picked = export(storage, os.path.join(work, "export"))
                best_seconds = time.perf_counter() - start
                _, facts = study_facts(storage, switches=False)
            runs.setdefault(name, {})[side] = {"flags": flags, "run_seconds": round(run_seconds, 1), "best_seconds": round(best_seconds, 1),
                                               **facts, "export": picked}
            print(f"  quick start {name} cache {side}: run {run_seconds:.0f} s, best {best_seconds:.0f} s, "
                  f"test AUC {picked['test_auc']:.3f}, accuracy {picked['test_accuracy']:.3f}", flush=True)
            if not args.no_record:
                record("feature_cache_quickstart", {"space": SPACE, "seed": args.seed, "sets": runs})
    return runs


def table(entry: dict) -> str:
    """The recorded figures as the Markdown tables of bench/RESULTS.md (``--table``): typed from the record, not by hand."""
    if "sets" in entry and any("run_seconds" in side for runs in entry["sets"].values() for side in runs.values()):
        lines = ["| set | cache | run (10 trials) | best --export | trials complete / pruned | export test AUC [95% CI] | accuracy |",
                 "|---|---|---|---|---|---|---|"]
        for name, runs in entry["sets"].items():
            for side, r in runs.items():
                ci = r["export"]["test"]["roc_auc"]["ci95"]
                lines.append(f"| {name} | {side} | {r['run_seconds'] / 60:.1f} min | {r['best_seconds'] / 60:.1f} min | {r['complete']} / {r['pruned']} | "
                             f"{r['export']['test_auc']:.3f} [{ci[0]:.3f}, {ci[1]:.3f}] | {r['export']['test_accuracy']:.3f} |")
        return "\n".join(lines)
    if "rows" in entry:  # feature_cache_flops
        lines = ["| trainable blocks | frozen part MFLOPs | rest MFLOPs | rest's share | speed-up estimate |", "|---|---|---|---|---|"]
        lines += [f"| {r['trainable_blocks']} | {r['frozen_mflops']} | {r['rest_mflops']} | {r['rest_share']:.1%} | {r['speedup_estimate']}x |"
                  for r in entry["rows"]]
        return "\n".join(lines)
    lines = ["| set | trial | off: s | on: s (features) | on again: s | speedup on / on again | val AUC off / on |",
             "|---|---|---|---|---|---|---|"]
    for name, sets in entry.get("sets", {}).items():
        for trial, sides in sets.get("trials", {}).items():
            if not all(k in sides for k in ("off", "on", "on_again")):
                continue
            on = sides["on"]
            how = "read" if (on.get("feature_cache") or {}).get("from_cache") else "computed"
            first = (on.get("feature_cache") or {}).get("first_pass_seconds")
            lines.append(f"| {name} | {trial} | {sides['off']['train_seconds']:.1f} | {on['train_seconds']:.1f} ({how} in {first}) | "
                         f"{sides['on_again']['train_seconds']:.1f} | {sides['speedup']['on']}x / {sides['speedup']['on_again']}x | "
                         f"{sides['off']['val_auc']:.4f} / {on['val_auc']:.4f} |")
    lines += ["", "| set | side | trials (complete/pruned) | trials per hour | best val AUC | export test AUC [95% CI] | accuracy | "
                  "balanced acc. | features on disk |", "|---|---|---|---|---|---|---|---|---|"]
    for name, sets in entry.get("sets", {}).items():
        for side, run in (sets.get("search") or {}).items():
            if not isinstance(run, dict):
                continue
            test = run["export"]["test"]
            lines.append(f"| {name} | {side} | {run['trials']} ({run['complete']}/{run['pruned']}) | {run['trials_per_hour']} | "
                         f"{run.get('best_val', float('nan')):.4f} | {run['export']['test_auc']:.3f} [{test['roc_auc']['ci95'][0]:.3f}, "
                         f"{test['roc_auc']['ci95'][1]:.3f}] | {run['export']['test_accuracy']:.3f} | "
                         f"{run['export']['test_balanced_accuracy']:.3f} | {run['cache_bytes'] / 2**20:.0f} MiB |")
    return "\n".join(lines)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sets", default="chest_xray,covid19")
    ap.add_argument("--size", type=int, default=128, help="input side (default 128, the space's own)")
    ap.add_argument("--epochs", type=int, default=5, help="epoch cap per trial (default 5, the quick start's)")
    ap.add_argument("--budget", type=int, default=1800, help="seconds of each search side (default 1800)")
    ap.add_argument("--trials", default=",".join(TRIALS), help=f"part 1's trials (default {','.join(TRIALS)}); '' skips it")
    ap.add_argument("--no-search", action="store_true", help="part 1 only")
    ap.add_argument("--quickstart", metavar="SIDES", help="record only the README's quick start on --sets, as a new user runs it "
                                                          "(a cold cache, run then best --export), for SIDES of on,off (key feature_cache_quickstart)")
    ap.add_argument("--flops", action="store_true", help="record only the FLOPs of the frozen part and the rest per trainable_blocks "
                                                         "(key feature_cache_flops): what bounds the speed-up")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-record", action="store_true")
    ap.add_argument("--table", metavar="KEY", nargs="?", const="feature_cache",
                    help="print the Markdown tables of the record under KEY (default feature_cache) and run nothing")
    args = ap.parse_args(argv)
    from bench.results import below_defaults, load, record

    if args.table:
        print(table(load().get(args.table) or {}))
        return {}

    if args.quickstart:
        return quickstart(args, [s for s in args.sets.split(",") if s], [s for s in args.quickstart.split(",") if s])
    if args.flops:
        rows = [flops_split(args.size, k) for k in range(4)]
        for row in rows:
            print(row)
        if not args.no_record:
            record("feature_cache_flops", {"space": SPACE, "rows": rows})
        return {"rows": rows}
    reduced = below_defaults(ap, args, "sets", "budget", "epochs", "trials") or args.no_search
    key = "feature_cache_reduced" if reduced else "feature_cache"
    results = (load().get(key) or {}).get("sets", {}) if not args.no_record else {}

    def save():
        if not args.no_record:
            record(key, {"reduced": reduced, "space": SPACE, "image_size": args.size, "epochs": args.epochs, "budget": args.budget,
                         "seed": args.seed, "sets": results})

    for index, name in enumerate(s for s in args.sets.split(",") if s):
        folder = os.path.join(DATA_ROOT, name)
        entry = results.setdefault(name, {})
        with tempfile.TemporaryDirectory(prefix=f"feature-cache-{name}-") as work:
            cache_dir = os.path.join(work, "cache")
            trials = entry.setdefault("trials", {})
            for trial in [t for t in args.trials.split(",") if t]:
                sides = trials.setdefault(trial, {})
                # off; on (features computed, or read where an earlier trial of the set has the same cut); on again (read)
                for side in ("off", "on", "on_again"):
                    sides[side] = one_trial(folder, work, cache_dir, trial, side, args.size, args.epochs, args.seed)
                    print(f"  {name} {trial} {side}: {sides[side]['wall_seconds']} s wall, {sides[side]['train_seconds']} s training, "
                          f"val AUC {sides[side]['val_auc']}", flush=True)
                    save()
                off = sides["off"]["train_seconds"]
                sides["speedup"] = {side: round(off / sides[side]["train_seconds"], 2) for side in ("on", "on_again")}
                save()
            if args.no_search:
                continue
            shutil.rmtree(cache_dir, ignore_errors=True)  # the search pays its own first pass
            search = entry.setdefault("search", {})
            order = (True, False) if index % 2 == 0 else (False, True)
            for cached in order:
                side = "on" if cached else "off"
                search[side] = one_search(folder, work, cache_dir, cached, args.size, args.epochs, args.budget, args.seed)
                print(f"  {name} search {side}: {search[side]['trials']} trials, best val {search[side].get('best_val')}, "
                      f"export test AUC {search[side]['export']['test_auc']:.3f}", flush=True)
                save()
            if "on" in search and "off" in search:
                search["trials_ratio"] = round(search["on"]["trials"] / max(1, search["off"]["trials"]), 2)
                search["test_auc_difference"] = round(search["on"]["export"]["test_auc"] - search["off"]["export"]["test_auc"], 4)
                save()
    print(json.dumps({n: {k: v for k, v in e.items() if k != "search"} for n, e in results.items()}, indent=1, default=str)[:3000])
    return results


if __name__ == "__main__":
    main()
