"""What the benches share: the data root, the ``lungsearch`` executable, child processes, calibration and spreads.

Every bench imports these from here, and no bench imports another bench as a
library except this module and ``bench.results`` (the record), so a bench can
change its own helpers without breaking another's run.  A bench that times
lungsearch's search runs ``lungsearch run`` itself, through the executable
(:func:`run_search`), and reads its figures back from the study's storage
(:func:`search_record`), never from a copy of the trial loop.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
# The real data sets (chest_xray, covid19), beside the checkout: never copied into the project
DATA_ROOT = os.path.normpath(os.path.join(HERE, "..", "..", "shared", "data"))
HAND = os.path.join(HERE, "hand_cnn.py")  # the seeds' hand-written CNN, as a space file
METRICS = ("roc_auc", "accuracy", "balanced_accuracy", "sensitivity", "specificity")
# The cnn space's switches (parameter, its value in trials that predate it, values): the best trial of
# each value of each is exported and tested after vs_hand's default search.
SWITCHES = (("augment", "on", ("on", "off")), ("normalize", "none", ("none", "image")))
# What calibration_seconds times, as each (seed, set) records it; records without it timed one cold epoch
CALIBRATION = "the second of two epochs"
FIXED = {  # one representative trial per space (every name pinned in tests/spaces/test_registry.py)
    "dense": {"dense_layers": 2, "units_l0": 128, "units_l1": 64, "activation": "relu", "dropout": 0.2,
              "optimizer": "adam", "learning_rate": 1e-3, "batch_size": 32},
    "cnn": {"conv_blocks": 4, "kernel_size": 3, "batch_norm": True, "pooling": "max", "activation": "relu",
            **{f"filters_b{i}": f for i, f in enumerate((16, 32, 64, 64))}, **{f"dropout_b{i}": 0.1 for i in range(4)},
            "head": "gap", "dropout": 0.3, "dense_units": 64, "optimizer": "adam", "learning_rate": 1e-3,
            "aug_translate": 0.05, "aug_zoom": 0.1, "aug_rotate": 0.02, "aug_contrast": 0.1, "batch_size": 32},
}


# --------------------------------------------------------------------------- data


def data_folder(name: str, work: str | None = None) -> str:
    """The folder of the data set ``name`` under :data:`DATA_ROOT`; ``covid_normal`` is made in ``work`` from covid19's
    Covid and Normal folders (links, no copies).  A missing root or set is a one-line error (``SystemExit``) saying
    where the data should be, so a bench run on a machine without it never ends in a traceback."""
    if not os.path.isdir(DATA_ROOT):
        raise SystemExit(f"the real data sets are not at {DATA_ROOT}: put chest_xray and covid19 there, "
                         "or give the bench --data where it takes one")
    if name != "covid_normal":
        folder = os.path.join(DATA_ROOT, name)
        if not os.path.isdir(folder):
            raise SystemExit(f"data set {name!r} is not in {DATA_ROOT} (it holds {', '.join(sorted(os.listdir(DATA_ROOT))) or 'nothing'})")
        return folder
    if work is None:
        raise ValueError("covid_normal is made of links in a work folder: give data_folder one")
    root = os.path.join(work, "covid_normal")
    for split in ("train", "test"):
        os.makedirs(os.path.join(root, split), exist_ok=True)
        for cls in ("Covid", "Normal"):
            link = os.path.join(root, split, cls)
            if not os.path.exists(link):
                os.symlink(os.path.join(data_folder("covid19"), split, cls), link)
    return root


def parse_sets(ap, text: str, known) -> list[str]:
    """``--sets`` as a list of known data set names; an unknown name, or no :data:`DATA_ROOT`, is a usage error."""
    sets = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in sets if s not in known]
    if unknown:
        ap.error(f"unknown data set {unknown[0]!r}; choose from {', '.join(known)}")
    if not os.path.isdir(DATA_ROOT):
        ap.error(f"the real data sets are not at {DATA_ROOT}")
    return sets


def load_arrays(source: str, image_size: int, train_limit: int | None = None, seed: int = 0, color_mode: str = "grayscale"):
    """The search data of ``source`` as ``lungsearch run --seed seed`` splits and decodes it (in ``color_mode``, the
    space's: run's ``--color``): the arrays an in-process side trains on are then the ones the executable trains on.
    ``train_limit`` keeps a seeded subset of train (validation whole)."""
    import numpy as np

    from lungsearch.data import Arrays, SearchData, load_search_data

    data = load_search_data(source, image_size=image_size, color_mode=color_mode, seed=seed)
    if train_limit and train_limit < len(data.train):
        keep = np.sort(np.random.default_rng(seed).permutation(len(data.train))[:train_limit])
        data = SearchData(data.class_names, Arrays(data.train.x[keep], data.train.y[keep]), data.val, data.info)
    return data


def limited_folder(source: str, train_limit: int | None, work: str, seed: int = 0) -> str:
    """``source`` itself, or with ``train_limit``: a folder of links in ``work`` to a seeded, per-class share of
    ``train_limit`` of its train/ images (and its test/), for benches that run the executable on fewer images.
    ``lungsearch run`` carves validation from those, so it is smaller than the whole set's."""
    if not train_limit or source == "demo":
        return source
    import numpy as np

    from lungsearch.data.layout import read_layout

    layout = read_layout(source, splits_wanted=("train",))
    total = sum(len(v) for v in layout.splits["train"].values())
    root = os.path.join(work, f"{os.path.basename(os.path.normpath(source))}-{train_limit}")
    rng = np.random.default_rng(seed)
    for cls, paths in layout.splits["train"].items():
        share = max(1, round(len(paths) * min(1.0, train_limit / total)))
        os.makedirs(os.path.join(root, "train", cls), exist_ok=True)
        for i in sorted(rng.permutation(len(paths))[:share]):
            link = os.path.join(root, "train", cls, os.path.basename(paths[i]))
            if not os.path.exists(link):
                os.symlink(paths[i], link)
    test = os.path.join(os.path.abspath(source), "test")
    if os.path.isdir(test) and not os.path.exists(os.path.join(root, "test")):
        os.symlink(test, os.path.join(root, "test"))
    return root


# --------------------------------------------------------------------------- processes


class LungsearchFailed(SystemExit):
    """A ``lungsearch`` command of a bench exited non-zero; ``error`` is the last line it wrote on stderr."""

    def __init__(self, args: tuple[str, ...], returncode: int, stderr: str):
        super().__init__(f"lungsearch {' '.join(args)} failed ({returncode}): {stderr[-2000:]}")
        self.error = (stderr.strip().splitlines() or [""])[-1]


def lungsearch(*args: str) -> str:
    """``lungsearch ARGS`` through the installed executable (the one beside this Python), as a user runs it; its
    stdout.  A failure ends the bench with the command and the end of its stderr (:class:`LungsearchFailed`)."""
    exe = shutil.which("lungsearch", path=os.path.dirname(sys.executable)) or "lungsearch"
    done = subprocess.run([exe, *args], capture_output=True, text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    if done.returncode != 0:
        raise LungsearchFailed(args, done.returncode, done.stderr)
    return done.stdout


def in_child(fn, *args, **kwargs):
    """``fn(*args, **kwargs)`` in a fresh Python process, its result (or its exception) returned here.  TensorFlow
    keeps memory from every model a process has trained (``clear_session`` does not give it all back): on covid19,
    where a trial takes seconds, one process running keras-tuner's sides one after another grew past the 24 GiB of
    the 2-core machine within its second side (seed 0, 2026-12-03).  A process per side also starts each side on
    the same footing, whatever ran before it."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(fn, *args, **kwargs).result()


def peak_rss_mib(children: bool = False) -> float:
    """Peak resident memory in MiB of this process, or (``children``) of the largest process it has waited for,
    its children's children included: in a side's own process (:func:`in_child`), that side's peak, so the
    record shows how near each side came to the machine's memory (24 GiB on the 2-core machine)."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF)
    return round(usage.ru_maxrss / 1024, 1)  # KiB on Linux


# --------------------------------------------------------------------------- figures


def rotated(sides: list[str], index: int) -> list[str]:
    """The order of the sides for the ``index``-th seed: rotated by one per seed, so each side runs first in turn."""
    k = index % len(sides)
    return list(sides[k:]) + list(sides[:k])


def spread(values) -> dict | None:
    """Median, min, max and count of the values that are not None (None when there are none)."""
    vals = [v for v in values if v is not None]
    if not vals:
        return None
    return {"median": round(statistics.median(vals), 5), "min": round(min(vals), 5), "max": round(max(vals), 5), "n": len(vals)}


def calibrate(data, seed: int = 0) -> float:
    """Seconds of one epoch of a fixed small CNN on ``data``'s train split: the same work before every side, so a
    change of machine speed between sides shows in the record.  The second of two epochs is timed: the first
    carries one-time start-up costs (the process's first fit, the model's tracing), which read as drift: on
    chest_xray at 64 px a process's first calibration took 3.1 s and its second 1.7-2.0 s (pruning seeds 0 and
    1, 2026-12-03/04), whichever side came first."""
    import keras

    keras.backend.clear_session(free_memory=True)
    keras.utils.set_random_seed(seed)
    layers = keras.layers
    model = keras.Sequential([keras.Input(data.input_shape), layers.Rescaling(1 / 255), layers.Conv2D(16, 3, activation="relu"),
                              layers.MaxPooling2D(), layers.Conv2D(32, 3, activation="relu"), layers.MaxPooling2D(),
                              layers.GlobalAveragePooling2D(), layers.Dense(len(data.class_names), activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    seconds = []

    class Clock(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            seconds.append(time.perf_counter() - self.start)

    model.fit(data.train.x, data.train.y, epochs=2, batch_size=32, verbose=0, callbacks=[Clock()])
    return round(seconds[-1], 2)


# --------------------------------------------------------------------------- lungsearch's own search


def run_search(data: str, *, budget: float, epochs: int, seed: int, folder: str, image_size: int, pruner: str | None = None,
               trials: int = 1_000_000, space: str = "cnn", color: str = "grayscale", storage: str | None = None,
               refine: bool = False):
    """``lungsearch run`` of ``space`` (in ``color``) on ``data`` for ``budget`` seconds (``--timeout``: no trial
    starts after it), run's defaults otherwise (sampler, pruner unless given, warm starts, ``--recycle``, kept models),
    on a fresh SQLite study in ``folder`` (``storage``: at that URL instead); the study, for :func:`search_record` to
    read what it did within the budget.  ``trials``: stop sooner, after that many (a test's tiny search, whatever the
    machine's load).  ``refine``: ``run --refine``, the search and then refine's refits within the one ``--timeout``."""
    from lungsearch.config import RunConfig

    pruner = pruner or RunConfig().pruner
    storage = storage or f"sqlite:///{folder}/lungsearch-{pruner}.db"
    lungsearch("run", "--data", data, "--space", space, "--image-size", str(image_size), "--color", color,
               "--epochs", str(epochs), "--seed", str(seed), "--pruner", pruner, "--timeout", str(budget),
               "--trials", str(trials), "--storage", storage, "--study", "lungsearch", "--quiet", *(["--refine"] if refine else []))
    import search

    return search.load_study(search.open_storage(storage, heartbeat=None), "lungsearch")


def search_record(study, budget: float, metric: str = "val_auc") -> dict:
    """What a lungsearch study did within its first ``budget`` seconds, from its storage: the best-so-far curve of
    ``metric`` over each trial's epochs (``(seconds, best)``; each epoch at its trial's start plus its
    ``epoch_times``), finished trials (complete or pruned, as ``--trials`` counts them), the pick (the best complete
    trial: the one ``best`` exports) and its value.  The clock starts when the first trial does; an epoch or a
    trial that ends past the budget is not counted, as if the search had been stopped there."""
    from search.objective import EPOCH_TIMES_ATTR

    started = [t for t in study.trials if t.datetime_start is not None]
    origin = min((t.datetime_start for t in started), default=None)
    at = lambda moment: (moment - origin).total_seconds()  # noqa: E731
    points = []
    for t in started:
        values, times = (t.user_attrs.get("history") or {}).get(metric, []), t.user_attrs.get(EPOCH_TIMES_ATTR, [])
        points += [(round(at(t.datetime_start) + s, 2), v) for s, v in zip(times, values)
                   if at(t.datetime_start) + s <= budget and math.isfinite(v)]
    done = [t for t in started if t.state.name in ("COMPLETE", "PRUNED") and t.datetime_complete and at(t.datetime_complete) <= budget]
    complete = [t for t in done if t.state.name == "COMPLETE"]
    pick = max((t for t in complete if math.isfinite(t.value)), key=lambda t: t.value, default=None)
    curve, best = [], -1.0
    for s, v in sorted(points):
        if v > best:
            best = v
            curve.append((s, round(float(v), 5)))
    config = study.user_attrs.get("config") or {}
    return {"tuner": f"lungsearch {config.get('sampler', 'tpe')}+{config.get('pruner', 'median')}",
            "warm_starts": [t.user_attrs["warm_start"] for t in study.trials if t.user_attrs.get("warm_start")],
            "trials_finished": len(done), "complete": len(complete), "pruned": len(done) - len(complete),
            "seconds": round(min(budget, max((at(t.datetime_complete) for t in started if t.datetime_complete), default=0.0)), 1),
            "best": curve[-1][1] if curve else None, "selected_best": None if pick is None else pick.value,
            "curve": curve, "pick_trial": None if pick is None else pick.number,
            "pick_params": None if pick is None else pick.params}


# --------------------------------------------------------------------------- lungsearch best, and what a study holds


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


def study_facts(storage: str, *, switches: bool = True) -> tuple:
    """The last study in ``storage`` and its facts: trials, complete, pruned, the best trial, whether a warm start
    won, and (``switches``) the best trial of each value of the cnn space's :data:`SWITCHES`."""
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


def test_probs(model_path: str, folder: str, study) -> tuple:
    """An exported model's probabilities on the study's test split (read here only, after the choice)."""
    import numpy as np

    from lungsearch import data as data_mod
    from lungsearch.predict import load_model

    with open(model_path[: -len(".keras")] + ".json") as fh:
        meta = json.load(fh)
    model = load_model(model_path, meta)
    config = study.user_attrs.get("config") or {}
    test = data_mod.load_test(folder, image_size=int(meta["image_size"]), color_mode=meta["color_mode"],
                              class_names=tuple(meta["class_names"]), seed=config.get("seed", 0),
                              group_pattern=study.user_attrs.get("group_pattern"), cache_dir=config.get("cache_dir"))
    return test.y, np.asarray(model.predict(test.x, batch_size=128, verbose=0)), tuple(meta["class_names"])


def test_record(y, class_names) -> dict:
    """What a bench records of its test split for its paired tests to be made again: the labels, the class names and,
    under ``probabilities``, each model's test probabilities (:func:`record_probs`), exactly."""
    return {"class_names": list(class_names), "y": [int(v) for v in y], "probabilities": {}}


def record_probs(test: dict, name: str, probs) -> None:
    """Model ``name``'s test probabilities into ``test`` (:func:`test_record`), as float64 lists: JSON keeps them exactly."""
    import numpy as np

    test["probabilities"][name] = np.asarray(probs, dtype=np.float64).tolist()


def paired_again(test: dict | None, paired_tests, seed: int) -> dict:
    """A bench's ``paired_tests(y, probs, class_names, seed)`` made again from its :func:`test_record`; {} for a record
    made before benches kept one."""
    import numpy as np

    if not test:
        return {}
    probs = {name: np.asarray(p, dtype=np.float64) for name, p in test["probabilities"].items()}
    return paired_tests(np.asarray(test["y"]), probs, test["class_names"], seed)


def side_hand(folder: str, work: str, seeds: int) -> dict:
    """The seeds' hand CNN (:data:`HAND`, nothing tuned) through ``run --trials 1 --epochs 10``, once per seed
    (``--seed`` also re-draws the validation split), each scored by ``best --export --ensemble 1``."""
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
