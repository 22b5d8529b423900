"""lungsearch's default search against keras-tuner as a competent user runs it: same space, data, callbacks, budget.

    python -m bench.search_vs_keras_tuner                    # chest_xray and covid19, 3 seeds, 30 minutes per side, 64 px
    python -m bench.search_vs_keras_tuner --sets covid19 --seeds 3 --budget 300 --epochs 5   # a reduced run
    python -m bench.search_vs_keras_tuner --space efficientnet-lite0   # a transfer space (key search_vs_keras_tuner_efficientnet-lite0)

The cnn space is given to keras-tuner through a tiny adapter: an object with
Optuna's ``suggest_int``/``suggest_float``/``suggest_categorical`` that
forwards each call to keras-tuner's ``hp.Int``/``hp.Float``/``hp.Choice`` with
the same name, range and log scale, so ``spaces.cnn.build`` and
``fit_options`` run unchanged on both sides: the same ranges, no copy of them.

Fair by construction: lungsearch's side is ``lungsearch run`` itself, the
executable a user runs (``bench.harness.run_search``: its sampler, pruner,
warm starts, ``--recycle`` and kept models, ``--timeout`` the budget, no trial
started after it), and its curve and pick are read back from the study's
storage (``bench.harness.search_record``: each trial's ``history`` and
``epoch_times``); keras-tuner's sides train on the arrays that run decodes for
the same ``--seed`` (``bench.harness.load_arrays``: the same patient-disjoint
validation split, in the space's color mode at ``--image-size``; ``--train-limit`` makes a
folder of links to that many train images, for every side) with the same batch
size from the space, the same class weights (``lungsearch.train.class_weights``)
and the same ReduceLROnPlateau and EarlyStopping (restoring the best epoch) on
the same monitor that ``lungsearch.train.fit`` uses; validation AUC is measured
once per epoch by ``lungsearch.train.validation_metrics`` on all.  keras-tuner
Hyperband runs with its documented defaults (``factor=3``, ``max_epochs`` = the
epoch cap), iterated until the budget is spent; RandomSearch is the second
peer.  lungsearch starts from the space's warm starts, as ``run`` does by
default (recorded as ``warm_starts``); keras-tuner has no such points to start
from.

Per seed (``--seeds`` of them from ``--first-seed``; run's ``--seed``, so each
seed has its own validation split, the same for every side) and data set, each side
gets ``--budget`` seconds of wall time (epochs ending past it are not counted
in its curve, and no trial starts after it); the order of the sides rotates
with the seed, and an epoch of a fixed small CNN (the second of two) is timed
before each side, so machine drift shows in the record.  Each side's pick (the
trial its own tuner ranks best on validation) is scored once on the test
split: Youden's threshold on validation, then test AUC and accuracy with 95%
bootstrap CIs (``lungsearch.evaluate``).  Per side, also: time to each
validation target (``TARGETS``), the mean of the best-so-far curve over the
budget (0.5 before the first epoch), and time_ratio = seconds lungsearch needs
to reach Hyperband's final best / seconds Hyperband needed.  Summaries are
medians with min and max over seeds.  Goal: lungsearch's pick at least
keras-tuner's on test AUC (median over seeds), on both sets.  Use 64 px or
more: at 32 px the cnn space's 5-block trials cannot be built.  Key
``search_vs_keras_tuner`` (``_reduced`` below the defaults), written after every
side, so a run cut short keeps what it finished.  Each side runs in a fresh
process (``in_child``: TensorFlow's memory grows with every model trained;
lungsearch's ``run`` replaces its own worker every 10 trials, ``--recycle``)
and records its peak resident memory (``peak_rss_mib``; lungsearch's: its
largest process).  lungsearch's curve starts with its first trial (after run
has loaded the data, as keras-tuner's starts after the arrays are given), but
run's ``--timeout`` counts from run's own start, so its start-up (imports,
decoding from the cache) comes out of lungsearch's time to start trials, as it
does for a user; the trial running when the budget ends finishes, uncounted,
as run lets it.
``--space NAME`` (default ``cnn``) compares the two on another registered space, at the input size and color mode
``lungsearch run --space NAME`` picks where ``--image-size`` is not given (the space's own: 128 px grayscale for
efficientnet-lite0, whose model repeats the gray channel to RGB and scales it inside itself).  keras-tuner's
HyperModel builds the space with run's build facts (``lungsearch.trial.build_facts``: the same ImageNet starting
weights) and trains a fine-tuning trial's two phases as ``lungsearch.train.fit`` does (``train.phase_split``,
``train.unfreeze_backbones``; see :func:`hypermodel`).  For every space but cnn (``KEPT_PICK``) lungsearch's side
is ``run`` followed by its default export, ``lungsearch best --export`` with no other flag, scored on test by
``best`` itself: what a user ships, against keras-tuner's best model.  lungsearch trains a frozen backbone's phase
on cached features (run's default), keras-tuner on pixels, as each ships.  Each (seed, set) also holds a paired
bootstrap of the test AUC difference between lungsearch's pick and each keras-tuner pick on the same images
(``paired``, ``lungsearch.evaluate.compare``; from 2026-12-07 the test labels and each pick's test probabilities
too, ``test``, which :func:`paired_from_record` makes them again from), and each side the command, date, seed and
data that made it.  Key
``search_vs_keras_tuner_<space>`` (``_reduced`` below the defaults); cnn's stays ``search_vs_keras_tuner``.
``--refine`` (a transfer space only): lungsearch's side is ``run --refine`` instead, the search and refine's
refits of its finalists inside the side's one budget, then ``best --export``'s default after refine (the bag
chosen on out-of-fold predictions), under ``search_vs_keras_tuner_<space>_refine``; the side records its
command's wall time and which finalists refine refitted.
The sides of one (seed, set) run in one sitting; ``--resume`` keeps the (seed,
set)s a run with the same flags recorded and runs the rest, and ``--hours H`` starts none that would end
past H hours, so the 9 hours of the full bench can be spread over sessions:

    python -m bench.search_vs_keras_tuner --resume --hours 2.5
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time

import numpy as np

from bench.harness import (CALIBRATION, DATA_ROOT, calibrate, data_folder, export, in_child, limited_folder, load_arrays,
                           paired_again, parse_sets, peak_rss_mib, record_probs, rotated, run_search, search_record, spread,
                           test_probs, test_record)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SIDES = ("lungsearch", "hyperband", "random")
DEFAULT_SETS = ("chest_xray", "covid19")
# Validation AUC targets for time-to-target: chest_xray's validation saturates near 0.997, covid19's is small
TARGETS = {"chest_xray": (0.99, 0.995, 0.997)}
OTHER_TARGETS = (0.95, 0.98, 0.99)
KEY = "search_vs_keras_tuner"  # the cnn space's key; another space's is KEY_<space> (key_for)
# The spaces whose lungsearch side is scored as this bench's cnn record always was: the best trial's kept model.  Every
# other space's lungsearch side is lungsearch's default export (`best --export`, no flags), what a user ships.
KEPT_PICK = ("cnn",)


class OutOfBudget(Exception):
    """The side's wall-time budget is spent."""


class Curve:
    """Best validation AUC over wall time for one side."""

    def __init__(self, budget: float):
        self.start, self.budget, self.points, self.trials = time.perf_counter(), budget, [], 0

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def over(self) -> bool:
        return self.elapsed() > self.budget

    def add(self, auc: float) -> None:
        if not self.over() and auc == auc:  # NaN never counts
            self.points.append((round(self.elapsed(), 2), round(float(auc), 5)))

    def best(self) -> float | None:
        return max((a for _, a in self.points), default=None)

    def time_to(self, target: float) -> float | None:
        return next((t for t, a in self.points if a >= target), None)

    def running_best(self) -> list[tuple[float, float]]:
        out, best = [], -1.0
        for t, a in self.points:
            if a > best:
                best = a
                out.append((t, a))
        return out


class HpTrial:
    """Optuna's suggest_* API on top of a keras-tuner ``HyperParameters``: one space, two tuners."""

    def __init__(self, hp):
        self.hp = hp

    def suggest_int(self, name, low, high, *, log=False, step=1):
        return self.hp.Int(name, low, high, step=None if log else step, sampling="log" if log else "linear")

    def suggest_float(self, name, low, high, *, log=False, step=None):
        return self.hp.Float(name, low, high, step=step, sampling="log" if log else "linear")

    def suggest_categorical(self, name, choices):
        value = self.hp.Choice(name, list(choices))
        return list(choices)[list(choices).index(value)]  # keras-tuner gives [False, True] back as 0 and 1


# --------------------------------------------------------------------------- pure parts (tests/bench/test_search_vs_keras_tuner.py)


def targets_for(name: str) -> tuple[float, ...]:
    return TARGETS.get(name, OTHER_TARGETS)


def mean_best_so_far(curve: list, budget: float, floor: float = 0.5) -> float | None:
    """The mean over ``[0, budget]`` of the best validation AUC seen so far (``floor`` before the first epoch):
    the area under the best-so-far curve divided by the budget.  ``curve``: ``(seconds, best)`` points, rising."""
    if budget <= 0:
        return None
    area, t_prev, level = 0.0, 0.0, floor
    for t, auc in curve:
        t = min(float(t), budget)
        area += (t - t_prev) * level
        t_prev, level = t, max(level, float(auc))
    area += (budget - t_prev) * level
    return round(area / budget, 5)


def times_to(curve: list, targets) -> dict[str, float | None]:
    """Seconds at which the best-so-far curve first reaches each target (None: never within the budget)."""
    return {f"{t:g}": next((s for s, a in curve if a >= t), None) for t in targets}


def time_ratio(ls: dict, hb: dict) -> float | None:
    """Seconds lungsearch needs to reach Hyperband's final best / seconds Hyperband needed (None: never reached)."""
    if not ls or not hb or hb.get("best") is None:
        return None
    t_ls, t_hb = _as_curve(ls).time_to(hb["best"]), _as_curve(hb).time_to(hb["best"])
    return None if t_ls is None else round(t_ls / max(t_hb, 1e-9), 3)


def summarise_set(name: str, seeds: list[dict]) -> dict:
    """Over the seeds run so far on one data set: per side, the spread of each figure, and how often each side's pick
    had the best test AUC of the sides."""
    per_side: dict[str, dict] = {}
    wins: dict[str, int] = {}
    ratios = []
    for entry in seeds:
        sides = (entry.get("sets") or {}).get(name, {}).get("sides", {})
        scored = {s: f["pick"]["test_auc"] for s, f in sides.items() if (f.get("pick") or {}).get("test_auc") is not None}
        if len(scored) > 1:
            top = max(scored.values())
            for s, v in scored.items():
                wins[s] = wins.get(s, 0) + (v == top)
        if "lungsearch" in sides and "hyperband" in sides:
            ratios.append(time_ratio(sides["lungsearch"], sides["hyperband"]))
        for s, f in sides.items():
            per_side.setdefault(s, []).append(f)
    out = {}
    for s, runs in per_side.items():
        picks = [r.get("pick") or {} for r in runs]
        out[s] = {"seeds": len(runs),
                  "test_auc": spread(p.get("test_auc") for p in picks),
                  "test_accuracy": spread(p.get("test_accuracy") for p in picks),
                  "best_val_auc": spread(r.get("best") for r in runs),
                  "mean_best_so_far": spread(r.get("mean_best_so_far") for r in runs),
                  "trials_finished": spread(r.get("trials_finished") for r in runs),
                  "time_to": {t: {"reached": sum(r["time_to"].get(t) is not None for r in runs),
                                  "seconds": spread(r["time_to"].get(t) for r in runs)}
                              for t in (runs[0].get("time_to") or {})},
                  "best_test_auc_of_sides": wins.get(s, 0)}
    paired: dict[str, list] = {}
    for entry in seeds:
        for pair, test in ((entry.get("sets") or {}).get(name, {}).get("paired") or {}).items():
            paired.setdefault(pair, []).append(test)
    figures = {"sides": out, "time_ratio": spread(ratios), "time_ratios": ratios,
               "paired": {pair: {"seeds": len(tests), "difference": spread(t["difference"] for t in tests),
                                 "p": spread(t["p"] for t in tests)} for pair, tests in paired.items()}}
    ls, kt = out.get("lungsearch", {}).get("test_auc"), [v["test_auc"] for k, v in out.items() if k != "lungsearch" and v["test_auc"]]
    if ls and kt:
        figures["goal_met"] = ls["median"] >= max(v["median"] for v in kt)
    return figures


# --------------------------------------------------------------------------- the sides


def score(model, data, test, n_bootstrap: int = 1000, p_test=None) -> dict:
    """A side's pick on the test split, read once: Youden's threshold on validation (two classes), then test AUC and
    accuracy with 95% bootstrap CIs, as ``best`` reports them.  ``p_test``: its test probabilities, where already had."""
    from lungsearch import evaluate, train

    p_val = train.predict_proba(model, data.val)
    p_test = train.predict_proba(model, test) if p_test is None else p_test
    positive = evaluate.positive_class(tuple(data.class_names))
    threshold = None
    if positive is not None:
        threshold = evaluate.choose_threshold(data.val.y == positive, p_val[:, positive])["threshold"]
    m = evaluate.evaluate(test.y, p_test, list(data.class_names), threshold=threshold, positive=positive, n_bootstrap=n_bootstrap)["metrics"]
    return {"threshold": None if threshold is None else round(float(threshold), 6),
            "test_auc": round(m["roc_auc"]["value"], 5), "test_auc_ci95": [round(v, 5) for v in m["roc_auc"]["ci95"]],
            "test_accuracy": round(m["accuracy"]["value"], 5), "test_accuracy_ci95": [round(v, 5) for v in m["accuracy"]["ci95"]]}


def hypermodel(space, data, *, monitor: str, use_class_weights: bool = True, epochs: int | None = None,
               facts: dict | None = None):
    """A space as a keras-tuner HyperModel whose ``fit`` trains as ``lungsearch.train.fit`` does: the space's batch
    size, class weights, and ReduceLROnPlateau and EarlyStopping on ``monitor``, placed right after the callback that
    measures validation (the first one given), so they and keras-tuner's checkpoint read its metrics.

    A trial whose ``fit_options`` give a ``second_phase`` (a transfer space's fine-tuning) trains two phases, as
    ``train.fit`` does: the first up to ``train.phase_split`` of the epoch cap ``epochs`` (default: the ``epochs``
    keras-tuner asks for), then ``train.unfreeze_backbones`` at the second phase's rate and on from that epoch,
    unless the first phase stopped early (or the budget stopped it).  The split is the cap's, as in a lungsearch
    trial that the pruner may stop before the cap: Hyperband trains a trial in rounds (``initial_epoch`` to
    ``epochs``), rebuilding it frozen from its best epoch's weights, and each round trains the epochs of the phase
    they fall in, so a trial unfreezes at the same epoch whether it ran whole or in rounds.  ``facts``: what each
    build gets beyond shape and classes (default: ``run``'s own, ``lungsearch.trial.build_facts``: the backbone's
    ImageNet weights)."""
    import keras
    import keras_tuner as kt

    from lungsearch import train
    from lungsearch.config import RunConfig
    from lungsearch.trial import build_facts

    weights = train.class_weights(data.train.y, len(data.class_names)) if use_class_weights else None
    facts = build_facts(RunConfig()) if facts is None else facts
    cap = epochs

    class Space(kt.HyperModel):
        def build(self, hp):
            keras.backend.clear_session(free_memory=True)
            return space.build(HpTrial(hp), input_shape=data.input_shape, num_classes=len(data.class_names), **facts)

        def fit(self, hp, model, *args, callbacks=None, epochs=1, initial_epoch=0, **kwargs):
            options = space.fit_options(HpTrial(hp))
            second = options.get("second_phase")
            split = min(train.phase_split(epochs if cap is None else cap, second), epochs)
            callbacks = list(callbacks or [])
            reduce_lr, stopper = train.plateau_callbacks(monitor)
            callbacks[1:1] = [reduce_lr, stopper]
            common = dict(batch_size=options["batch_size"], class_weight=weights, callbacks=callbacks, **kwargs)
            history = None
            if initial_epoch < split:
                history = model.fit(*args, epochs=split, initial_epoch=initial_epoch, **common)
            # the budget's end (the measuring callback) and early stopping both stop the model: no second phase then
            if split < epochs and not stopper.stopped_epoch and not getattr(model, "stop_training", False):
                train.unfreeze_backbones(model, float(second["learning_rate"]))
                stopper.resume = history is not None  # keep the first phase's best epoch, as train.fit does
                later = model.fit(*args, epochs=epochs, initial_epoch=max(split, initial_epoch), **common)
                history = later if history is None else joined(history, later)
            return history

    return Space()


def joined(first, second):
    """Two ``model.fit`` histories of one trial (its two phases) as one, epoch after epoch: keras-tuner scores a trial
    by the best epoch of the history ``fit`` returns."""
    first.history = {k: list(first.history.get(k, [])) + list(second.history.get(k, []))
                     for k in {**first.history, **second.history}}
    first.epoch = list(first.epoch) + list(second.epoch)
    return first


def run_keras_tuner(kind: str, space, data, *, budget: float, epochs: int, seed: int, folder: str, keep: bool = False) -> dict:
    import keras
    import keras_tuner as kt

    from lungsearch.config import RunConfig
    from lungsearch.train import validation_metrics

    curve = Curve(budget)
    val = data.val

    class Measure(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            metrics = validation_metrics(self.model.predict(val.x, batch_size=256, verbose=0), val.y)
            if logs is not None:
                logs.update(metrics)  # the plateau callbacks, keras-tuner's objective and its checkpoint read them here
            curve.add(metrics["val_auc"])
            if curve.over():
                self.model.stop_training = True

    def stop_when_spent(self):
        if curve.over():
            raise OutOfBudget

    common = dict(objective=kt.Objective("val_auc", direction="max"), seed=seed, directory=folder,
                  project_name=f"{kind}-{seed}", overwrite=True, max_consecutive_failed_trials=10_000)
    if kind == "hyperband":
        base = kt.Hyperband
        tuner_args = dict(max_epochs=epochs, factor=3, hyperband_iterations=10_000)
    else:
        base = kt.RandomSearch
        tuner_args = dict(max_trials=10_000)
    model = hypermodel(space, data, monitor=RunConfig().metric, epochs=epochs)
    tuner = type(f"Budgeted{base.__name__}", (base,), {"pre_create_trial": stop_when_spent})(model, **common, **tuner_args)
    curve.start = time.perf_counter()
    try:
        tuner.search(data.train.x, data.train.y, epochs=epochs, callbacks=[Measure()], shuffle=True, verbose=0)
    except OutOfBudget:
        pass
    seconds = round(min(curve.elapsed(), budget), 1)
    trials = tuner.oracle.trials.values()
    scores = [t.score for t in trials if t.score is not None]
    out = {"tuner": f"keras-tuner {base.__name__}", "trials_finished": sum(t.status == "COMPLETED" for t in trials),
           "seconds": seconds, "best": curve.best(), "selected_best": max(scores, default=None), "curve": curve.running_best()}
    if keep and scores:
        best = tuner.oracle.get_best_trials(1)[0]
        out["pick_trial"] = best.trial_id
        out["pick_params"] = {k: v for k, v in best.hyperparameters.values.items() if not k.startswith("tuner/")}
        out["_model"] = tuner.get_best_models(1)[0]
    return out


# --------------------------------------------------------------------------- the run


def main(argv=None) -> dict:
    import optuna

    import spaces
    from bench.results import below_defaults, fits, reduced_key, resumable

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sets", default=",".join(DEFAULT_SETS), help=f"comma-separated data sets under {DATA_ROOT} (default: %(default)s)")
    ap.add_argument("--space", default="cnn", help="the space both sides search, a registered name (default: %(default)s); "
                    "a transfer space's lungsearch side is scored by its default export")
    ap.add_argument("--refine", action="store_true",
                    help="lungsearch's side is `run --refine` (the search, then refine's refits, in the one budget) and best's "
                         "default export after it; key search_vs_keras_tuner_<space>_refine (not for cnn)")
    ap.add_argument("--image-size", type=int, default=None, help="input side in pixels (default: the space's own, as run picks it)")
    ap.add_argument("--budget", type=float, default=1800, help="wall seconds per side (default 1800)")
    ap.add_argument("--epochs", type=int, default=10, help="epoch cap per trial, both sides (default: lungsearch's 10)")
    ap.add_argument("--train-limit", type=int, default=None,
                    help="every side on this many of train/'s images, validation carved from them (a folder of links)")
    ap.add_argument("--tuners", default=",".join(SIDES), help="comma-separated sides, in the first seed's order (default: %(default)s)")
    ap.add_argument("--seeds", type=int, default=3, help="seeds per data set (default 3)")
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--resume", action="store_true", help="keep the (seed, set)s already recorded with these flags; run the rest")
    ap.add_argument("--hours", type=float, help="start no (seed, set) that would end past this many hours from now")
    ap.add_argument("--no-record", action="store_true")
    args = ap.parse_args(argv)
    if args.space not in spaces.list_spaces():
        ap.exit(2, f"{ap.prog}: error: unknown space {args.space!r}; choose from {', '.join(spaces.list_spaces())}\n")
    space = spaces.get_space(args.space)
    if args.refine and space.name in KEPT_PICK:
        ap.exit(2, f"{ap.prog}: error: --refine scores lungsearch's export, and the {space.name} side is scored by its kept model; "
                   f"give a transfer space (--space efficientnet-lite0)\n")
    args.image_size = args.image_size or space.image_size
    sets = parse_sets(ap, args.sets, ("chest_xray", "covid19"))
    unknown = [t for t in args.tuners.split(",") if t not in SIDES]
    if unknown:
        ap.error(f"unknown side {unknown[0]!r}; choose from {', '.join(SIDES)}")
    # the comparison is 3 seeds, 30 minutes per side, 10 epochs, all of train, every tuner, both sets
    args.reduced = below_defaults(ap, args, "budget", "epochs", "train_limit", "tuners", "seeds", "sets")
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    sides = args.tuners.split(",")
    print(f"space {space.name} at {args.image_size} px {space.color_mode}: {args.budget:.0f} s per side, at most {args.epochs} "
          f"epochs per trial, seeds {args.first_seed}..{args.first_seed + args.seeds - 1}; lungsearch's side: {form(args.refine)}", flush=True)
    key = reduced_key(key_for(args.space, args.refine), {"reduced": args.reduced})
    kept = {e["seed"]: e for e in (resumable(key, settings(args, sets)) if args.resume else [])}
    seeds = [kept.get(args.first_seed + i) or {"seed": args.first_seed + i, "order": rotated(sides, i), "sets": {}}
             for i in range(args.seeds)]
    unit_seconds = len(sides) * (args.budget + 120)  # a side's budget, its calibration epoch and its scoring
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="search_vs_keras_tuner-") as work:
        folders = {name: limited_folder(data_folder(name), args.train_limit, work) for name in sets}
        for entry in seeds:
            for name in sets:
                if done(entry, name, sides):
                    print(f"seed {entry['seed']} {name}: kept from the record ({entry['sets'][name].get('date', 'an earlier run')})", flush=True)
                    continue
                if not fits(start, args.hours, unit_seconds):
                    print(f"stopped before seed {entry['seed']} {name} (about {unit_seconds / 60:.0f} min, past --hours {args.hours}); "
                          "run again with --resume to go on", flush=True)
                    return summarise(args, sets, seeds)
                run_unit(args, entry, name, folders[name], space, sets, seeds)
    figures = summarise(args, sets, seeds)
    for name in sets:
        print(f"== {name}: {figures['sets'][name]}")
    return figures


def settings(args, sets: list[str]) -> dict:
    """What makes two runs the same bench (``--resume`` continues only such a run), as the record keeps it."""
    return {"sets_run": sets, "image_size": args.image_size, "budget_seconds": args.budget, "epochs": args.epochs,
            "train_limit": args.train_limit, "tuners": args.tuners.split(","), "first_seed": args.first_seed,
            "seeds_asked": args.seeds, **({"lungsearch_form": form(True)} if args.refine else {})}


def done(entry: dict, name: str, sides: list[str]) -> bool:
    """Whether every side of one (seed, set) is recorded: the unit that runs whole or again."""
    return set(sides) <= set(entry["sets"].get(name, {}).get("sides", {}))


def run_unit(args, entry: dict, name: str, folder: str, space, sets: list[str], seeds: list[dict]) -> None:
    """Every side of one (seed, set), in the seed's order, in one sitting (so their calibration epochs compare), on
    the split ``run --seed`` makes of ``folder``; recorded after every side, so a run stopped early keeps the sides
    it finished."""
    from bench.results import machine, now, stamp
    from lungsearch.data import load_test

    seed = entry["seed"]
    data = load_arrays(folder, args.image_size, None, seed, color_mode=space.color_mode)
    test = load_test(folder, image_size=args.image_size, color_mode=space.color_mode, class_names=tuple(data.class_names), seed=seed)
    print(f"seed {seed} {name}: {len(data.train)} train, {len(data.val)} validation, {len(test)} test images, "
          f"{args.image_size} px {space.color_mode}, space {space.name}", flush=True)
    here = entry["sets"][name] = {"calibration_seconds": {}, "calibration_timing": CALIBRATION, "sides": {}, "paired": {},
                                  "machine": machine(), "date": now()}
    here["test"] = test_record(test.y, data.class_names)
    probs = {}  # side -> its pick's test probabilities, for the paired tests (recorded under here["test"])
    for side in entry["order"]:
        here["calibration_seconds"][side] = calibrate(data, seed)
        s = in_child(run_side, side, space.name, data, test, budget=args.budget, epochs=args.epochs, seed=seed, source=folder,
                     image_size=args.image_size, refine=args.refine)
        if s.get("_test_probs") is not None:
            probs[side] = s["_test_probs"]
            record_probs(here["test"], side, s["_test_probs"])
        s = {k: v for k, v in s.items() if k != "_test_probs"}
        s["mean_best_so_far"] = mean_best_so_far(s["curve"], args.budget)
        s["time_to"] = times_to(s["curve"], targets_for(name))
        here["sides"][side] = {**s, **stamp({"seed": seed, "data": name, "space": space.name})}
        new = paired_tests(test.y, probs, data.class_names, seed, done=here["paired"])
        here["paired"].update(new)
        pick = s["pick"] or {}
        print(f"seed {seed} {name} {s['tuner']} (calibration epoch {here['calibration_seconds'][side]} s): "
              f"{s['trials_finished']} trials, best val AUC {s['best']}, mean best-so-far {s['mean_best_so_far']}, "
              f"time to {s['time_to']}; pick {pick.get('members') or s.get('pick_trial')}: test AUC {pick.get('test_auc')} "
              f"{pick.get('test_auc_ci95')}, accuracy {pick.get('test_accuracy')} {pick.get('test_accuracy_ci95')}; "
              f"peak RSS {s.get('peak_rss_mib')} MiB"
              + (f"; {s['form']} in {s['run_seconds']} s, refine refitted {s['refine']['refitted']} of finalists "
                 f"{s['refine']['finalists']}, export {pick.get('refined') or 'top trials'}" if s.get("refine") else ""), flush=True)
        for pair, t in new.items():
            print(f"seed {seed} {name} paired test {pair}: test AUC {t['auc_a']} vs {t['auc_b']}, difference {t['difference']} "
                  f"{t['ci95']}, p {t['p']}", flush=True)
        summarise(args, sets, seeds)


def paired_from_record(unit: dict, seed: int) -> dict:
    """The paired tests of one recorded (seed, set) made again from what it recorded (``test``: the labels, class
    names and each pick's test probabilities, exactly), so its ``paired`` figures can be checked against their
    record.  Units recorded before 2026-12-07 17:00 UTC hold no ``test`` and give {}."""
    return paired_again(unit.get("test"), paired_tests, seed)


def paired_tests(y, probs: dict, class_names, seed: int, done=()) -> dict:
    """lungsearch's pick against each other side's that has one, on the same test images: a paired bootstrap of the
    test AUC difference (``lungsearch.evaluate.compare``), keyed ``lungsearch-<side>``; none of the keys in ``done``."""
    if "lungsearch" not in probs:
        return {}
    from lungsearch.evaluate import positive_class
    from lungsearch.evaluate.compare import paired_bootstrap_auc

    positive = positive_class(tuple(class_names))
    return {f"lungsearch-{side}": paired_bootstrap_auc(y, probs["lungsearch"], p, positive=positive, seed=seed)
            for side, p in probs.items() if side != "lungsearch" and f"lungsearch-{side}" not in done}


def run_side(side: str, space_name: str, data, test, *, budget: float, epochs: int, seed: int, source: str, image_size: int,
             trials: int = 1_000_000, refine: bool = False) -> dict:
    """One side's search of the space ``space_name`` (a name: a transfer space's builder does not pickle into a child
    process), its pick scored once on ``test`` (``pick``: None when it completed no trial).  lungsearch's
    is ``lungsearch run --space`` on ``source`` (``data`` is what run decodes of it), its figures read from the study,
    its pick the best trial's kept model (:data:`KEPT_PICK`) or the default export (:func:`exported_pick`).
    ``_test_probs``: the pick's probabilities on ``test``, for the paired tests (the caller records them).
    ``refine``: lungsearch's side is ``run --refine`` (its refits inside ``budget``), recorded with its wall time
    (``run_seconds``) and what refine refitted (``refine``)."""
    import spaces
    from lungsearch import train

    space = spaces.get_space(space_name)
    with tempfile.TemporaryDirectory() as folder:
        model = pick = p_test = None
        if side == "lungsearch":
            storage = f"sqlite:///{folder}/lungsearch.db"
            start = time.perf_counter()
            study = run_search(source, budget=budget, epochs=epochs, seed=seed, folder=folder, image_size=image_size, trials=trials,
                               space=space.name, color=space.color_mode, storage=storage, refine=refine)
            s = {**search_record(study, budget), "peak_rss_mib": peak_rss_mib(children=True), **feature_cache_use(study),
                 "form": form(refine), "run_seconds": round(time.perf_counter() - start, 1), **refined_facts(study, refine)}
            if space.name in KEPT_PICK:
                model = kept_model(study, s["pick_trial"])
            elif s["pick_trial"] is not None:
                pick, p_test = exported_pick(storage, study, source, test, os.path.join(folder, "export"))
        else:
            s = run_keras_tuner(side, space, data, budget=budget, epochs=epochs, seed=seed, folder=folder, keep=True)
            model, s["peak_rss_mib"] = s.pop("_model", None), peak_rss_mib()
        if model is not None:
            p_test = train.predict_proba(model, test)
            pick = score(model, data, test, p_test=p_test)
        s["pick"], s["_test_probs"] = pick, p_test
    return s


def form(refine: bool) -> str:
    """The command lungsearch's side runs, as the record says it."""
    return "run --refine" if refine else "run"


def refined_facts(study, refine: bool) -> dict:
    """What ``run --refine``'s refine did: its finalists and those refitted on every fold ({} without ``refine``)."""
    if not refine:
        return {}
    record = study.user_attrs.get("refine") or {}
    return {"refine": {"finalists": list(record.get("finalists") or []), "refitted": sorted(int(n) for n in record.get("results") or {})}}


def feature_cache_use(study) -> dict:
    """How many of a study's trials trained a frozen phase on cached features, and whether the first of them found
    its features already in the cache (from an earlier run on the same images: the one pass it saves is then not in
    this side's budget); {} where none did (the cnn space)."""
    from search.objective import FEATURES_ATTR

    used = [t.user_attrs[FEATURES_ATTR] for t in sorted(study.trials, key=lambda t: t.number) if t.user_attrs.get(FEATURES_ATTR)]
    return {"feature_cache": {"trials": len(used), "first_from_cache": bool(used[0].get("from_cache"))}} if used else {}


def exported_pick(storage: str, study, source: str, test, out: str):
    """lungsearch's default export of ``study`` (``lungsearch best --export`` with no other flag: what a user ships,
    the best trials' kept models averaged as ``best`` does by default, its threshold chosen on validation), scored
    once on the test split by ``best`` itself; and its test probabilities, on the images the other sides are scored
    on (``test``).  (pick, probabilities)."""
    import json

    import numpy as np

    picked = export(storage, out)
    y, p_test, _ = test_probs(os.path.join(out, "model.keras"), source, study)
    if not np.array_equal(y, test.y):
        raise RuntimeError(f"lungsearch's export was scored on other test images ({len(y)}) than the other sides ({len(test.y)})")
    with open(os.path.join(out, "model.json")) as fh:
        meta = json.load(fh)
    auc, accuracy = picked["test"]["roc_auc"], picked["test"]["accuracy"]
    refined = meta.get("refined") or {}
    members = ([int(n) for n in refined.get("weights") or {}] or [e["trial"] for e in meta.get("ensemble") or []]
               or [picked["trial"]])
    return {"exported": "lungsearch best --export", "trial": picked["trial"], "members": members,
            **({"refined": refined["rule"]} if refined else {}),
            "threshold": meta["decision"].get("threshold"), "val_auc": picked["val_auc"],
            "test_auc": round(auc["value"], 5), "test_auc_ci95": [round(v, 5) for v in auc["ci95"]],
            "test_accuracy": round(accuracy["value"], 5), "test_accuracy_ci95": [round(v, 5) for v in accuracy["ci95"]]}, p_test


def kept_model(study, number: int | None):
    """The model ``run`` kept for trial ``number``, as ``best`` exports it (augmentation off); None without one."""
    if number is None:
        return None
    import keras

    from search.keep import model_file
    from spaces import augment

    path = model_file(study, study.trials[number])
    if path is None:
        return None
    augment.register()  # a kept model may hold RandomAffine
    with tempfile.TemporaryDirectory() as tmp:
        named = os.path.join(tmp, "kept.keras")  # Keras reads the format from the name; a kept artifact has none
        shutil.copyfile(path, named)
        return augment.inference_model(keras.models.load_model(named, compile=False))


def summarise(args, sets: list[str], seeds: list[dict]) -> dict:
    """The figures of the seeds and sides run so far (``--resume``: kept ones too); recorded unless ``--no-record``."""
    sides = args.tuners.split(",")
    complete = all(done(e, n, sides) for e in seeds for n in sets)
    seeds = [e for e in seeds if e["sets"]]  # the seeds with something run
    figures = {"reduced": args.reduced, "space": args.space, **settings(args, sets), "all_run": complete,
               "targets": {n: list(targets_for(n)) for n in sets},
               "seeds": seeds, "sets": {n: summarise_set(n, seeds) for n in sets}}
    if not args.no_record:
        from bench.results import record

        record(key_for(args.space, args.refine), figures)
    return figures


def key_for(space: str, refine: bool = False) -> str:
    """Where a space's record goes in bench/results.json (before ``reduced_key``): the cnn space's under the key this
    bench always wrote, every other's under its own, and with ``--refine`` under its own with ``_refine`` (so neither
    form's ``--resume`` meets the other's record)."""
    return KEY if space == "cnn" else f"{KEY}_{space}" + ("_refine" if refine else "")


def _as_curve(side: dict) -> Curve:
    curve = Curve(float("inf"))
    curve.points = [tuple(p) for p in side["curve"]]
    return curve


if __name__ == "__main__":
    main()
