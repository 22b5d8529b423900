"""Does a validation signal predict the test figures?  Every completed trial's model, judged on test.

    python -m bench.selection                                   # chest_xray and covid19, 2 seeds, 30-minute searches
    python -m bench.selection --sets covid19 --seeds 1 --budget 60 --epochs 3 --no-record   # a smoke run
    python -m bench.selection --sets chest_xray --space efficientnet-lite0 --epochs 5 --first-seed 1 --seeds 1 --budget 1500

Per data set and seed, one search through the real executable (``lungsearch
run --trials 10000 --timeout BUDGET --seed S --keep-top 100000``, so every
completed trial's model is kept), then, in this process, for every completed
trial: its kept model predicts the study's validation split (decoded as
``best`` does), a corrupted copy of it and the test split.  Candidate
selection signals, all on validation:

- ``val_auc`` (the search's objective), ``val_log_loss``, ``val_brier``
  (multi-class Brier: the sum over classes of the squared error, averaged),
  ``val_balanced_accuracy`` (at Youden's threshold for two classes, argmax
  otherwise), ``val_auc_tiebreak`` (AUC rounded to 3 decimals, ties broken
  by the lower log-loss);
- ``corrupt_auc``, ``corrupt_log_loss``: the same on validation with each
  image's brightness x0.6-1.4, contrast x0.6-1.4, gamma 0.6-1.6 and a JPEG
  re-encoding at quality 30-70 (fixed seed; in the spirit of MedMNIST-C).

Reported per data set and seed: the Spearman correlation of each signal
(oriented so that higher is better: losses negated) with test AUC and with
test balanced accuracy (at the validation Youden threshold for two classes),
and the test AUC of the trial each signal picks (ties: the earlier trial).
For two-class sets, the decision-threshold rules of issue 14 item 4
(``lungsearch.evaluate.THRESHOLD_RULES``), each chosen on validation and
applied to test, from the same probabilities: per trial and for each
signal's pick; beside them two bench-only candidates (``SHIFT_RULES``):
Youden's J chosen on the corrupted copy of validation, and on validation and
the corrupted copy pooled.  Ensembles (issue 14 item 3): for K = 1, 3, 5 the
K best trials by the objective, their probabilities averaged as ``best
--export --ensemble K`` does, with test AUC and every threshold rule.  Aggregate: the median of each correlation over (set, seed)
and how often each signal's pick has the best test AUC among the signals' picks.

The bench reads the test split to judge the signals; ``run`` and ``best``
never select on it.  ``--space`` searches another built-in space (default
``run``'s, cnn).  ``--name N`` records under ``selection@N`` instead, so a
run does not replace another's record.  Key ``selection`` (``selection_reduced`` below 1800 s, below
2 seeds, with ``--epochs`` or another space), written after every (set, seed),
so a run cut short keeps what it finished.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tempfile
import time

import numpy as np

SETS = ("chest_xray", "covid19", "covid_normal")
DEFAULT_SETS = ("chest_xray", "covid19")
CORRUPT_SEED = 1234  # the corrupted copy of validation is the same for every trial and every run
SIGNALS = ("val_auc", "val_log_loss", "val_brier", "val_balanced_accuracy", "val_auc_tiebreak", "corrupt_auc", "corrupt_log_loss")
LOWER_IS_BETTER = {"val_log_loss", "val_brier", "corrupt_log_loss"}
TARGETS = ("test_auc", "test_balanced_accuracy")


# --------------------------------------------------------------------------- pure parts (tests/bench/test_selection.py)


def corrupt(x: np.ndarray, seed: int = CORRUPT_SEED) -> np.ndarray:
    """A corrupted copy of uint8 images ``x`` (N, H, W, C): per image a random brightness factor (0.6-1.4),
    contrast factor about the image's mean (0.6-1.4), gamma (0.6-1.6) and JPEG re-encoding (quality 30-70,
    Pillow).  The same ``seed`` gives the same copy."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    out = np.empty_like(x)
    for i, img in enumerate(np.asarray(x)):
        brightness, contrast = rng.uniform(0.6, 1.4), rng.uniform(0.6, 1.4)
        gamma, quality = rng.uniform(0.6, 1.6), int(rng.integers(30, 71))
        f = img.astype(np.float64) / 255.0 * brightness
        f = (f - f.mean()) * contrast + f.mean()
        f = np.clip(f, 0.0, 1.0) ** gamma
        u8 = np.round(f * 255.0).astype(np.uint8)
        pil = Image.fromarray(u8[..., 0] if u8.shape[-1] == 1 else u8)  # L or RGB
        buf = io.BytesIO()
        pil.save(buf, format="JPEG", quality=quality)
        buf.seek(0)
        back = np.asarray(Image.open(buf).convert(pil.mode))
        out[i] = back[..., None] if u8.shape[-1] == 1 else back
    return out


def log_loss(y: np.ndarray, probs: np.ndarray) -> float:
    from sklearn.metrics import log_loss as sk_log_loss

    probs = np.clip(np.asarray(probs, dtype=np.float64), 1e-7, 1.0)
    probs = probs / probs.sum(axis=1, keepdims=True)
    return float(sk_log_loss(np.asarray(y).astype(int), probs, labels=list(range(probs.shape[1]))))


def brier(y: np.ndarray, probs: np.ndarray) -> float:
    """Multi-class Brier score: mean over images of the summed squared error against the one-hot label."""
    probs = np.asarray(probs, dtype=np.float64)
    onehot = np.eye(probs.shape[1])[np.asarray(y).astype(int)]
    return float(np.mean(np.sum((probs - onehot) ** 2, axis=1)))


def balanced_accuracy(y: np.ndarray, probs: np.ndarray, positive: int | None, threshold: float | None) -> float:
    from sklearn.metrics import balanced_accuracy_score

    from lungsearch import evaluate

    return float(balanced_accuracy_score(np.asarray(y).astype(int), evaluate.decide(probs, threshold, positive)))


def youden(y: np.ndarray, probs: np.ndarray, positive: int | None) -> float | None:
    """Today's threshold (Youden's J on these labels), or None for more than two classes."""
    from lungsearch import evaluate

    if positive is None:
        return None
    return evaluate.choose_threshold(np.asarray(y) == positive, np.asarray(probs)[:, positive])["threshold"]


def signals(y_val, p_val, p_corrupt, positive: int | None) -> dict[str, float]:
    """Every candidate signal of one trial, from its validation and corrupted-validation probabilities."""
    from lungsearch import evaluate

    t = youden(y_val, p_val, positive)
    return {
        "val_auc": evaluate.roc_auc(y_val, p_val, positive),
        "val_log_loss": log_loss(y_val, p_val),
        "val_brier": brier(y_val, p_val),
        "val_balanced_accuracy": balanced_accuracy(y_val, p_val, positive, t),
        "corrupt_auc": evaluate.roc_auc(y_val, p_corrupt, positive),
        "corrupt_log_loss": log_loss(y_val, p_corrupt),
    }


def sort_key(row: dict, signal: str) -> tuple:
    """Larger is better; ``val_auc_tiebreak`` is AUC to 3 decimals, then the lower validation log-loss."""
    if signal == "val_auc_tiebreak":
        return (round(row["val_auc"], 3), -row["val_log_loss"])
    value = row[signal]
    return (-value,) if signal in LOWER_IS_BETTER else (value,)


def oriented(rows: list[dict], signal: str) -> np.ndarray:
    """One number per row, larger is better, with the signal's order (ranks for the lexicographic tie-break)."""
    if signal != "val_auc_tiebreak":
        return np.array([sort_key(r, signal)[0] for r in rows], dtype=float)
    from scipy.stats import rankdata

    keys = [sort_key(r, signal) for r in rows]
    order = {k: i for i, k in enumerate(sorted(set(keys)))}  # equal keys share a rank
    return rankdata([order[k] for k in keys])


def spearman_table(rows: list[dict], signals_=SIGNALS, targets=TARGETS) -> dict[str, dict[str, float | None]]:
    """{signal: {target: Spearman rho}}; None where it is undefined (fewer than 3 trials, or a constant column)."""
    from scipy.stats import spearmanr

    table = {}
    for s in signals_:
        x = oriented(rows, s)
        table[s] = {}
        for target in targets:
            y = np.array([r[target] for r in rows], dtype=float)
            ok = np.isfinite(x) & np.isfinite(y)
            if ok.sum() < 3 or np.ptp(x[ok]) == 0 or np.ptp(y[ok]) == 0:
                table[s][target] = None
                continue
            rho = spearmanr(x[ok], y[ok]).statistic
            table[s][target] = None if not np.isfinite(rho) else round(float(rho), 4)
    return table


def pick(rows: list[dict], signal: str) -> dict:
    """The row a signal selects: the largest by :func:`sort_key`; ties: the earlier trial."""
    return max(rows, key=lambda r: (*sort_key(r, signal), -r["trial"]))


def picks(rows: list[dict], signals_=SIGNALS) -> dict[str, dict]:
    """For each signal: the trial it picks and that trial's test figures."""
    out = {}
    for s in signals_:
        r = pick(rows, s)
        out[s] = {"trial": r["trial"], "test_auc": r["test_auc"], "test_balanced_accuracy": r["test_balanced_accuracy"]}
        if "rules" in r:
            out[s]["rules"] = r["rules"]
    return out


SHIFT_RULES = ("youden-corrupt", "youden-pooled")  # bench-only candidates: Youden's J on the corrupted copy / on both


def rule_figures(y_val, p_val, y_test, p_test, positive: int, prevalence: float, p_corrupt=None) -> dict[str, dict]:
    """Each threshold rule chosen on validation, applied unchanged to test: threshold, accuracy, sensitivity,
    specificity and balanced accuracy on test.  With ``p_corrupt`` (the same model on the corrupted copy of
    validation) also ``SHIFT_RULES``: Youden's J chosen on the corrupted copy alone, and on validation and the
    corrupted copy pooled, candidates for a threshold that holds under an acquisition shift."""
    from lungsearch import evaluate

    y_val, y_test = np.asarray(y_val), np.asarray(y_test).astype(int)
    chosen = {rule: evaluate.choose_threshold(y_val == positive, np.asarray(p_val)[:, positive], rule=rule, prevalence=prevalence)
              for rule in evaluate.THRESHOLD_RULES}
    if p_corrupt is not None:
        p_corrupt = np.asarray(p_corrupt)
        chosen["youden-corrupt"] = evaluate.choose_threshold(y_val == positive, p_corrupt[:, positive])
        chosen["youden-pooled"] = evaluate.choose_threshold(np.concatenate([y_val, y_val]) == positive,
                                                            np.concatenate([np.asarray(p_val)[:, positive], p_corrupt[:, positive]]))
    out = {}
    for rule, d in chosen.items():
        pred = evaluate.decide(p_test, d["threshold"], positive)
        pos = y_test == positive
        sens = float(np.mean(pred[pos] == positive)) if pos.any() else float("nan")
        spec = float(np.mean(pred[~pos] != positive)) if (~pos).any() else float("nan")
        out[rule] = {"threshold": round(float(d["threshold"]), 6), "accuracy": float(np.mean(pred == y_test)),
                     "sensitivity": sens, "specificity": spec, "balanced_accuracy": (sens + spec) / 2}
    return out


def ensembles(rows: list[dict], labels: dict, ks=(1, 3, 5)) -> dict[str, dict]:
    """For each K: the K best trials by the objective (ties: the earlier trial, as ``best --ensemble K`` takes
    them), their probabilities averaged: test AUC and, for two classes, every threshold rule on the average.
    ``rows`` carry ``_probs`` (validation, corrupted copy, test), ``labels`` the labels and the positive class."""
    from lungsearch import evaluate

    ranked = sorted((r for r in rows if "_probs" in r), key=lambda r: (-r["objective"], r["trial"]))
    positive = labels["positive"]
    out = {}
    for k in ks:
        if k > len(ranked):
            continue
        p_val, p_cor, p_test = (np.mean([r["_probs"][i] for r in ranked[:k]], axis=0) for i in range(3))
        fig = {"trials": [r["trial"] for r in ranked[:k]], "val_auc": evaluate.roc_auc(labels["y_val"], p_val, positive),
               "test_auc": evaluate.roc_auc(labels["y_test"], p_test, positive)}
        if positive is not None:
            fig["rules"] = rule_figures(labels["y_val"], p_val, labels["y_test"], p_test, positive, labels["prevalence"], p_cor)
        out[str(k)] = fig
    return out


def rules_summary(rows: list[dict]) -> dict[str, dict]:
    """Per rule, the median over trials of each test figure."""
    rules = [r["rules"] for r in rows if "rules" in r]
    if not rules:
        return {}
    return {rule: {k: round(statistics.median(x[rule][k] for x in rules), 4) for k in ("accuracy", "sensitivity", "specificity", "balanced_accuracy")}
            for rule in rules[0]}


def summarise_run(rows: list[dict]) -> dict:
    """The figures of one (set, seed): correlations, picks, and the test AUC of the best and median trial."""
    aucs = [r["test_auc"] for r in rows]
    out = {"trials": len(rows), "spearman": spearman_table(rows), "picks": picks(rows) if rows else {},
           "test_auc_best_trial": max(aucs) if aucs else None, "test_auc_median_trial": statistics.median(aucs) if aucs else None}
    if any("rules" in r for r in rows):
        out["rules_median_over_trials"] = rules_summary(rows)
    return out


def aggregate(runs: list[dict]) -> dict:
    """Over (set, seed) runs: median correlation per signal and target, and how often each signal's pick
    had the best test AUC among the signals' picks (ties count for every signal that tied)."""
    out = {"runs": len(runs), "median_spearman": {}, "pick_best_test_auc": {s: 0 for s in SIGNALS}}
    for s in SIGNALS:
        out["median_spearman"][s] = {}
        for target in TARGETS:
            values = [r["spearman"][s][target] for r in runs if r["spearman"].get(s, {}).get(target) is not None]
            out["median_spearman"][s][target] = round(statistics.median(values), 4) if values else None
    for r in runs:
        if not r.get("picks"):
            continue
        best = max(p["test_auc"] for p in r["picks"].values())
        for s, p in r["picks"].items():
            out["pick_best_test_auc"][s] += int(p["test_auc"] >= best - 1e-12)
    return out


# --------------------------------------------------------------------------- the runs


def judge_study(storage: str, log=print) -> tuple[list[dict], dict]:
    """One row per completed trial whose model was kept: signals on validation, figures on test, and its
    probabilities under ``_probs`` (not recorded); with the labels ``ensembles`` needs."""
    import keras
    import optuna
    from optuna.trial import TrialState

    from lungsearch import data as data_mod
    from lungsearch import evaluate, train
    from lungsearch.data import Arrays
    from lungsearch.export.rebuild import data_source, search_data
    from search.keep import model_file
    from spaces import augment

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    summary = optuna.get_all_study_summaries(storage)[-1]
    study = optuna.load_study(study_name=summary.study_name, storage=storage)
    attrs, config = study.user_attrs, study.user_attrs.get("config", {})
    augment.register()  # a kept model may hold RandomAffine
    data = search_data(study)  # validation decoded exactly as `best` does
    class_names = tuple(data.class_names)
    color = "grayscale" if data.input_shape[-1] == 1 else "rgb"
    test = data_mod.load_test(data_source(study), image_size=int(data.input_shape[0]), color_mode=color,
                              class_names=class_names, seed=config.get("seed", 0),
                              group_pattern=attrs.get("group_pattern", data_mod.DEFAULT_GROUP_PATTERN), cache_dir=config.get("cache_dir"))
    positive = evaluate.positive_class(class_names)
    prevalence = float(np.mean(data.train.y == positive)) if positive is not None else None
    corrupted = Arrays(corrupt(data.val.x), data.val.y)
    rows = []
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    missing = [t.number for t in done if model_file(study, t) is None]
    if missing:
        log(f"  no kept model for trials {missing}: left out")
    for t in done:
        path = model_file(study, t)
        if path is None:
            continue
        keras.backend.clear_session(free_memory=True)
        with tempfile.TemporaryDirectory() as tmp:
            name = os.path.join(tmp, "kept.keras")  # Keras wants the .keras name the artifact id lacks
            with open(path, "rb") as src, open(name, "wb") as dst:
                dst.write(src.read())
            model = augment.inference_model(keras.models.load_model(name, compile=False))
        p_val, p_cor, p_test = (train.predict_proba(model, a) for a in (data.val, corrupted, test))
        row = {"trial": t.number, "params": t.params, "objective": t.value, "warm_start": bool(t.user_attrs.get("warm_start")),
               **signals(data.val.y, p_val, p_cor, positive),
               "test_auc": evaluate.roc_auc(test.y, p_test, positive),
               "test_balanced_accuracy": balanced_accuracy(test.y, p_test, positive, youden(data.val.y, p_val, positive))}
        if positive is not None:
            row["rules"] = rule_figures(data.val.y, p_val, test.y, p_test, positive, prevalence, p_cor)
        row["_probs"] = (p_val, p_cor, p_test)
        rows.append(row)
        log(f"  trial {t.number}: val AUC {row['val_auc']:.4f}, log-loss {row['val_log_loss']:.3f}, corrupted AUC "
            f"{row['corrupt_auc']:.4f}; test AUC {row['test_auc']:.4f}, balanced accuracy {row['test_balanced_accuracy']:.3f}")
    return rows, {"y_val": data.val.y, "y_test": test.y, "positive": positive, "prevalence": prevalence}


def report(name: str, seed: int, figures: dict) -> None:
    print(f"  {name} seed {seed}: {figures['trials']} trials judged; test AUC of the best trial "
          f"{_f(figures['test_auc_best_trial'])}, of the median trial {_f(figures['test_auc_median_trial'])}")
    print(f"  {'signal':<24} {'rho test AUC':>12} {'rho test BA':>12} {'picks':>6} {'its test AUC':>13}")
    for s in SIGNALS:
        rho, p = figures["spearman"][s], figures["picks"].get(s, {})
        print(f"  {s:<24} {_f(rho['test_auc']):>12} {_f(rho['test_balanced_accuracy']):>12} {p.get('trial', '-')!s:>6} "
              f"{_f(p.get('test_auc')):>13}")
    chosen = figures["picks"].get("val_auc", {})  # the trial `best` exports today
    for rule, m in chosen.get("rules", {}).items():
        print(f"  threshold {rule:<12} on the val_auc pick (trial {chosen['trial']}): threshold {m['threshold']:.4f}, test accuracy "
              f"{m['accuracy']:.3f}, sensitivity {m['sensitivity']:.3f}, specificity {m['specificity']:.3f}")
    for k, e in figures.get("ensembles", {}).items():
        youden = e.get("rules", {}).get("youden", {})
        best_rule = max(e.get("rules", {}).items(), key=lambda kv: kv[1]["accuracy"], default=(None, {}))
        print(f"  top {k} averaged (trials {e['trials']}): test AUC {_f(e['test_auc'])}, accuracy at Youden {_f(youden.get('accuracy'))}"
              + (f"; rules: " + ", ".join(f"{r} {m['accuracy']:.3f}" for r, m in e["rules"].items()) if e.get("rules") else "")
              + (f" (best: {best_rule[0]})" if best_rule[0] else ""))
    for rule, m in figures.get("rules_median_over_trials", {}).items():
        print(f"  threshold {rule:<12} median over trials: test accuracy {m['accuracy']:.3f}, sensitivity {m['sensitivity']:.3f}, "
              f"specificity {m['specificity']:.3f}, balanced accuracy {m['balanced_accuracy']:.3f}")
    sys.stdout.flush()


def _f(v) -> str:
    return "n/a" if v is None else f"{v:.4f}"


def save(key: str, args: argparse.Namespace, results: dict) -> dict:
    """Record every (set, seed) finished so far, with the aggregate over them, under ``key``."""
    from bench.results import record

    runs = [r for per in results.values() for r in per.values()]
    return record(key, {"reduced": key.endswith("_reduced"), "budget_seconds": args.budget, "seeds": args.seeds,
                        "first_seed": args.first_seed, "space": args.space, "epochs": args.epochs,
                        "corrupt_seed": CORRUPT_SEED, "signals": list(SIGNALS), "sets": results, "aggregate": aggregate(runs)})


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sets", default=",".join(DEFAULT_SETS), help=f"comma-separated, from {', '.join(SETS)} (default: {','.join(DEFAULT_SETS)})")
    ap.add_argument("--seeds", type=int, default=2, help="searches per data set, seeds FIRST..FIRST+N-1 (default 2)")
    ap.add_argument("--first-seed", type=int, default=0, help="the first search's --seed (default 0)")
    ap.add_argument("--space", help="the built-in space searched (default: run's, cnn)")
    ap.add_argument("--budget", type=float, default=1800, help="wall seconds of each search (default 1800)")
    ap.add_argument("--epochs", type=int, help="epoch cap per trial, passed to `run` (default: run's, 10); for smoke runs")
    ap.add_argument("--name", help="record under selection@NAME (a run that must not replace another's record)")
    ap.add_argument("--no-record", action="store_true")
    args = ap.parse_args(argv)
    from bench.harness import data_folder, lungsearch, parse_sets

    sets = parse_sets(ap, args.sets, SETS)
    reduced = args.budget < 1800 or args.seeds < 2 or args.epochs is not None or args.space not in (None, "cnn")
    key = ("selection" + (f"@{args.name}" if args.name else "")) + ("_reduced" if reduced else "")
    results: dict = {}
    with tempfile.TemporaryDirectory(prefix="selection-") as tmp:
        for name in sets:
            folder = data_folder(name, tmp)
            for seed in range(args.first_seed, args.first_seed + args.seeds):
                storage = f"sqlite:///{tmp}/{name}-{seed}.db"
                flags = ["--trials", "10000", "--timeout", str(args.budget), "--seed", str(seed), "--keep-top", "100000"]
                if args.space:
                    flags += ["--space", args.space]
                if args.epochs is not None:
                    flags += ["--epochs", str(args.epochs)]
                print(f"== {name} seed {seed}: lungsearch run {' '.join(flags)}", flush=True)
                start = time.perf_counter()
                lungsearch("run", "--data", folder, *flags, "--storage", storage, "--study", f"{name}-{seed}", "--quiet")
                seconds = time.perf_counter() - start
                rows, labels = judge_study(storage)
                figures = {"flags": flags, "search_seconds": round(seconds, 1), **summarise_run(rows),
                           "ensembles": ensembles(rows, labels)}
                for row in rows:
                    row.pop("_probs", None)
                figures["per_trial"] = rows
                results.setdefault(name, {})[str(seed)] = figures
                report(name, seed, figures)
                if not args.no_record:
                    save(key, args, results)
    runs = [r for per in results.values() for r in per.values()]
    agg = aggregate(runs)
    print(f"== over {agg['runs']} (set, seed) runs: median Spearman rho with test AUC / test balanced accuracy; "
          "how often the signal's pick had the best test AUC of the picks")
    for s in SIGNALS:
        m = agg["median_spearman"][s]
        print(f"  {s:<24} {_f(m['test_auc']):>8} {_f(m['test_balanced_accuracy']):>8} {agg['pick_best_test_auc'][s]:>4}/{agg['runs']}")
    return {"sets": results, "aggregate": agg}


if __name__ == "__main__":
    main()
