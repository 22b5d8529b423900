"""Refine against one validation split: what `best` hands over with and without out-of-fold selection, in one budget.

    python -m bench.refine                                          # chest_xray, covid19, covid_normal; seeds 0-2; 30 minutes each
    python -m bench.refine --sets covid19 --seeds 0                 # one run at full settings: added to refine
    python -m bench.refine --sets covid19 --seeds 0 --budget 600     # reduced: recorded under refine_reduced
    python -m bench.refine --table                                   # the recorded tables, printed from the record

Per data set and seed, through the real executable, in one ``--budget`` of
seconds: ``run --space efficientnet-lite0 --timeout BUDGET --refine``, what
a user runs (the search stops at run's share of it, a trial still training
then included, and refine has the rest; search and refine seconds are split
at the search's last trial's end); with another ``--refine-share``,
``--top`` or ``--folds`` than run's, ``run`` for ``(1 - --refine-share)``
of it, then ``refine`` for what is left (recorded as ``form``; runs before
2026-12-07 all took this form).  Refine stops starting fold fits at its
``--timeout``; the overshoot is recorded.  Then,
once each, ``best --export`` three ways:

- ``top3``: ``--refined off``, the 3 best trials by validation AUC averaged
  (today's default), thresholded on the validation split;
- ``bag``: the finalist with the highest OOF AUC, its fold models averaged,
  thresholded on OOF predictions;
- ``select``: ensemble selection over the finalists on OOF AUC;
- ``bag-uncalibrated``: the bag without fold calibration (``--fold-calibration
  off``), the default it replaced, compared with the bag on the same images;
- ``average``: the 3 refined finalists of highest validation AUC, all their
  fold models averaged (``--refined average``).

Recorded for each: test AUC, accuracy and balanced accuracy with CIs, and
paired bootstraps of the test AUC difference (bag - top3, select - top3,
select - bag, bag - bag-uncalibrated) over the same test images; and, from
2026-12-07, under ``test``, the test labels, class names and each export's
test probabilities (exactly), which :func:`paired_from_record` makes the paired
tests again from.  And per finalist: validation AUC,
OOF AUC, OOF log-loss and the test AUC of its bagged fold models, for the
Spearman correlations of each selection signal with test AUC; and, for the
bag, each threshold rule chosen on its OOF predictions, scored once on test
(the confirmation of a rule chosen on OOF figures).  The test split
is read only here, after every choice is made.  Results go under key
``refine`` (``refine_reduced`` where a setting is below its default: budget,
epochs, top, folds) after every export; runs of some sets or seeds add to
what is recorded with the same settings, each run with its command and date.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time

import numpy as np

from bench.harness import data_folder, lungsearch, paired_again, record_probs, test_probs, test_record

SPACE = "efficientnet-lite0"
SETS = ("chest_xray", "covid19", "covid_normal")
RULES = ("top3", "bag", "select", "bag-uncalibrated", "average")
FLAGS = {"top3": ["--refined", "off"], "bag": ["--refined", "bag"], "select": ["--refined", "select"],
         "bag-uncalibrated": ["--refined", "bag", "--fold-calibration", "off"], "average": ["--refined", "average"]}


def finalist_test_auc(study, folder: str, y: np.ndarray, class_names) -> dict:
    """Each refined finalist's bagged fold models scored on test: what each selection signal should have predicted."""
    import keras

    from lungsearch import data as data_mod
    from lungsearch import refine
    from lungsearch.evaluate import positive_class, roc_auc

    record = refine.load(study) or {}
    folder_models = study.user_attrs.get("artifacts")
    config = study.user_attrs.get("config") or {}
    out = {}
    test = None
    for key in (record.get("results") or {}):
        paths = [os.path.join(folder_models, study.user_attrs[refine.unit_key(int(key), k)]["model"]) for k in range(record["folds"])]
        models = [keras.models.load_model(p, compile=False) for p in paths]
        if test is None:
            shape = models[0].input_shape
            test = data_mod.load_test(folder, image_size=int(shape[1]), color_mode="grayscale" if shape[-1] == 1 else "rgb",
                                      class_names=tuple(class_names), seed=config.get("seed", 0),
                                      group_pattern=study.user_attrs.get("group_pattern"), cache_dir=config.get("cache_dir"))
        probs = np.mean([np.asarray(m.predict(test.x, batch_size=128, verbose=0)) for m in models], axis=0)
        trial = study.trials[int(key)]
        out[key] = {"val_auc": trial.value, "oof_auc": record["results"][key]["oof_auc"],
                    "oof_log_loss": record["results"][key]["oof_log_loss"], "fold_auc": record["results"][key].get("fold_auc"),
                    "oof_auc_calibrated": record["results"][key].get("oof_auc_calibrated"),
                    "test_auc_bagged": round(roc_auc(test.y, probs, positive_class(class_names)), 5)}
        keras.backend.clear_session(free_memory=True)
    return out


def as_user(args) -> bool:
    """Whether the run can be ``run --refine`` itself: its share and refine's defaults (5 finalists, 5 folds)."""
    from lungsearch import refine
    from lungsearch.commands.run import REFINE_SHARE

    return args.refine_share == REFINE_SHARE and (args.top, args.folds) == (refine.DEFAULT_TOP, refine.DEFAULT_FOLDS)


def one_run(name: str, seed: int, work: str, args, entry: dict, save) -> None:
    import datetime

    import optuna

    folder = data_folder(name, work)
    storage = f"sqlite:///{work}/{name}-{seed}.db"
    cache = os.path.join(work, "cache")
    search_budget = int(args.budget * (1.0 - args.refine_share))
    common = ("--data", folder, "--space", SPACE, "--trials", "1000", "--epochs", str(args.epochs), "--seed", str(seed),
              "--cache-dir", cache, "--storage", storage, "--study", "s", "--quiet")
    if as_user(args):  # what a user runs: the search stops at run's share of --timeout (its late trial too), refine has the rest
        began, start = datetime.datetime.now(), time.perf_counter()
        lungsearch("run", *common, "--timeout", str(args.budget), "--refine")
        total = time.perf_counter() - start
        study = optuna.load_study(study_name="s", storage=storage)
        ended = max((t.datetime_complete for t in study.trials if t.datetime_complete), default=began)
        search_seconds = min(total, max(0.0, (ended - began).total_seconds()))  # to the search's last trial's end
        refine_seconds = total - search_seconds
        entry["form"] = "run --refine"
    else:  # another split or other --top/--folds than run --refine's: run, then refine with what is left
        start = time.perf_counter()
        lungsearch("run", *common, "--timeout", str(search_budget))
        search_seconds = time.perf_counter() - start
        left = max(1.0, args.budget - search_seconds)
        start = time.perf_counter()
        lungsearch("refine", "--storage", storage, "--study", "s", "--top", str(args.top), "--folds", str(args.folds), "--timeout", str(left))
        refine_seconds = time.perf_counter() - start
        study = optuna.load_study(study_name="s", storage=storage)
        entry["form"] = "run, then refine"
    done = [t for t in study.trials if t.state.name == "COMPLETE"]
    record = study.user_attrs.get("refine") or {}
    entry["oof_choice"] = oof_choice(study, seed=seed)  # decided before the test split is read
    entry.update({"search_seconds": round(search_seconds, 1), "refine_seconds": round(refine_seconds, 1),
                  "total_seconds": round(search_seconds + refine_seconds, 1), "over_budget_seconds": round(max(0.0, search_seconds + refine_seconds - args.budget), 1),
                  "trials": len(study.trials), "complete": len(done), "finalists_refined": len(record.get("results") or {}),
                  "finalists": len(record.get("finalists") or [])})
    save()
    export_all(name, seed, work, folder, storage, study, entry, save)


def export_all(name: str, seed: int, work: str, folder: str, storage: str, study, entry: dict, save) -> None:
    """``best --export`` each way (:data:`RULES`) from the refined study, the paired tests and the threshold confirmation."""
    from lungsearch.evaluate import positive_class

    record = study.user_attrs.get("refine") or {}
    entry["exports"], entry["paired"] = {}, {}
    entry.pop("test", None)  # a run made again (--again) records its own
    probs = {}
    y = class_names = None
    for rule in RULES:
        if rule != "top3" and not record.get("results"):
            continue
        out = os.path.join(work, f"{name}-{seed}-{rule}")
        flags = FLAGS[rule]
        lungsearch("best", "--storage", storage, "--study", "s", "--export", os.path.join(out, "model.keras"), "--out", out, *flags)
        with open(os.path.join(out, "evaluation.json")) as fh:
            m = json.load(fh)["test"]["metrics"]
        with open(os.path.join(out, "model.json")) as fh:
            meta = json.load(fh)
        y, probs[rule], class_names = test_probs(os.path.join(out, "model.keras"), folder, study)
        record_probs(entry.setdefault("test", test_record(y, class_names)), rule, probs[rule])
        entry["exports"][rule] = {
            "test": {k: {"value": m[k]["value"], "ci95": m[k]["ci95"]} for k in ("roc_auc", "accuracy", "balanced_accuracy",
                                                                                 "sensitivity", "specificity") if k in m},
            "threshold": meta["decision"].get("threshold"), "chosen_on": meta["decision"].get("chosen_on"),
            "members": meta.get("refined", {}).get("weights") or [e["trial"] for e in meta.get("ensemble", [])] or [meta["trial"]],
            "oof_auc": (meta.get("out_of_fold") or {}).get("oof_auc"),
        }
        save()
    positive = positive_class(class_names) if class_names else None
    entry["paired"] = paired_tests(y, probs, class_names, seed)
    if record.get("results"):
        entry["finalist_figures"] = finalist_test_auc(study, folder, y, class_names)
    if positive is not None:
        from lungsearch.export import refined

        for rule, calibration in (("bag", refined.DEFAULT_CALIBRATION), ("bag-uncalibrated", "off")):
            if rule in probs:
                mix = refined.plan(study, "bag", calibration)  # the OOF predictions that export's threshold was chosen on
                entry.setdefault("threshold_confirm_by_export", {})[rule] = threshold_confirm(mix.y, mix.oof, y, probs[rule], positive)
        entry["threshold_confirm"] = (entry.get("threshold_confirm_by_export") or {}).get("bag")  # None: refine refitted none
    save()


PAIRS = (("bag", "top3"), ("select", "top3"), ("select", "bag"), ("bag", "bag-uncalibrated"), ("average", "bag"),
         ("average", "top3"))


def paired_tests(y, probs: dict, class_names, seed: int) -> dict:
    """Each pair of :data:`PAIRS` whose both exports were made: a paired bootstrap of their test AUC difference
    over the same test images (``lungsearch.evaluate.compare``), keyed ``a-b``."""
    from lungsearch.evaluate import positive_class
    from lungsearch.evaluate.compare import paired_bootstrap_auc

    positive = positive_class(class_names) if class_names else None
    return {f"{a}-{b}": paired_bootstrap_auc(y, probs[a], probs[b], positive=positive, seed=seed)
            for a, b in PAIRS if a in probs and b in probs}


def paired_from_record(entry: dict, seed: int) -> dict:
    """The paired tests of one recorded run made again from what it recorded (``test``: the test labels, class names
    and each export's test probabilities, exactly), so its ``paired`` figures can be checked against their record.
    Runs recorded before 2026-12-07 18:00 UTC hold no ``test`` and give {}."""
    return paired_again(entry.get("test"), paired_tests, seed)


def threshold_confirm(y: np.ndarray, oof: np.ndarray, y_test: np.ndarray, test_probs: np.ndarray, positive: int) -> dict:
    """Each threshold rule chosen on an export's out-of-fold predictions ``oof`` of every training image (labels ``y``), then
    scored once on test.

    The choice among the rules is made on OOF figures alone (``oof_choice``,
    here or on another data set); this is the confirmation the rule asks for:
    the test split read after the rules have chosen, never to choose between them.
    """
    from lungsearch.evaluate import choose_threshold, decide, point_metrics

    out = {}
    names = [f"class{i}" for i in range(test_probs.shape[1])]
    for rule in ("youden", "youden-mid", "half", "temperature"):
        d = choose_threshold(y == positive, oof[:, positive], rule=rule, prevalence=float(np.mean(y == positive)))
        m = point_metrics(y_test, test_probs, decide(test_probs, d["threshold"], positive), names, positive)
        out[rule] = {"threshold": round(float(d["threshold"]), 6),
                     **{k: round(m[k], 4) for k in ("accuracy", "balanced_accuracy", "sensitivity", "specificity")}}
    return out


def fitted_on(raw: dict, fit: np.ndarray, y: np.ndarray, held: list, positive, calibration: str) -> dict:
    """Each finalist's OOF probabilities, with each fold model Platt-calibrated on its images among ``fit`` only
    (``calibration`` ``platt``, two classes), as `best` would mix them; else as stored."""
    from lungsearch.evaluate.calibration import calibrate

    if calibration != "platt" or positive is None:
        return raw
    inside = np.zeros(len(y), dtype=bool)
    inside[fit] = True
    return {n: calibrate(probs, y, held, positive, fit=inside)[0] for n, probs in raw.items()}


def oof_choice(study, *, repeats: int = 20, seed: int = 0, calibration: str | None = None) -> dict | None:
    """Which export rule and threshold rule to make the default, decided on OOF predictions alone (never the test split).

    Cross-fitting: the training images are split in two halves (stratified,
    ``repeats`` times); each rule chooses on one half's OOF predictions and is
    scored on the other's, both ways round.  Export rules: ``bag`` (the
    finalist of highest OOF AUC), ``select`` (ensemble selection), ``average``
    (the 3 finalists of highest validation AUC, their fold models averaged:
    ``best --refined average``; recorded as ``top3`` before) and ``best_val`` (the finalist of highest
    validation AUC).  Threshold rules, on the bag's finalist: the threshold each
    chooses on one half, accuracy and balanced accuracy on the other.  The
    fold models are calibrated as `best` would (``calibration``, default
    today's), each on its images in the choosing half only.
    """
    from lungsearch import refine
    from lungsearch.evaluate import choose_threshold, decide, positive_class, roc_auc
    from lungsearch.export.refined import DEFAULT_CALIBRATION, caruana

    calibration = calibration or DEFAULT_CALIBRATION

    record = refine.load(study) or {}
    results = record.get("results") or {}
    if len(results) < 2:  # no rule to choose between; fold calibration is still decided for one finalist of two classes
        if results and positive_class(tuple(study.user_attrs.get("class_names") or ())) is not None:
            return {"finalists": sorted(int(n) for n in results), "fold_calibration": calibration_choice(study, repeats=repeats, seed=seed)}
        return None
    y = np.asarray(record["labels"])
    held = [np.asarray(h) for h in record["held_out"]]
    raw = {int(n): refine.oof_of(study, int(n), len(y), [(None, h) for h in held]) for n in results}
    class_names = tuple(study.user_attrs.get("class_names") or ())
    positive = positive_class(class_names)
    value = {t.number: t.value for t in study.trials}
    by_val = sorted(raw, key=lambda n: (-value[n], n))

    def auc(idx, probs):
        return roc_auc(y[idx], probs[idx], positive)

    rng = np.random.default_rng(seed)
    scores = {r: [] for r in ("bag", "select", "average", "best_val")}
    thresholds = {r: {"accuracy": [], "balanced_accuracy": []} for r in ("youden", "youden-mid", "half", "temperature")} if positive is not None else {}
    for _ in range(repeats):
        half = np.zeros(len(y), dtype=bool)
        for c in np.unique(y):
            members = rng.permutation(np.flatnonzero(y == c))
            half[members[: len(members) // 2]] = True
        for fit, score in ((np.flatnonzero(half), np.flatnonzero(~half)), (np.flatnonzero(~half), np.flatnonzero(half))):
            oofs = fitted_on(raw, fit, y, held, positive, calibration)
            bag = max(oofs, key=lambda n: (auc(fit, oofs[n]), -n))
            scores["bag"].append(auc(score, oofs[bag]))
            counts = caruana({n: p[fit] for n, p in oofs.items()}, y[fit], lambda yy, pp: roc_auc(yy, pp, positive))
            mix = sum(oofs[n] * c for n, c in counts.items()) / sum(counts.values())
            scores["select"].append(auc(score, mix))
            scores["average"].append(auc(score, sum(oofs[n] for n in by_val[:3]) / len(by_val[:3])))  # best --refined average
            scores["best_val"].append(auc(score, oofs[by_val[0]]))
            for rule in thresholds:
                p = oofs[bag][:, positive]
                d = choose_threshold(y[fit] == positive, p[fit], rule=rule, prevalence=float(np.mean(y[fit] == positive)))
                pred = decide(oofs[bag][score], d["threshold"], positive)
                truth = y[score]
                thresholds[rule]["accuracy"].append(float(np.mean(pred == truth)))
                recalls = [np.mean(pred[truth == c] == c) for c in np.unique(truth)]
                thresholds[rule]["balanced_accuracy"].append(float(np.mean(recalls)))
    out = {"repeats": repeats, "finalists": sorted(raw), "export_rules": {}, "threshold_rules": {},
           "fold_models": calibration if positive is not None else "off"}
    for rule, values in scores.items():
        out["export_rules"][rule] = {"mean_auc": round(float(np.mean(values)), 5), "sd": round(float(np.std(values)), 5)}
    out["export_choice"] = max(out["export_rules"], key=lambda r: out["export_rules"][r]["mean_auc"])
    for rule, values in thresholds.items():
        out["threshold_rules"][rule] = {k: round(float(np.mean(v)), 4) for k, v in values.items()}
    if thresholds:
        out["threshold_choice"] = max(out["threshold_rules"], key=lambda r: out["threshold_rules"][r]["balanced_accuracy"])
        out["fold_calibration"] = calibration_choice(study, repeats=repeats, seed=seed)
    return out


def calibration_choice(study, *, repeats: int = 20, seed: int = 0) -> dict:
    """Fold calibration on or off, decided on OOF predictions alone, per refined finalist of a two-class study.

    Cross-fitting as :func:`oof_choice`: the training images are split in two
    halves (stratified, ``repeats`` times); on one half each fold model's Platt
    calibration is fitted (on that fold's images in the half) and the
    threshold chosen (Youden's J) on the pooled predictions; the other half
    scores the pooled AUC, accuracy and balanced accuracy, both ways round.
    """
    from lungsearch import refine
    from lungsearch.evaluate import choose_threshold, decide, positive_class, roc_auc
    from lungsearch.evaluate.calibration import calibrate

    record = refine.load(study) or {}
    y = np.asarray(record["labels"])
    held = [np.asarray(h) for h in record["held_out"]]
    positive = positive_class(tuple(study.user_attrs.get("class_names") or ()))
    rng = np.random.default_rng(seed)
    out = {}
    for n in record.get("results") or {}:
        raw = refine.oof_of(study, int(n), len(y), [(None, h) for h in held])
        scores = {"off": [], "platt": []}
        for _ in range(repeats):
            half = np.zeros(len(y), dtype=bool)
            for c in np.unique(y):
                members = rng.permutation(np.flatnonzero(y == c))
                half[members[: len(members) // 2]] = True
            for fit in (half, ~half):
                cal, _ = calibrate(raw, y, held, positive, fit=fit)
                for name, probs in (("off", raw), ("platt", cal)):
                    d = choose_threshold(y[fit] == positive, probs[fit, positive])
                    pred, truth = decide(probs[~fit], d["threshold"], positive), y[~fit]
                    scores[name].append((roc_auc(truth, probs[~fit], positive), float(np.mean(pred == truth)),
                                         float(np.mean([np.mean(pred[truth == c] == c) for c in np.unique(truth)]))))
        out[n] = {name: dict(zip(("auc", "accuracy", "balanced_accuracy"), (round(float(v), 4) for v in np.mean(values, axis=0))))
                  for name, values in scores.items()}
    if out:
        wins = sum(f["platt"]["balanced_accuracy"] > f["off"]["balanced_accuracy"] for f in out.values())
        out = {"finalists": out, "platt_better_in": wins, "choice": "platt" if wins * 2 > len(out) else "off"}
    return out


def spearman(entries: list[dict]) -> dict:
    """Spearman's rho of each selection signal with the finalists' bagged test AUC, one rho per run (ranks within a run).

    Signals: validation AUC, pooled OOF AUC, OOF log-loss (lower ranks higher),
    the mean of each fold's own AUC (which ranks images within one fold
    model only, where pooling ranks them across models of different scales),
    and the pooled OOF AUC with each fold model calibrated, what ``best`` ranks
    finalists by (kept from seed 2's runs on).  A run whose finalists all tie on
    test AUC or on the signal has no rho and is left out."""
    import warnings

    from scipy.stats import ConstantInputWarning, spearmanr

    out = {}
    for signal, sign in (("val_auc", 1), ("oof_auc", 1), ("oof_log_loss", -1), ("fold_auc_mean", 1), ("oof_auc_calibrated", 1)):
        rhos = []
        for e in entries:
            f = [dict(x, fold_auc_mean=float(np.mean(x["fold_auc"])) if x.get("fold_auc") else None)
                 for x in (e.get("finalist_figures") or {}).values()]
            if len(f) >= 3 and all(x.get(signal) is not None for x in f):  # runs recorded before a signal was kept lack it
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", ConstantInputWarning)
                    rho = spearmanr([sign * x[signal] for x in f], [x["test_auc_bagged"] for x in f]).statistic
                if np.isfinite(rho):
                    rhos.append(float(rho))
        out[signal] = {"median": round(float(np.median(rhos)), 3) if rhos else None, "runs": len(rhos), "each": [round(r, 3) for r in rhos]}
    return out


def table(entry: dict) -> str:
    """The recorded figures as Markdown tables, typed from the record."""
    lines = ["| set | seed | search s / refine s | trials | refined | top3 test AUC [CI], acc | bag | select | bag - top3 [CI], p | "
             "select - top3 [CI], p | bag uncalibrated | bag - uncalibrated [CI], p | average | average - bag [CI], p |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]

    def cell(e, rule):
        x = e.get("exports", {}).get(rule)
        if not x:
            return "-"
        auc = x["test"]["roc_auc"]
        return f"{auc['value']:.3f} [{auc['ci95'][0]:.3f}, {auc['ci95'][1]:.3f}], {x['test']['accuracy']['value']:.3f}"

    def diff(e, key):
        p = e.get("paired", {}).get(key)
        return f"{p['difference']:+.4f} [{p['ci95'][0]:+.4f}, {p['ci95'][1]:+.4f}], p {p['p']:.3f}" if p else "-"

    runs = []
    for name, seeds in entry.get("sets", {}).items():
        for seed, e in seeds.items():
            runs.append(e)
            lines.append(f"| {name} | {seed} | {e.get('search_seconds')} / {e.get('refine_seconds')} | {e.get('trials')} | "
                         f"{e.get('finalists_refined')}/{e.get('finalists')} | {cell(e, 'top3')} | {cell(e, 'bag')} | {cell(e, 'select')} | "
                         f"{diff(e, 'bag-top3')} | {diff(e, 'select-top3')} | {cell(e, 'bag-uncalibrated')} | {diff(e, 'bag-bag-uncalibrated')} | "
                         f"{cell(e, 'average')} | {diff(e, 'average-bag')} |")
    choices = [(name, seed, e["oof_choice"]) for name, seeds in entry.get("sets", {}).items() for seed, e in seeds.items()
               if (e.get("oof_choice") or {}).get("export_rules")]
    calibrations = [(name, seed, n, f) for name, seeds in entry.get("sets", {}).items() for seed, e in seeds.items()
                    for n, f in (dig_calibration(e) or {}).items()]
    if calibrations:
        lines += ["", "Fold calibration chosen on OOF predictions alone (cross-fitted halves, 20 times: Platt fitted and the "
                      "threshold chosen on one half, scored on the other): pooled AUC, accuracy and balanced accuracy.", "",
                  "| set | seed | finalist | off: AUC, acc, bal. acc | platt: AUC, acc, bal. acc |", "|---|---|---|---|---|"]
        for name, seed, n, f in calibrations:
            lines.append(f"| {name} | {seed} | #{n} | " + " | ".join(
                f"{f[k]['auc']:.4f}, {f[k]['accuracy']:.4f}, {f[k]['balanced_accuracy']:.4f}" for k in ("off", "platt")) + " |")
    if choices:
        lines += ["", "Chosen on OOF predictions alone (two halves of the training images, each rule choosing on one and scored on "
                      "the other, both ways, 20 times): mean AUC of each export rule; accuracy / balanced accuracy of each threshold "
                      "rule on the bag's finalist.", "",
                  "| set | seed | bag | select | average (3 best by validation) | best_val | chosen | youden | youden-mid | half | temperature | chosen |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for name, seed, c in choices:
            ex, th = c["export_rules"], c.get("threshold_rules") or {}
            ex = {**ex, "average": ex.get("average") or ex.get("top3")}  # named top3 in runs recorded before 2026-12-06 21:00
            cells = [f"{ex[r]['mean_auc']:.4f}" for r in ("bag", "select", "average", "best_val")]
            tcells = [f"{th[r]['accuracy']:.3f} / {th[r]['balanced_accuracy']:.3f}" if r in th else "-"
                      for r in ("youden", "youden-mid", "half", "temperature")]
            lines.append(f"| {name} | {seed} | {' | '.join(cells)} | {c['export_choice']} | {' | '.join(tcells)} | {c.get('threshold_choice', '-')} |")
    confirms = [(name, f"{seed} {export}", c) for name, seeds in entry.get("sets", {}).items() for seed, e in seeds.items()
                for export, c in (e.get("threshold_confirm_by_export") or {"bag": e.get("threshold_confirm")}).items() if c]
    if confirms:
        lines += ["", "Confirmed once on test: each threshold rule chosen on the export's OOF predictions of every training image, "
                      "the export's test accuracy / balanced accuracy (sensitivity, specificity) at it.", "",
                  "| set | seed, export | youden | youden-mid | half | temperature |", "|---|---|---|---|---|---|"]
        for name, seed, c in confirms:
            lines.append(f"| {name} | {seed} | " + " | ".join(
                f"{c[r]['accuracy']:.3f} / {c[r]['balanced_accuracy']:.3f} ({c[r]['sensitivity']:.3f}, {c[r]['specificity']:.3f}) "
                f"at {c[r]['threshold']:.4f}" if r in c else "-" for r in ("youden", "youden-mid", "half", "temperature")) + " |")
    rho = spearman(runs)
    lines += ["", "| signal | Spearman with the finalists' test AUC, median over runs | runs | each |", "|---|---|---|---|"]
    for signal, r in rho.items():
        lines.append(f"| {signal} | {r['median']} | {r['runs']} | {r['each']} |")
    return "\n".join(lines)


def dig_calibration(run: dict) -> dict | None:
    """A run's fold-calibration figures per finalist, where its OOF choice recorded them."""
    return (((run.get("oof_choice") or {}).get("fold_calibration")) or {}).get("finalists")


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sets", default=",".join(SETS))
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--budget", type=int, default=1800, help="seconds of search and refine together per run (default 1800)")
    ap.add_argument("--refine-share", type=float, default=0.5, help="share of the budget left to refine (default 0.5)")
    ap.add_argument("--top", type=int, default=5)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--no-record", action="store_true")
    ap.add_argument("--keep", metavar="DIR", help="keep each run's studies and exports under DIR (default: a temporary folder, removed)")
    ap.add_argument("--rescore", metavar="DIR", help="redo only the exports (every rule, today's code) of the recorded runs of --sets "
                                                     "and --seeds whose studies --keep DIR kept; the search and refine figures stay")
    ap.add_argument("--again", action="store_true",
                    help="run --sets and --seeds again where they are recorded (after a change of the code they measure); "
                         "each earlier record stays in the new one's 'earlier' list")
    ap.add_argument("--table", metavar="KEY", nargs="?", const="refine", help="print the recorded tables under KEY and run nothing")
    ap.add_argument("--choose", nargs=3, metavar=("DB", "SET", "SEED"),
                    help="compute only the OOF choice of a refined study's database (kept from a run) into SET/SEED's record")
    args = ap.parse_args(argv)
    from bench.results import below_defaults, load, now, record

    if args.table:
        print(table(load().get(args.table) or {}))
        return {}
    # a run at the full settings on some of the sets or seeds adds its runs to the full key: 9 runs take ~5 hours
    reduced = below_defaults(ap, args, "budget", "epochs", "top", "folds")
    key = "refine_reduced" if reduced else "refine"
    if args.choose:
        out = choose_into(key, args.choose[0], args.choose[1], int(args.choose[2]))
        print(json.dumps(out, indent=1))
        return out
    old = (load().get(key) or {}) if not args.no_record else {}
    settings = {"budget": args.budget, "refine_share": args.refine_share, "top": args.top, "folds": args.folds, "epochs": args.epochs}
    results = old.get("sets", {}) if {k: old.get(k) for k in settings} == settings else {}

    def save():
        if not args.no_record:
            record(key, {"reduced": reduced, "space": SPACE, **settings, "sets": results,
                         "spearman": spearman([e for s in results.values() for e in s.values()])})

    if args.rescore:
        return rescore(args, argv, results, save)
    for seed in [int(s) for s in args.seeds.split(",") if s]:
        for name in [s for s in args.sets.split(",") if s]:
            done = results.get(name, {}).get(str(seed)) or {}
            if "paired" in done and done.get("exports") and not args.again:
                print(f"  {name} seed {seed}: recorded already", flush=True)
                continue
            if args.again and "paired" in done:  # a finished run of older code: kept, not overwritten
                earlier = done.pop("earlier", [])
                results[name][str(seed)] = {"earlier": [*earlier, done]}
            entry = results.setdefault(name, {}).setdefault(str(seed), {})
            entry.update({"command": "python -m bench.refine " + " ".join(argv if argv is not None else sys.argv[1:]),
                          "date": now()})  # each run says which command and day made it: runs accumulate over sessions
            if args.keep:  # the studies and exports stay for a look afterwards (fold models, OOF predictions)
                work = os.path.join(args.keep, f"refine-{name}-{seed}")
                os.makedirs(work, exist_ok=True)
                one_run(name, seed, work, args, entry, save)
            else:
                with tempfile.TemporaryDirectory(prefix=f"refine-{name}-{seed}-") as work:
                    one_run(name, seed, work, args, entry, save)
            ex = entry.get("exports", {})
            print(f"  {name} seed {seed}: " + ", ".join(f"{r} {ex[r]['test']['roc_auc']['value']:.3f}" for r in ex)
                  + f"; {entry.get('paired')}", flush=True)
    print(table({"sets": results}))
    return results


def rescore(args, argv, results: dict, save) -> dict:
    """``--rescore DIR``: the exports of kept runs done again with today's code (a new export rule, a new default)."""
    import optuna

    from bench.results import now

    for seed in [int(s) for s in args.seeds.split(",") if s]:
        for name in [s for s in args.sets.split(",") if s]:
            work = os.path.join(args.rescore, f"refine-{name}-{seed}")
            storage = f"sqlite:///{work}/{name}-{seed}.db"
            entry = results.get(name, {}).get(str(seed))
            if entry is None or not os.path.isfile(os.path.join(work, f"{name}-{seed}.db")):
                print(f"  {name} seed {seed}: no recorded run with a kept study under {args.rescore}; nothing rescored", flush=True)
                continue
            study = optuna.load_study(study_name="s", storage=storage)
            entry["oof_choice"] = oof_choice(study, seed=seed)
            entry["rescored"] = {"command": "python -m bench.refine " + " ".join(argv if argv is not None else sys.argv[1:]),
                                 "date": now(), "why": "the exports done again from the kept study with today's code"}
            for rule in RULES:  # fresh folders: best refuses nothing, and no old file is mistaken for a new one
                shutil.rmtree(os.path.join(work, f"{name}-{seed}-{rule}"), ignore_errors=True)
            export_all(name, seed, work, data_folder(name, work), storage, study, entry, save)
            save()
    print(table({"sets": results}))
    return results


def choose_into(key: str, db: str, name: str, seed: int) -> dict:
    """``--choose``: the OOF choice of a kept study database, recorded beside its run."""
    import optuna

    from bench.results import load, record

    study = optuna.load_study(study_name="s", storage=f"sqlite:///{db}")
    entry = load().get(key) or {}
    run = entry.setdefault("sets", {}).setdefault(name, {}).setdefault(str(seed), {})
    run["oof_choice"] = oof_choice(study, seed=seed)
    record(key, entry)
    return run["oof_choice"]


if __name__ == "__main__":
    main()
