"""`refine`: the study's best trials refitted on K folds of all its training images, each image predicted by a model that never saw it.

One validation split of 15% saturates (every decent chest_xray trial scores
0.995-0.998) and picks by noise.  Refining takes the study's N best trials
(the finalists) and refits each on K patient-grouped, stratified folds of
train and validation together (:func:`lungsearch.data.groups.kfold`), through
the search's own training path (:func:`lungsearch.trial.objective`: its seed,
build facts, batch size, epoch cap, and the cached features where the trial
took them).  Each fold's model trains on the other K-1 folds, with early
stopping on a validation split carved from those folds by patient, and then
predicts the fold it never saw.  So every finalist gets an out-of-fold (OOF)
probability for every training image: OOF AUC with a bootstrap interval,
log-loss and Brier score over all of train, not one 15% split.  AutoGluon
chooses and bags this way; `best` uses it (:mod:`lungsearch.export.refined`).

Every finished (finalist, fold) unit is written at once into the study's
storage (study user attribute ``refine:<trial>:<fold>``: the held-out
probabilities) and its model into the study's artifacts folder, so a killed
refine loses nothing it stored and the next one carries on.  The settings
(``refine``: folds, seed, the images' digest, the finalists) are checked on
each resume: other folds or other data are refused, not mixed.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
import time
from dataclasses import dataclass

import numpy as np
import optuna
from optuna.trial import TrialState

REFINE_ATTR = "refine"  # study user attr: the settings and each finalist's OOF figures
UNIT_PREFIX = "refine:"  # study user attr per finished unit: refine:<trial>:<fold>
FOLDER = "refine"  # under the study's artifacts folder: the fold models
DEFAULT_TOP = 5
DEFAULT_FOLDS = 5


class RefineError(ValueError):
    """A refine that cannot be run as asked (a user mistake: one line, exit 2)."""

    user_error = True


@dataclass
class Pool:
    """All the study's training images (train and validation together), their patients and the folds."""

    x: np.ndarray
    y: np.ndarray
    groups: list
    class_names: tuple
    folds: list  # [(fit indices, held-out indices)] into x
    digest: str  # of the images' order, labels, patients and folds: a resume on other data is refused


def pool_of(data, k: int, seed: int) -> Pool:
    """The search data's train and validation images together, and K folds of them by patient."""
    from lungsearch.data.groups import kfold

    x = np.concatenate([data.train.x, data.val.x])
    y = np.concatenate([data.train.y, data.val.y])
    groups = list(data.groups.get("train") or [f"image:{i}" for i in range(len(data.train))])
    groups += list(data.groups.get("val") or [f"image:v{i}" for i in range(len(data.val))])
    try:
        folds = kfold(y, groups, k, seed)
    except ValueError as exc:
        raise RefineError(str(exc)) from None
    digest = hashlib.sha256(json.dumps([y.tolist(), groups, [h.tolist() for _, h in folds], list(x.shape)]).encode())
    digest.update(np.ascontiguousarray(x[:: max(1, len(x) // 64)]).tobytes())  # a sample of the pixels: same names, other images
    return Pool(x, y, groups, tuple(data.class_names), folds, digest.hexdigest()[:16])


def finalists(study: optuna.Study, top: int) -> list[optuna.trial.FrozenTrial]:
    """The ``top`` best completed trials by the study's objective, best first; a trial whose params repeat a better one's is skipped."""
    done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.value is not None and math.isfinite(t.value)]
    sign = -1.0 if study.direction == optuna.study.StudyDirection.MAXIMIZE else 1.0
    out, seen = [], set()
    for t in sorted(done, key=lambda t: (sign * t.value, t.number)):
        key = json.dumps(t.params, sort_keys=True, default=str)
        if key not in seen:
            seen.add(key)
            out.append(t)
        if len(out) == top:
            break
    return out


def unit_key(trial: int, fold: int) -> str:
    return f"{UNIT_PREFIX}{trial}:{fold}"


def fold_data(pool: Pool, fold: int, val_fraction: float, seed: int):
    """The SearchData a fold's model trains on (the other folds, a validation split carved from them by patient) and its rows in the pool."""
    from lungsearch.data.base import Arrays, SearchData
    from lungsearch.data.groups import split_validation

    fit, _ = pool.folds[fold]
    try:
        tr, va = split_validation(pool.y[fit], [pool.groups[i] for i in fit], val_fraction, seed)
    except ValueError as exc:
        raise RefineError(f"fold {fold + 1}: {exc}") from None
    rows = {"train": fit[tr], "val": fit[va]}
    data = SearchData(pool.class_names, Arrays(pool.x[rows["train"]], pool.y[rows["train"]]), Arrays(pool.x[rows["val"]], pool.y[rows["val"]]),
                      {"source": "refine"}, groups={k: [pool.groups[i] for i in v] for k, v in rows.items()})
    return data, rows


def figures(y: np.ndarray, probs: np.ndarray, class_names, *, n_bootstrap: int = 1000, seed: int = 0, held: list | None = None) -> dict:
    """OOF AUC with its bootstrap interval, log-loss and Brier score of probabilities ``probs`` (n, k) for labels ``y``.

    ``held`` (each fold's held-out indices): also each fold's own AUC, which
    ranks images within one model only (the pooled AUC ranks them across the
    fold models, whose scales differ).
    """
    from sklearn.metrics import log_loss

    from lungsearch.evaluate import positive_class
    from lungsearch.evaluate.compare import bootstrap_auc
    from lungsearch.evaluate.metrics import roc_auc

    positive = positive_class(class_names)
    p = np.clip(np.asarray(probs, dtype=np.float64), 1e-7, 1.0)
    p = p / p.sum(axis=1, keepdims=True)
    onehot = np.eye(p.shape[1])[y]
    return {"oof_auc": round(roc_auc(y, p, positive), 5),
            "oof_auc_ci95": [round(v, 5) for v in bootstrap_auc(y, p, positive=positive, n=n_bootstrap, seed=seed)],
            "oof_log_loss": round(float(log_loss(y, p, labels=list(range(p.shape[1])))), 5),
            "oof_brier": round(float(np.mean(np.sum((p - onehot) ** 2, axis=1))), 5),
            "images": int(len(y)),
            **({"fold_auc": [round(_fold_auc(y[h], p[h], positive), 5) for h in held]} if held else {})}


def _fold_auc(y, p, positive):
    from lungsearch.evaluate.metrics import roc_auc

    try:
        return roc_auc(y, p, positive)
    except ValueError:  # a fold without one of the classes
        return float("nan")


def oof_of(study: optuna.Study, trial: int, pool_size: int, folds: list) -> np.ndarray | None:
    """A finalist's OOF probabilities (n, k) once all its folds are stored, else None."""
    attrs = study.user_attrs
    out = None
    for k, (_, held) in enumerate(folds):
        unit = attrs.get(unit_key(trial, k))
        if unit is None:
            return None
        probs = np.asarray(unit["probs"], dtype=np.float64)
        if out is None:
            out = np.zeros((pool_size, probs.shape[1]))
        out[held] = probs
    return out


def refine(study: optuna.Study, *, top: int = DEFAULT_TOP, folds: int = DEFAULT_FOLDS, timeout: float | None = None, log=print,
           shard: tuple[int, int] | None = None, fit: bool = True) -> dict:
    """Refit the study's ``top`` best trials on ``folds`` folds; returns the ``refine`` record (each finalist's OOF figures).

    ``shard`` (i, n): this process is worker i of n (``refine --workers n``)
    and fits the fold fits whose place in the whole list (stored ones
    included, so workers that start apart split it alike) is i modulo n,
    leaving the OOF figures to the process that started the workers;
    ``fit=False``: fit nothing, only check the settings and sum up what is
    stored.
    """
    import keras

    from lungsearch import train
    from lungsearch.data.base import Arrays
    from lungsearch.export.rebuild import search_data
    from lungsearch.trial import objective, stored_config
    from search.objective import EPOCH_CAP_ATTR, FEATURES_ATTR
    from spaces import augment, get_space

    if top < 1:
        raise RefineError(f"--top must be at least 1, got {top}")
    if timeout is not None and timeout <= 0:
        raise RefineError(f"--timeout must be positive, got {timeout:g}")
    chosen = finalists(study, top)
    if not chosen:
        raise RefineError(f"study {study.study_name!r} has no completed trial to refine; run more trials first")
    folder = study.user_attrs.get("artifacts")
    if not folder:
        raise RefineError(f"study {study.study_name!r} records no artifacts folder for the fold models (made by an older lungsearch?); "
                          "run it again with `lungsearch run` to record one")
    config = stored_config(study)
    seed = int(config.seed)
    record = dict(study.user_attrs.get(REFINE_ATTR) or {})
    if record and int(record.get("folds", folds)) != folds:
        raise RefineError(f"study {study.study_name!r} was refined with {record['folds']} folds; give --folds {record['folds']} "
                          "to carry on (its stored folds are kept, not mixed with others)")
    start = time.perf_counter()
    begun = list(record.get("finalists") or [])
    numbers = list(dict.fromkeys([*begun, *(t.number for t in chosen)]))
    if len(begun) > top:  # stored folds are kept, never dropped: say so rather than refit them in silence
        added = [f"#{n}" for n in numbers[len(begun):]]
        log(f"refine: an earlier refine of this study began {len(begun)} finalists ({', '.join(f'#{n}' for n in begun)}); "
            f"they are all carried on, --top {top} adds {' '.join(added) if added else 'none'} and drops none")
    if timeout is not None and fit:
        numbers = _within(numbers, study, folds, timeout, record, log)
        if not numbers:  # the best finalist does not fit: nothing begun, nothing stored, no image loaded (_within said why)
            return record
    log(f"refine: loading the study's train and validation images ({len(chosen)} finalists, {folds} folds)")
    data = search_data(study)
    pool = pool_of(data, folds, seed)
    if record and record.get("digest") != pool.digest:
        raise RefineError(f"the training images of study {study.study_name!r} are not those it was refined on (digest "
                          f"{record.get('digest')} then, {pool.digest} now); its stored folds cannot be mixed with new ones")
    record.update({"folds": folds, "seed": seed, "digest": pool.digest, "images": int(len(pool.y)), "finalists": numbers,
                   "grouping": "by patient, stratified (StratifiedGroupKFold)", "inner_val_fraction": config.val_fraction,
                   "labels": pool.y.tolist(), "held_out": [h.tolist() for _, h in pool.folds]})
    record.setdefault("results", {})
    if shard is None:  # workers leave the record to the process that started them
        study.set_user_attr(REFINE_ATTR, record)
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    space = get_space((study.user_attrs.get("space") or {}).get("source") or config.space)
    stored = study.user_attrs  # read from the storage on each access: once here
    units = [(n, k) for n in numbers for k in range(folds)]
    if shard is not None:  # by place in the whole list, which every worker sees alike, not in what is left when it looks
        units = units[shard[0]::shard[1]]
    todo = [(n, k) for n, k in units if unit_key(n, k) not in stored]
    if shard is None:
        log(f"refine: {len(units) - len(todo)} of {len(units)} fold fits stored, {len(todo)} to go")
    if not fit:
        todo = []
    os.makedirs(os.path.join(folder, FOLDER), exist_ok=True)
    spent = []
    for i, (number, k) in enumerate(todo):
        if i and timeout is not None and time.perf_counter() - start >= timeout:  # one fit at least: each call makes progress
            log(f"refine: --timeout reached with {len(todo) - i} fold fits to go; `lungsearch refine` again carries on")
            break
        trial = trials[number]
        fdata, rows = fold_data(pool, k, config.val_fraction, seed)
        unit_start = time.perf_counter()
        fixed = optuna.trial.FixedTrial(space.fixed_params(trial.params), number=trial.number)
        cfg = config.with_updates(feature_cache=bool(trial.user_attrs.get(FEATURES_ATTR)) and config.feature_cache)
        trained = objective(cfg, space, fdata, epochs=trial.user_attrs.get(EPOCH_CAP_ATTR),
                            pool=(pool.x, rows)).train(fixed)
        _, held = pool.folds[k]
        model = augment.inference_model(trained.model)
        probs = train.predict_proba(model, Arrays(pool.x[held], pool.y[held]))
        name = f"trial-{number}-fold-{k}.keras"
        with tempfile.TemporaryDirectory(dir=os.path.join(folder, FOLDER)) as tmp:  # saved whole, then moved into place
            model.save(os.path.join(tmp, name))
            os.replace(os.path.join(tmp, name), os.path.join(folder, FOLDER, name))
        seconds = time.perf_counter() - unit_start
        spent.append(seconds)
        study.set_user_attr(unit_key(number, k), {
            "probs": np.round(probs, 6).tolist(), "model": f"{FOLDER}/{name}", "seconds": round(seconds, 1),
            "epochs": trained.epochs, "val_auc": _finite(trained.value("val_auc")),
        })
        left = len(todo) - i - 1
        eta = f", about {_duration(np.mean(spent) * left)} left" if left else ""
        log(f"refine: trial #{number} fold {k + 1}/{folds}: {trained.epochs} epochs in {seconds:.0f} s, "
            f"inner val AUC {trained.value('val_auc'):.4f} ({i + 1} of {len(todo)}{eta})")
        keras.backend.clear_session(free_memory=True)
        if shard is None and (k == folds - 1 or all((number, f) not in todo[i + 1:] for f in range(folds))):
            _summarize(study, record, pool, number, log)
    if shard is None:
        for number in numbers:  # finalists whose folds an earlier refine (or its workers) finished
            if str(number) not in record["results"]:
                _summarize(study, record, pool, number, log)
    return record


def _within(numbers: list, study: optuna.Study, folds: int, timeout: float, record: dict, log) -> list:
    """The finalists, best first, whose fold fits fit in ``timeout`` by their search times (those begun stay).

    A fold fit trains on (K-1)/K of the images the search trained on, so it is
    estimated at that share of the trial's ``train_seconds``; a finalist half
    refitted when the time runs out gives no OOF figure, so a finalist that
    does not fit is left for a later refine rather than begun.  Where the best
    finalist itself does not fit, none is begun (an empty list): refitting
    only cheaper, weaker finalists would hand `best` a bag of them in place of
    the best by validation, and beginning it anyway overran `run --refine`'s
    --timeout by minutes (chest_xray: a 745 s trial's first fold fit begun
    with 321 s left).
    """
    stored = study.user_attrs
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    begun = set(record.get("finalists") or [])
    kept, spent = [], 0.0
    for number in numbers:
        left = sum(unit_key(number, k) not in stored for k in range(folds))
        cost = left * float(trials[number].user_attrs.get("train_seconds") or 0.0) * (folds - 1) / folds
        if number in begun or spent + cost <= timeout:
            kept.append(number)
            spent += cost
        elif not kept:
            log(f"refine: the {timeout:.0f} s left of --timeout do not fit the best finalist, trial #{number} ({left} fold fits, about "
                f"{cost:.0f} s by its search time); nothing refitted, so `best` exports without refine. Run `lungsearch "
                f"refine` with --timeout {cost:.0f} or more, or none, to refit")
            return []
    if len(kept) < len(numbers):
        log(f"refine: --timeout {timeout:.0f} s fits about {len(kept)} of the {len(numbers)} finalists at {folds} folds "
            f"(estimated from their search times); the others are left for a later refine")
    return kept


def _summarize(study, record: dict, pool: Pool, number: int, log) -> None:
    """A finalist's OOF figures into the record, once all its folds are stored."""
    probs = oof_of(study, number, len(pool.y), pool.folds)
    if probs is None:
        return
    out = figures(pool.y, probs, pool.class_names, seed=record.get("seed", 0), held=[h for _, h in pool.folds])
    out.update(calibrated_auc(pool.y, probs, pool.class_names, [h for _, h in pool.folds]))
    record["results"][str(number)] = out
    study.set_user_attr(REFINE_ATTR, record)
    lo, hi = out["oof_auc_ci95"]
    log(f"refine: trial #{number}: OOF AUC {out['oof_auc']:.4f} [{lo:.4f}, {hi:.4f}], log-loss {out['oof_log_loss']:.4f}, "
        f"Brier {out['oof_brier']:.4f} over all {out['images']} training images; each fold's own AUC "
        f"{', '.join(f'{a:.4f}' for a in out['fold_auc'])}")


def calibrated_auc(y: np.ndarray, probs: np.ndarray, class_names, held: list) -> dict:
    """The pooled OOF AUC once each fold model is calibrated on its held-out images, as `best` ranks finalists (two classes)."""
    from lungsearch.evaluate import positive_class
    from lungsearch.evaluate.metrics import roc_auc
    from lungsearch.evaluate.calibration import calibrate

    positive = positive_class(class_names)
    if positive is None:
        return {}
    calibrated, _ = calibrate(np.asarray(probs, dtype=np.float64), np.asarray(y), held, positive)
    return {"oof_auc_calibrated": round(roc_auc(y, calibrated, positive), 5)}


def summary_line(record: dict) -> str | None:
    """The closing line of a refine: finalists refined in full, and the best out of fold as `best` ranks them."""
    done = record.get("results") or {}
    if not done:
        return None
    key = "oof_auc_calibrated" if all("oof_auc_calibrated" in f for f in done.values()) else "oof_auc"
    best = max(done, key=lambda n: (done[n][key], -int(n)))
    which = "OOF AUC, fold models calibrated" if key == "oof_auc_calibrated" else "OOF AUC"
    return (f"refined {len(done)} of {len(record['finalists'])} finalists; the best out of fold: trial #{best} "
            f"({which} {done[best][key]:.4f}); `lungsearch best --export model.keras` exports from these figures")


def load(study: optuna.Study) -> dict | None:
    """The study's refine record where one exists: settings, and the OOF figures of every finalist refined in full."""
    return study.user_attrs.get(REFINE_ATTR) or None


def _finite(v):
    return float(v) if v is not None and math.isfinite(v) else None


def _duration(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"
