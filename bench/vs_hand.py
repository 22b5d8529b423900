"""The search against the seeds' hand-written CNN, on data it has never seen: test figures with CIs.

    python -m bench.vs_hand                                  # all three data sets, 30-minute default search
    python -m bench.vs_hand --sets covid_normal --budget 300 --seeds 2   # a reduced run (recorded apart)

Per data set, in one invocation, each side through the real executable on a
fresh SQLite study, then ``lungsearch best --export --ensemble 1`` (the pick
alone; validation picks the threshold; the test split is read there, once):

- ``hand``: ``bench/hand_cnn.py`` (the seeds' CNN, nothing tuned), one trial
  of 10 epochs per seed (``--seed`` also re-draws the validation split);
- ``quick``: the README's quick start, ``--space cnn --trials 20 --epochs 5
  --image-size 64``;
- ``default``: the 30-minute default, ``--trials 1000 --timeout 1800``.

``--space NAME`` runs the two search sides on another built-in space (the
hand CNN is the same); they are recorded as ``quick@NAME`` and
``default@NAME`` beside the cnn space's, each judged against the same goals.
``--quick-trials`` and ``--quick-size`` change the quick start's trial count
and image side (recorded with its flags).

Data sets: ``chest_xray`` (NORMAL/PNEUMONIA: the disease class at index 1),
``covid19`` (3 classes: macro one-vs-rest AUC, argmax accuracy) and
``covid_normal``, made here as symbolic links to covid19's Covid and Normal
folders (the disease class at index 0, where the inverted-AUC bug hid).

After each search, ``best --export --ensemble 3`` (the kept top 3 averaged,
what ``best`` exports by default) is tested beside the single pick; after the default search, the best trial
of each value of the cnn space's switches (augmentation off/on,
normalisation none/image) is exported too (``--retrain`` where its model was
not kept), so each study also says which won on test.  Key ``vs_hand`` (``vs_hand_reduced`` for a
reduced run), written after every side, so a run cut short keeps what it did.
Goal: per data set, quick ``test_auc`` >= the hand CNN's median and default
``search_auc`` >= the hand CNN's best seed, each judged only between sides of
one invocation (``like``), so a later run of one side never meets a goal
against an earlier run of another.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.path.normpath(os.path.join(HERE, "..", "..", "shared", "data"))
HAND = os.path.join(HERE, "hand_cnn.py")
SETS = ("covid19", "chest_xray", "covid_normal")
METRICS = ("roc_auc", "accuracy", "balanced_accuracy", "sensitivity", "specificity")
# The cnn space's switches (parameter, its value in trials that predate it, values): the best trial of
# each value of each is exported and tested after the default search.
SWITCHES = (("augment", "on", ("on", "off")), ("normalize", "none", ("none", "image")))
ENSEMBLE = 3  # best --ensemble K, exported beside the single pick of each search
QUICK_TRIALS = 20
QUICK_SIZE = 64


def lungsearch(*args: str) -> str:
    exe = shutil.which("lungsearch", path=os.path.dirname(sys.executable)) or "lungsearch"
    done = subprocess.run([exe, *args], capture_output=True, text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    if done.returncode != 0:
        raise SystemExit(f"lungsearch {' '.join(args)} failed ({done.returncode}): {done.stderr[-2000:]}")
    return done.stdout


def data_folder(name: str, work: str) -> str:
    """The folder of a data set; covid_normal is made here from covid19's Covid and Normal folders (links, no copies)."""
    if name != "covid_normal":
        return os.path.join(SHARED, name)
    root = os.path.join(work, "covid_normal")
    for split in ("train", "test"):
        os.makedirs(os.path.join(root, split), exist_ok=True)
        for cls in ("Covid", "Normal"):
            link = os.path.join(root, split, cls)
            if not os.path.exists(link):
                os.symlink(os.path.join(SHARED, "covid19", split, cls), link)
    return root


def export(storage: str, out: str, *extra: str) -> dict:
    """``best --export`` into ``out``; the test figures (value and CI) and what was exported."""
    os.makedirs(out, exist_ok=True)
    lungsearch("best", "--storage", storage, "--export", os.path.join(out, "model.keras"), "--out", out, *extra)
    with open(os.path.join(out, "evaluation.json")) as fh:
        ev = json.load(fh)
    with open(os.path.join(out, "model.json")) as fh:
        meta = json.load(fh)
    m = ev["test"]["metrics"]
    figures = {k: {"value": m[k]["value"], "ci95": m[k]["ci95"]} for k in METRICS if k in m}
    return {"trial": meta["trial"], "params": meta["params"], "val_auc": meta["validation"].get("val_auc"),
            "test": figures, "test_auc": m["roc_auc"]["value"], "test_accuracy": m["accuracy"]["value"],
            "test_balanced_accuracy": m["balanced_accuracy"]["value"]}


def quick_flags(space: str = "cnn", trials: int = QUICK_TRIALS, size: int = QUICK_SIZE) -> list[str]:
    """The README's quick start on ``space``."""
    return ["--space", space, "--trials", str(trials), "--epochs", "5", "--image-size", str(size)]


def side_name(side: str, space: str) -> str:
    """Where a search side is recorded: ``quick``/``default`` for the cnn space, ``quick@NAME`` for another."""
    return side if space == "cnn" else f"{side}@{space}"


def study_facts(storage: str, *, switches: bool = True) -> dict:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    summary = optuna.get_all_study_summaries(storage)[-1]
    study = optuna.load_study(study_name=summary.study_name, storage=storage)
    trials = study.get_trials(deepcopy=False)
    done = [t for t in trials if t.state.name == "COMPLETE"]
    out = {"study": study.study_name, "trials": len(trials), "complete": len(done),
           "pruned": sum(t.state.name == "PRUNED" for t in trials)}
    if done:
        best = study.best_trial
        out.update(best_trial=best.number, best_val=best.value, best_is_warm_start=bool(best.user_attrs.get("warm_start")))
        warm = [t for t in done if t.user_attrs.get("warm_start")]
        if warm:
            out["warm_start_val"] = max(t.value for t in warm)
        for param, default, values in SWITCHES if switches else ():
            for value in values:
                side = [t for t in done if t.params.get(param, default) == value]
                out[f"{param}_{value}"] = {"complete": len(side), "best_val": max((t.value for t in side), default=None),
                                           "best_trial": max(side, key=lambda t: t.value).number if side else None}
    return study, out


def side_hand(folder: str, work: str, seeds: int) -> dict:
    runs = []
    for seed in range(seeds):
        storage = f"sqlite:///{work}/hand-{seed}.db"
        start = time.perf_counter()
        lungsearch("run", "--data", folder, "--space", HAND, "--trials", "1", "--epochs", "10", "--image-size", "64",
                   "--seed", str(seed), "--storage", storage, "--study", "hand", "--recycle", "0")
        seconds = time.perf_counter() - start
        runs.append({"seed": seed, "seconds": round(seconds, 1), **export(storage, f"{work}/hand-{seed}", "--ensemble", "1")})
        print(f"  hand seed {seed}: test AUC {runs[-1]['test_auc']:.3f}, accuracy {runs[-1]['test_accuracy']:.3f} ({seconds:.0f} s)", flush=True)
    aucs = [r["test_auc"] for r in runs]
    return {"seeds": runs, "auc_median": statistics.median(aucs), "auc_best": max(aucs), "auc_min": min(aucs),
            "accuracy_median": statistics.median(r["test_accuracy"] for r in runs)}


def side_search(folder: str, work: str, name: str, flags: list[str], *, on_off: bool = False) -> dict:
    """One search (``flags`` name the space; the cnn space's switches are looked at only with ``on_off``)."""
    name = name.replace("@", "-")  # a file name
    storage = f"sqlite:///{work}/{name}.db"
    start = time.perf_counter()
    lungsearch("run", "--data", folder, *flags, "--storage", storage, "--study", name)
    seconds = time.perf_counter() - start
    study, facts = study_facts(storage, switches=on_off)
    out = {"flags": flags, "seconds": round(seconds, 1), **facts, **export(storage, f"{work}/{name}", "--ensemble", "1")}  # the pick alone
    print(f"  {name}: {facts['complete']} complete / {facts['trials']} trials in {seconds:.0f} s, best #{facts.get('best_trial')} "
          f"val {facts.get('best_val', float('nan')):.4f}: test AUC {out['test_auc']:.3f}, accuracy {out['test_accuracy']:.3f}", flush=True)
    if facts["complete"] >= ENSEMBLE:  # the kept top K averaged: does it carry to test better than the single pick?
        out["ensemble"] = {"k": ENSEMBLE, **export(storage, f"{work}/{name}-ensemble", "--ensemble", str(ENSEMBLE))}
        print(f"  {name}, ensemble of {ENSEMBLE}: test AUC {out['ensemble']['test_auc']:.3f}, "
              f"accuracy {out['ensemble']['test_accuracy']:.3f}", flush=True)
    if on_off:  # the best trial of each value of each switch, exported and tested the same way
        from search.keep import model_file

        for param, _, values in SWITCHES:
            for value in values:
                group = out[f"{param}_{value}"]
                best = group["best_trial"]
                if best is None:
                    continue
                if best == out["trial"]:  # the pick itself: already tested
                    figures, retrained = {k: out[k] for k in ("test", "test_auc", "test_accuracy", "test_balanced_accuracy")}, False
                else:
                    retrained = model_file(study, study.trials[best]) is None
                    figures = export(storage, f"{work}/{name}-{param}-{value}", "--trial", str(best), *(["--retrain"] if retrained else []))
                group.update(figures, retrained=retrained)
                print(f"  {name}, best with {param}={value} (#{best}, val {group['best_val']:.4f}): test AUC {figures['test_auc']:.3f}",
                      flush=True)
    return out


def parse_sets(ap: argparse.ArgumentParser, text: str, known) -> list[str]:
    """``--sets`` as a list of known data set names; an unknown name, or no ../shared/data, is a usage error."""
    sets = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in sets if s not in known]
    if unknown:
        ap.error(f"unknown data set {unknown[0]!r}; choose from {', '.join(known)}")
    if not os.path.isdir(SHARED):
        ap.error(f"the real data sets are not at {SHARED}")
    return sets


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sets", default=",".join(SETS), help=f"comma-separated, from {', '.join(SETS)} (default: all, in this order)")
    ap.add_argument("--budget", type=float, default=1800, help="wall seconds of the default search (default 1800)")
    ap.add_argument("--seeds", type=int, default=5, help="hand CNN runs per data set (default 5)")
    ap.add_argument("--sides", default="hand,quick,default", help="which sides to run (default all three)")
    ap.add_argument("--space", default="cnn", help="the built-in space of the quick and default searches (default cnn)")
    ap.add_argument("--quick-trials", type=int, default=QUICK_TRIALS, help=f"the quick start's --trials (default {QUICK_TRIALS})")
    ap.add_argument("--quick-size", type=int, default=QUICK_SIZE, help=f"the quick start's --image-size (default {QUICK_SIZE})")
    ap.add_argument("--no-record", action="store_true")
    args = ap.parse_args(argv)
    sets = parse_sets(ap, args.sets, SETS)
    sides = set(args.sides.split(","))
    reduced = args.budget < 1800 or args.seeds < 5
    key = "vs_hand_reduced" if reduced else "vs_hand"
    from bench.results import load, record, stamp

    results = (load().get(key) or {}).get("sets", {}) if not args.no_record else {}
    with tempfile.TemporaryDirectory(prefix="vs_hand-") as tmp:
        for name in sets:
            work = os.path.join(tmp, name)
            os.makedirs(work)
            folder = data_folder(name, tmp)
            print(f"== {name}", flush=True)
            entry = results.setdefault(name, {})
            quick, default = side_name("quick", args.space), side_name("default", args.space)
            runs = [("hand", "hand", lambda: side_hand(folder, work, args.seeds)),
                    ("quick", quick, lambda: side_search(folder, work, quick, quick_flags(args.space, args.quick_trials, args.quick_size))),
                    ("default", default, lambda: side_search(folder, work, default, ["--space", args.space, "--trials", "1000",
                                                                                     "--timeout", str(args.budget)],
                                                             on_off=args.space == "cnn"))]
            for side, stored_as, run in runs:
                if side not in sides:
                    continue
                # each side its own date, command and data: a later run of other sides keeps them
                entry[stored_as] = stamp({"data": folder, **run()})
                entry.update(summary(entry))
                if not args.no_record:
                    record(key, {"reduced": reduced, "budget_seconds": args.budget, "seeds": args.seeds, "sets": results,
                                 "goal": "quick test_auc >= hand median; default test_auc >= hand best seed"})
    return results


def summary(entry: dict) -> dict:
    """The headline figures of one data set, and whether each goal is met.  A goal compares a search with the
    hand CNN only where both sides were made by one invocation (``like``); between runs it is None, since the
    code, the machine's load or the data may have changed between them."""
    out = {}
    if "hand" in entry:
        out["hand_auc_median"], out["hand_auc_best"] = entry["hand"]["auc_median"], entry["hand"]["auc_best"]
    if "quick" in entry:
        out["quick_auc"] = entry["quick"]["test_auc"]
    if "default" in entry:
        out["search_auc"] = entry["default"]["test_auc"]
    if "hand_auc_median" in out and "quick_auc" in out:
        out["quick_beats_hand_median"] = out["quick_auc"] >= out["hand_auc_median"] if like(entry["quick"], entry["hand"]) else None
    if "hand_auc_best" in out and "search_auc" in out:
        out["search_beats_hand_best"] = out["search_auc"] >= out["hand_auc_best"] if like(entry["default"], entry["hand"]) else None
    for side in sorted(entry):  # the other spaces' sides, against the same goals
        kind, _, space = side.partition("@")
        if not space or kind not in ("quick", "default"):
            continue
        auc, hand = entry[side]["test_auc"], out.get("hand_auc_median" if kind == "quick" else "hand_auc_best")
        comparable = hand is not None and like(entry[side], entry["hand"])
        out.setdefault("spaces", {}).setdefault(space, {}).update(
            {f"{kind}_auc": auc, f"{kind}_beats_hand_{'median' if kind == 'quick' else 'best'}": auc >= hand if comparable else None})
    return out


def like(a: dict, b: dict) -> bool:
    """Whether two sides come from one invocation: the same command, stamped within a day of each other (a
    side's stamp is when it finished).  A side of unknown provenance is like none."""
    if "unknown" in (a.get("provenance"), b.get("provenance")) or not (a.get("command") and a.get("date") and b.get("date")):
        return False
    if a["command"] != b.get("command"):
        return False
    apart = abs(datetime.fromisoformat(a["date"]) - datetime.fromisoformat(b["date"]))
    return apart.total_seconds() <= 24 * 3600


if __name__ == "__main__":
    main()
