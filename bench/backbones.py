"""Which backbone and image size: EfficientNet-Lite0/1/2 at several sizes, chosen on cross-validated figures of train only.

    python -m bench.backbones                                  # chest_xray, every candidate, 5 folds
    python -m bench.backbones --candidates lite0@128,lite2@260 # some of them (recorded under backbones_reduced)
    python -m bench.backbones --table                          # the recorded table, printed from the record

For each candidate (space @ image size), on the train and validation images of
one data set together (never its test split):

1. the frozen backbone's output for every image, computed once through the
   feature cache (its seconds per 1,000 images, cold: what every frozen trial and
   every first phase costs at that size);
2. the space's frozen warm start (its head, optimizer and learning rate) trained
   for ``--epochs`` epochs on K patient-grouped, stratified folds of those
   features (the folds of ``lungsearch.data.groups.kfold``, the same for every
   candidate), giving an out-of-fold (OOF) probability for every image: OOF AUC
   with its bootstrap CI, log-loss, and a paired bootstrap of the AUC
   difference against the current default (lite0@128) over the same images;
3. the seconds of one end-to-end epoch on pixels over 512 images with the whole
   network trainable (a fine-tune phase's cost at that size).

The rule, fixed before the run: the candidate with the highest OOF AUC wins
unless its paired difference from the default has a 95% interval that includes
0, in which case the cheaper default stays.  The choice is made on one data set
(chest_xray) and confirmed once on the other's test split (``--confirm
covid19``): the README's quick start (``run --space efficientnet-lite0
--trials 10 --epochs 5``, then ``best --export``) at the default's size and at
the winner's, each export's test AUC with its CI, a paired bootstrap of the
difference over the same test images, and each side's wall time.  Recorded
under key ``backbones`` after every candidate and side.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import numpy as np

from bench.harness import DATA_ROOT, data_folder, export, lungsearch, test_probs

DEFAULT = "lite0@128"
CANDIDATES = ("lite0@128", "lite0@160", "lite0@224", "lite1@160", "lite1@240", "lite2@160", "lite2@260")
N_BOOT = 1000


def parse(candidate: str) -> tuple[str, int]:
    variant, size = candidate.split("@")
    return f"efficientnet-{variant}", int(size)


def all_images(folder: str, space, size: int, seed: int, cache_dir: str):
    """Train and validation of ``folder`` together (pixels, labels, patient groups) as the search decodes them."""
    from lungsearch.config import RunConfig
    from lungsearch.trial import search_data

    config = RunConfig(data=folder, space=space.name, image_size=size, seed=seed, cache_dir=cache_dir)
    data = search_data(config, color_mode=space.color_mode)
    x = np.concatenate([data.train.x, data.val.x])
    y = np.concatenate([data.train.y, data.val.y])
    return x, y, list(data.groups["train"]) + list(data.groups["val"])


def paired_auc(y: np.ndarray, a: np.ndarray, b: np.ndarray, seed: int = 0) -> dict:
    from lungsearch.evaluate.compare import paired_bootstrap_auc

    return paired_bootstrap_auc(y, a, b, n=N_BOOT, seed=seed)


def run_candidate(candidate: str, folder: str, folds, work: str, cache_dir: str, epochs: int, seed: int) -> dict:
    import keras
    import optuna
    from sklearn.metrics import log_loss

    from lungsearch.evaluate.compare import bootstrap_auc
    from lungsearch.evaluate.metrics import roc_auc
    from lungsearch.features import features_of
    from lungsearch.trial import build_facts
    from lungsearch.config import RunConfig
    from spaces import get_space

    name, size = parse(candidate)
    space = get_space(name)
    start = time.perf_counter()
    x, y, _ = all_images(folder, space, size, seed, cache_dir)
    decode_seconds = time.perf_counter() - start
    params = dict(space.warm_starts[0]["params"])  # the frozen warm start
    classes = int(y.max()) + 1
    facts = build_facts(RunConfig(data=folder, cache_dir=cache_dir))

    def build():
        return space.build(optuna.trial.FixedTrial(params), input_shape=x.shape[1:], num_classes=classes, **facts)

    keras.utils.set_random_seed(seed)
    model = build()
    cut = space.feature_split(model)
    start = time.perf_counter()
    feats, hit = features_of(cut.frozen, x, cache_dir=cache_dir, group=f"features|backbones|{name}|{size}")
    feature_seconds = time.perf_counter() - start
    classes = int(y.max()) + 1
    oof = np.zeros((len(y), classes), dtype=np.float64)  # every image's probabilities from the fold that held it out
    fold_auc = []
    for k, (tr, held) in enumerate(folds):
        keras.backend.clear_session(free_memory=True)
        keras.utils.set_random_seed(seed * 1000 + k)
        fold_model = build()
        rest = space.feature_split(fold_model).rest
        rest.compile(optimizer=type(fold_model.optimizer).from_config(fold_model.optimizer.get_config()), loss=fold_model.loss)
        counts = np.bincount(y[tr], minlength=classes)
        weights = {c: len(tr) / (classes * counts[c]) for c in range(classes)}
        rest.fit(feats[tr], y[tr], epochs=epochs, batch_size=int(params["batch_size"]), class_weight=weights, verbose=0, shuffle=True)
        oof[held] = np.asarray(rest.predict(feats[held], batch_size=256, verbose=0))
        fold_auc.append(roc_auc(y[held], oof[held]))
    # one end-to-end epoch on pixels, whole network trainable: a fine-tune phase's cost at this size
    keras.backend.clear_session(free_memory=True)
    keras.utils.set_random_seed(seed)
    whole = build()
    for layer in whole.layers:
        layer.trainable = True
    whole.compile(optimizer="adam", loss=whole.loss)
    n = min(512, len(y))
    whole.fit(x[:64], y[:64], epochs=1, batch_size=32, verbose=0)  # compile the graph outside the timing
    start = time.perf_counter()
    whole.fit(x[:n], y[:n], epochs=1, batch_size=32, verbose=0)
    pixel_epoch = (time.perf_counter() - start) * 1000.0 / n
    np.save(os.path.join(work, f"oof-{candidate}.npy"), oof)
    return {
        "space": name, "image_size": size, "images": int(len(y)), "feature_shape": list(feats.shape[1:]),
        "decode_seconds": round(decode_seconds, 1), "feature_seconds": round(feature_seconds, 1), "features_from_cache": bool(hit),
        "feature_seconds_per_1000": round(feature_seconds * 1000.0 / len(y), 2),
        "fine_tune_seconds_per_1000": round(pixel_epoch, 1),
        "oof_auc": round(roc_auc(y, oof), 5), "oof_auc_ci95": [round(v, 5) for v in bootstrap_auc(y, oof, n=N_BOOT, seed=seed)],
        "oof_log_loss": round(float(log_loss(y, oof / oof.sum(axis=1, keepdims=True), labels=list(range(classes)))), 5),
        "fold_auc": [round(a, 5) for a in fold_auc],
        "oof": oof,
    }


def confirm(entry: dict, name: str, save, seed: int = 0) -> dict:
    """The quick start at the default's and the winner's backbone and size on ``name``, its test split read once per side."""
    import optuna

    from lungsearch.evaluate import positive_class
    from lungsearch.evaluate.compare import paired_bootstrap_auc

    import shlex
    import sys

    from bench.results import machine, now

    out = entry.setdefault("confirm", {"set": name, "sides": {}})
    # the entry keeps the race's own command and date; the confirmation carries its own
    out.update(command="python -m bench.backbones " + " ".join(shlex.quote(a) for a in sys.argv[1:]), date=now(), machine=machine())
    probs = {}
    with tempfile.TemporaryDirectory(prefix="backbones-confirm-") as work:
        folder = data_folder(name, work)
        for candidate in dict.fromkeys([DEFAULT, entry["winner"]]):
            space, size = parse(candidate)
            storage = f"sqlite:///{work}/{candidate}.db"
            start = time.perf_counter()
            lungsearch("run", "--data", folder, "--space", space, "--trials", "10", "--epochs", "5", "--image-size", str(size),
                       "--seed", str(seed), "--cache-dir", os.path.join(work, "cache"), "--storage", storage, "--study", "q", "--quiet")
            wall = time.perf_counter() - start
            picked = export(storage, os.path.join(work, f"export-{candidate}"))
            study = optuna.load_study(study_name="q", storage=storage)
            y, probs[candidate], classes = test_probs(os.path.join(work, f"export-{candidate}", "model.keras"), folder, study)
            out["sides"][candidate] = {"run_seconds": round(wall, 1), "test_auc": picked["test_auc"], "test": picked["test"],
                                       "test_accuracy": picked["test_accuracy"]}
            print(f"  confirm {name} {candidate}: {wall:.0f} s, test AUC {picked['test_auc']:.4f}", flush=True)
            save()
        if entry["winner"] != DEFAULT:
            out["paired"] = paired_bootstrap_auc(y, probs[entry["winner"]], probs[DEFAULT], positive=positive_class(classes), seed=seed)
            save()
    return out


def table(entry: dict) -> str:
    """The recorded figures as the Markdown table of bench/RESULTS.md, typed from the record."""
    lines = ["| candidate | OOF AUC [95% CI] | vs lite0@128: difference [95% CI], p | OOF log-loss | folds' AUC | "
             "frozen pass s / 1,000 images | fine-tune epoch s / 1,000 images |", "|---|---|---|---|---|---|---|"]
    for name, c in entry.get("candidates", {}).items():
        vs = c.get("vs_default") or {}
        diff = f"{vs['difference']:+.4f} [{vs['ci95'][0]:+.4f}, {vs['ci95'][1]:+.4f}], p {vs['p']:.3f}" if vs else "(the default)"
        lines.append(f"| {name} | {c['oof_auc']:.4f} [{c['oof_auc_ci95'][0]:.4f}, {c['oof_auc_ci95'][1]:.4f}] | {diff} | "
                     f"{c['oof_log_loss']:.4f} | {min(c['fold_auc']):.4f}-{max(c['fold_auc']):.4f} | {c['feature_seconds_per_1000']} | "
                     f"{c['fine_tune_seconds_per_1000']} |")
    if entry.get("winner"):
        lines += ["", f"Winner by the rule: **{entry['winner']}** ({entry.get('why', '')})."]
    c = entry.get("confirm")
    if c:
        lines += ["", f"Confirmed once on {c['set']}'s test split (the README's quick start, 10 trials, 5 epochs, `best --export`):", "",
                  "| candidate | quick start wall s | test AUC [95% CI] | accuracy |", "|---|---|---|---|"]
        for name, side in c["sides"].items():
            ci = side["test"]["roc_auc"]["ci95"]
            lines.append(f"| {name} | {side['run_seconds']} | {side['test_auc']:.4f} [{ci[0]:.4f}, {ci[1]:.4f}] | {side['test_accuracy']:.3f} |")
        p = c.get("paired")
        if p:
            lines += ["", f"Winner - default on test: {p['difference']:+.4f} [{p['ci95'][0]:+.4f}, {p['ci95'][1]:+.4f}], p {p['p']:.3f} "
                          "(paired bootstrap over the same test images)."]
    return "\n".join(lines)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--set", default="chest_xray", help="the data set that chooses (default chest_xray; its test split is never read)")
    ap.add_argument("--candidates", default=",".join(CANDIDATES))
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=5, help="epochs of the head per fold (default 5, the quick start's)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cache-dir", default=None, help="the cache folder (default: a fresh one, so first passes are cold)")
    ap.add_argument("--no-record", action="store_true")
    ap.add_argument("--table", metavar="KEY", nargs="?", const="backbones", help="print the recorded table under KEY and run nothing")
    ap.add_argument("--confirm", metavar="SET", help="run nothing new on --set: confirm the recorded winner on SET's test split")
    args = ap.parse_args(argv)
    from bench.results import below_defaults, load, record
    from lungsearch.data.groups import kfold

    if args.table:
        print(table(load().get(args.table) or {}))
        return {}
    reduced = below_defaults(ap, args, "candidates", "folds", "epochs")
    key = "backbones_reduced" if reduced else "backbones"
    if args.confirm:
        entry = load().get(key) or {}
        if not entry.get("winner"):
            raise SystemExit(f"no winner recorded under {key}; run the race first")
        confirm(entry, args.confirm, lambda: None if args.no_record else record(key, entry), seed=args.seed)
        print(table(entry))
        return entry
    folder = os.path.join(DATA_ROOT, args.set)
    entry = {"reduced": reduced, "set": args.set, "folds": args.folds, "epochs": args.epochs, "seed": args.seed, "rule":
             "highest OOF AUC; the default stays where the paired difference's 95% interval includes 0", "candidates": {}}
    oofs = {}
    with tempfile.TemporaryDirectory(prefix="backbones-") as work:
        cache_dir = args.cache_dir or os.path.join(work, "cache")
        from spaces import get_space

        # the folds: the same images in every candidate (decoding keeps the same files at any size), patient-grouped
        _, y, groups = all_images(folder, get_space("efficientnet-lite0"), 128, args.seed, cache_dir)
        folds = kfold(y, groups, args.folds, args.seed)
        entry["images"] = int(len(y))
        for candidate in [c for c in args.candidates.split(",") if c]:
            out = run_candidate(candidate, folder, folds, work, cache_dir, args.epochs, args.seed)
            oofs[candidate] = out.pop("oof")
            if candidate != DEFAULT and DEFAULT in oofs:
                out["vs_default"] = paired_auc(y, oofs[candidate], oofs[DEFAULT], seed=args.seed)
            entry["candidates"][candidate] = out
            print(f"  {candidate}: OOF AUC {out['oof_auc']:.4f} {out['oof_auc_ci95']}, {out['feature_seconds_per_1000']} s / 1000 "
                  f"frozen, {out['fine_tune_seconds_per_1000']} s / 1000 fine-tune, vs default {out.get('vs_default')}", flush=True)
            if not args.no_record:
                record(key, entry)
        best = max(entry["candidates"], key=lambda c: entry["candidates"][c]["oof_auc"]) if entry["candidates"] else None
        if best is not None:
            vs = entry["candidates"][best].get("vs_default")
            if best == DEFAULT or vs is None:
                entry["winner"], entry["why"] = best, "highest OOF AUC"
            elif vs["ci95"][0] > 0:
                entry["winner"], entry["why"] = best, f"highest OOF AUC, {vs['difference']:+.4f} over {DEFAULT}, interval above 0"
            else:
                entry["winner"], entry["why"] = DEFAULT, (f"{best} had the highest OOF AUC, {vs['difference']:+.4f} over {DEFAULT} "
                                                          f"with an interval that includes 0, so the cheaper default stays")
        if not args.no_record:
            record(key, entry)
    print(json.dumps({k: v for k, v in entry.items() if k != "candidates"}, indent=1))
    return entry


if __name__ == "__main__":
    main()
