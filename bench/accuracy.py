"""Accuracy on this CPU: a search with the defaults for a wall budget, then ``best --export``; test metrics with CIs.

    python -m bench.accuracy                              # 30 minutes, chest_xray, lungsearch's defaults
    python -m bench.accuracy --budget 600                 # a reduced run
    python -m bench.accuracy --space efficientnet-lite0 --epochs 5 --ensemble 3   # the README's quick-start space

Runs the real executable: ``lungsearch run --data DATA --trials 10000
--timeout BUDGET`` (every other setting lungsearch's default) on a fresh SQLite
study, then ``lungsearch best --export --ensemble 1`` (the pick alone; the test split is read there, once),
and prints test accuracy, sensitivity, specificity and ROC AUC with their 95%
bootstrap CIs next to Kermany et al. (Cell 2018, a published figure) and the
seeds' hand CNN as ``bench.vs_hand``'s stored run measured it on the same data
set (named with its date and command; where there is none, the record says the
hand CNN was not measured).  With ``--ensemble K`` the top K trials averaged
(``best --export --ensemble K``; K = 3 is what ``best`` exports by default) are exported and tested too.  Goal (issue 14):
test accuracy >= 0.90 and AUC >= 0.97 on chest_xray.  Key ``accuracy_cpu``,
or ``accuracy_cpu@SPACE`` (with ``@SIZEpx`` where ``--image-size`` is given)
for a space other than run's default, so each variant keeps its own record.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

from bench.harness import DATA_ROOT, LungsearchFailed, lungsearch

KERMANY = {"accuracy": 0.928, "sensitivity": 0.932, "specificity": 0.901, "roc_auc": 0.968}
KERMANY_SOURCE = "Kermany et al., Cell 2018 (published; not measured here)"
METRICS = ("accuracy", "sensitivity", "specificity", "roc_auc")


def hand_cnn(stored: dict, data: str) -> dict:
    """The hand CNN's test figures on ``data`` from ``bench.vs_hand``'s stored run (key ``vs_hand``), named by its date
    and command; ``{"measured": False, "why": ...}`` where that run has no hand side on this data set."""
    name = os.path.basename(os.path.normpath(data))
    run = stored.get("vs_hand") or {}
    hand = ((run.get("sets") or {}).get(name) or {}).get("hand")
    if not hand:
        return {"measured": False, "why": f"no stored bench.vs_hand run of the hand CNN on {name} "
                                          f"(python -m bench.vs_hand --sets {name} --sides hand)"}
    if hand.get("date"):
        source = f"bench.vs_hand, {hand['date']}, {hand.get('command')}"
    else:  # recorded before each side carried its own stamp: the key's stamp is that of its last run, maybe of other sides
        source = f"bench.vs_hand (key vs_hand), the hand side of a run on or before {run.get('date')}"
    return {"measured": True, "source": source, "seeds": len(hand.get("seeds", [])),
            **{k: hand[k] for k in ("auc_median", "auc_best", "accuracy_median")}}


def variant_key(space: str | None, image_size: int | None, data: str = "chest_xray") -> str:
    """``accuracy_cpu`` for run's defaults on chest_xray; ``@SPACE`` added for another space, ``@SIZEpx`` for an
    explicit size and ``@SET`` for another data set, so no variant overwrites another's record."""
    key = "accuracy_cpu" if space in (None, "cnn") else f"accuracy_cpu@{space}"
    name = os.path.basename(os.path.normpath(data))
    return key + (f"@{image_size}px" if image_size else "") + ("" if name == "chest_xray" else f"@{name}")


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=os.path.join(DATA_ROOT, "chest_xray"), help="image folder with train/ and test/ (default: ../shared/data/chest_xray)")
    ap.add_argument("--budget", type=float, default=1800, help="wall seconds of the search (default 1800)")
    ap.add_argument("--image-size", type=int, default=None, help="default: the space's own")
    ap.add_argument("--space", default=None, help="search space (default: run's own, cnn)")
    ap.add_argument("--epochs", type=int, default=None, help="epoch cap per trial (default: run's own, 10)")
    ap.add_argument("--ensemble", type=int, default=None, metavar="K", help="also export and test the top K trials averaged")
    ap.add_argument("--no-record", action="store_true")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory() as folder:
        storage = f"sqlite:///{folder}/accuracy.db"
        run = ["run", "--data", args.data, "--trials", "10000", "--timeout", str(args.budget), "--storage", storage]
        for flag, value in (("--image-size", args.image_size), ("--space", args.space), ("--epochs", args.epochs)):
            if value:
                run += [flag, str(value)]
        if args.ensemble:
            run += ["--keep-top", str(max(args.ensemble, 3))]
        start = time.perf_counter()
        lungsearch(*run)
        search_seconds = time.perf_counter() - start
        import optuna

        import search

        study = search.load_study(search.open_storage(storage, heartbeat=None), None)
        finished = search.count_finished(study)
        model = os.path.join(folder, "best.keras")
        lungsearch("best", "--storage", storage, "--export", model, "--out", folder, "--ensemble", "1")  # the pick alone
        with open(os.path.join(folder, "evaluation.json")) as fh:
            evaluation = json.load(fh)
        completed = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))
        ensemble, not_made = None, None
        if args.ensemble:
            out = os.path.join(folder, "ensemble")
            try:  # a search too short for K completed trials still records its pick
                lungsearch("best", "--storage", storage, "--export", os.path.join(out, "ensemble.keras"), "--out", out,
                           "--ensemble", str(args.ensemble))
            except LungsearchFailed as exc:
                not_made = exc.error
            else:
                with open(os.path.join(out, "evaluation.json")) as fh:
                    ensemble = json.load(fh)
                with open(os.path.join(out, "ensemble.json")) as fh:  # the model's metadata names its members
                    ensemble["members"] = [t["trial"] for t in json.load(fh).get("ensemble", [])]
    metrics = evaluation["test"]["metrics"]
    test = {k: metrics[k] for k in METRICS if k in metrics}
    from bench.results import load, record

    hand = hand_cnn(load(), args.data)
    hand_of = {"accuracy": hand.get("accuracy_median"), "roc_auc": hand.get("auc_median")}
    chest = os.path.basename(os.path.normpath(args.data)) == "chest_xray"  # Kermany's figures are for chest_xray only
    print(f"search {search_seconds:.0f} s, {finished} finished trials ({completed} completed); test metrics (95% CI) vs Kermany et al. / hand CNN (median of seeds):")
    for k, m in test.items():
        lo, hi = m["ci95"]
        mine = "-" if hand_of.get(k) is None else f"{hand_of[k]:.3f}"
        kermany = f"   Kermany {KERMANY.get(k, '-')}" if chest else ""
        print(f"  {k:<12} {m['value']:.3f} [{lo:.3f}, {hi:.3f}]{kermany}   hand CNN {mine}")
    if chest:
        print(f"Kermany: {KERMANY_SOURCE}")
    print(f"hand CNN: {hand['source']}, {hand['seeds']} seeds, best seed's AUC {hand['auc_best']:.3f}" if hand["measured"]
          else f"hand CNN: not measured ({hand['why']})")
    if ensemble:
        ens = {k: ensemble["test"]["metrics"][k] for k in METRICS if k in ensemble["test"]["metrics"]}
        print(f"top {args.ensemble} averaged: " + ", ".join(f"{k} {m['value']:.3f} [{m['ci95'][0]:.3f}, {m['ci95'][1]:.3f}]"
                                                            for k, m in ens.items()))
    elif not_made:
        print(f"top {args.ensemble} averaged: not made ({not_made})")
    figures = {"reduced": args.budget < 1800, "data": args.data, "space": args.space or "cnn", "epochs": args.epochs,
               "image_size": args.image_size, "budget_seconds": args.budget,
               "search_seconds": round(search_seconds, 1), "trials_finished": finished, "trials_completed": completed, "pick": evaluation.get("trial"),
               "decision": evaluation.get("decision"), "test": test,
               "test_accuracy": test["accuracy"]["value"], "test_auc": test.get("roc_auc", {}).get("value"),
               "goal_met": test["accuracy"]["value"] >= 0.90 and (test.get("roc_auc", {}).get("value") or 0) >= 0.97,
               **({"kermany": {"source": KERMANY_SOURCE, **KERMANY}} if chest else {}), "hand_cnn": hand}
    if ensemble:
        figures["ensemble"] = {"k": args.ensemble, "trials": ensemble["members"], "test": ens, "test_accuracy": ens["accuracy"]["value"],
                               "test_auc": ens.get("roc_auc", {}).get("value")}
    elif not_made:
        figures["ensemble"] = {"k": args.ensemble, "made": False, "why": not_made}
    if not args.no_record:
        record(variant_key(args.space, args.image_size, args.data), figures)
    return figures


if __name__ == "__main__":
    main()
