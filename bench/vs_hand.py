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
import os
import tempfile
import time
from datetime import datetime

from bench.harness import SWITCHES, data_folder, export, lungsearch, parse_sets, side_hand, study_facts

SETS = ("covid19", "chest_xray", "covid_normal")
ENSEMBLE = 3  # best --ensemble K, exported beside the single pick of each search
QUICK_TRIALS = 20
QUICK_SIZE = 64


def quick_flags(space: str = "cnn", trials: int = QUICK_TRIALS, size: int = QUICK_SIZE) -> list[str]:
    """The README's quick start on ``space``."""
    return ["--space", space, "--trials", str(trials), "--epochs", "5", "--image-size", str(size)]


def side_name(side: str, space: str) -> str:
    """Where a search side is recorded: ``quick``/``default`` for the cnn space, ``quick@NAME`` for another."""
    return side if space == "cnn" else f"{side}@{space}"


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
