"""lungsearch's default search against keras-tuner Hyperband and RandomSearch, same space, data, budget and epoch cap.

    python -m bench.search_vs_keras_tuner                          # 30 minutes per side, chest_xray, 64 px
    python -m bench.search_vs_keras_tuner --budget 300 --epochs 5  # a reduced run

The cnn space is given to keras-tuner through a tiny adapter: an object with
Optuna's ``suggest_int``/``suggest_float``/``suggest_categorical`` that
forwards each call to keras-tuner's ``hp.Int``/``hp.Float``/``hp.Choice`` with
the same name, range and log scale, so ``spaces.cnn.build`` and
``fit_options`` run unchanged on both sides: the same ranges, no copy of them.

Both sides train on the same arrays (``lungsearch.data.load_search_data``,
patient-disjoint validation) and measure validation AUC once per epoch with
``lungsearch.train.validation_metrics``.  Each side gets ``--budget`` seconds
of wall time (epochs ending past it are not counted, and the side stops); the
sides run one after the other in this process.  The curve of each side is the
best validation AUC seen at any epoch so far, against seconds since its start.

time_ratio = seconds lungsearch needs to reach keras-tuner Hyperband's final
best / seconds Hyperband needed to reach it (None when lungsearch never
reaches it).  Goal: <= 0.5, and lungsearch's final best >= keras-tuner's.
Use 64 px or more: at 32 px the cnn space's 5-block trials cannot be built,
which keras-tuner counts as failed trials.  Key ``search_vs_keras_tuner``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


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
        return self.hp.Choice(name, list(choices))


def run_lungsearch(space, data, *, budget: float, epochs: int, seed: int, folder: str, pruner: str | None = None) -> dict:
    """The in-process lungsearch search (Objective + train.fit on SQLite), lungsearch's default sampler and pruner unless given."""
    import optuna

    import search
    from lungsearch import train
    from lungsearch.config import RunConfig

    defaults = RunConfig()
    pruner = pruner or defaults.pruner
    curve = Curve(budget)

    def fit(model, *, on_epoch, **kwargs):
        def seen(epoch, logs):
            if curve.over():
                raise OutOfBudget
            curve.add(logs.get("val_auc", float("nan")))
            on_epoch(epoch, logs)

        return train.fit(model, data=data, epochs=epochs, on_epoch=seen, monitor=defaults.metric, **kwargs)

    study = optuna.create_study(
        storage=search.open_storage(f"sqlite:///{folder}/lungsearch-{pruner}.db", heartbeat=None), direction="maximize",
        sampler=search.make_sampler(defaults.sampler, seed), pruner=search.make_pruner(pruner, seed))
    objective = search.Objective(space, input_shape=data.input_shape, num_classes=len(data.class_names), fit=fit,
                                 metric=defaults.metric, seed=seed)
    curve.start = time.perf_counter()
    try:
        study.optimize(objective, timeout=budget)
    except OutOfBudget:
        pass
    finished = search.count_finished(study)
    selected = study.best_value if finished else None
    states = [t.state.name for t in study.trials]
    return {"tuner": f"lungsearch {defaults.sampler}+{pruner}", "trials_finished": finished,
            "complete": states.count("COMPLETE"), "pruned": states.count("PRUNED"), "seconds": round(min(curve.elapsed(), budget), 1),
            "best": curve.best(), "selected_best": selected, "curve": curve.running_best()}


def run_keras_tuner(kind: str, space, data, *, budget: float, epochs: int, seed: int, folder: str) -> dict:
    import keras
    import keras_tuner as kt

    from lungsearch.train import validation_metrics

    curve = Curve(budget)
    val = data.val

    class Measure(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            metrics = validation_metrics(self.model.predict(val.x, batch_size=256, verbose=0), val.y)
            if logs is not None:
                logs.update(metrics)  # keras-tuner's objective and History read val_auc from here
            curve.add(metrics["val_auc"])
            if curve.over():
                self.model.stop_training = True

    class Space(kt.HyperModel):
        def build(self, hp):
            keras.backend.clear_session(free_memory=True)
            return space.build(HpTrial(hp), input_shape=data.input_shape, num_classes=len(data.class_names))

        def fit(self, hp, model, *args, **kwargs):
            return model.fit(*args, batch_size=space.fit_options(HpTrial(hp))["batch_size"], **kwargs)

    def stop_when_spent(self):
        if curve.over():
            raise OutOfBudget

    common = dict(objective=kt.Objective("val_auc", direction="max"), seed=seed, directory=folder,
                  project_name=kind, overwrite=True, max_consecutive_failed_trials=10_000)
    if kind == "hyperband":
        base = kt.Hyperband
        tuner_args = dict(max_epochs=epochs, factor=3, hyperband_iterations=10_000)
    else:
        base = kt.RandomSearch
        tuner_args = dict(max_trials=10_000)
    tuner = type(f"Budgeted{base.__name__}", (base,), {"pre_create_trial": stop_when_spent})(Space(), **common, **tuner_args)
    curve.start = time.perf_counter()
    try:
        tuner.search(data.train.x, data.train.y, epochs=epochs, callbacks=[Measure()], shuffle=True, verbose=0)
    except OutOfBudget:
        pass
    trials = tuner.oracle.trials.values()
    scores = [t.score for t in trials if t.score is not None]
    return {"tuner": f"keras-tuner {base.__name__}", "trials_finished": sum(t.status == "COMPLETED" for t in trials),
            "best": curve.best(), "selected_best": max(scores, default=None), "curve": curve.running_best()}


def main(argv=None) -> dict:
    import optuna

    import spaces
    from bench.overhead import SHARED, load
    from bench.results import below_defaults

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=os.path.normpath(SHARED), help="image folder or 'demo' (default: ../shared/data/chest_xray)")
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--budget", type=float, default=1800, help="wall seconds per side (default 1800)")
    ap.add_argument("--epochs", type=int, default=10, help="epoch cap per trial, both sides (default: lungsearch's 10)")
    ap.add_argument("--train-limit", type=int, default=None, help="train on this many images (validation whole)")
    ap.add_argument("--tuners", default="lungsearch,hyperband,random", help="comma-separated sides to run")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-record", action="store_true")
    args = ap.parse_args(argv)
    # the comparison is 30 minutes per side, 10 epochs, all of train, every tuner; less does not meet it
    args.reduced = below_defaults(ap, args, "budget", "epochs", "train_limit", "tuners")
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    space = spaces.get_space("cnn")
    data = load(args.data, args.image_size, args.train_limit, args.seed)
    print(f"{len(data.train)} train, {len(data.val)} validation images, {args.image_size} px, "
          f"{args.budget:.0f} s per side, at most {args.epochs} epochs per trial", flush=True)
    sides = {}
    with tempfile.TemporaryDirectory() as folder:
        for name in args.tuners.split(","):
            if name == "lungsearch":
                sides[name] = run_lungsearch(space, data, budget=args.budget, epochs=args.epochs, seed=args.seed, folder=folder)
            else:
                sides[name] = run_keras_tuner(name, space, data, budget=args.budget, epochs=args.epochs, seed=args.seed, folder=folder)
            s = sides[name]
            print(f"{s['tuner']}: {s['trials_finished']} trials, best val AUC seen {s['best']}, selected {s['selected_best']}; "
                  f"curve {s['curve']}", flush=True)
            # recorded after every side, so a run stopped early keeps the sides it finished
            figures = summarise(args, data, sides, complete=len(sides) == len(args.tuners.split(",")))
    print({k: v for k, v in figures.items() if k != "sides"})
    return figures


def summarise(args, data, sides: dict, *, complete: bool) -> dict:
    """The figures of the sides run so far; recorded unless ``--no-record``."""
    figures = {"reduced": args.reduced,
               "data": args.data, "image_size": args.image_size, "budget_seconds": args.budget, "epochs": args.epochs,
               "train_images": len(data.train), "val_images": len(data.val), "sides_run": list(sides),
               "all_sides_run": complete, "sides": sides}
    ls, hb = sides.get("lungsearch"), sides.get("hyperband")
    kt_bests = [s["best"] for n, s in sides.items() if n != "lungsearch" and s["best"] is not None]
    if ls and kt_bests:
        figures["lungsearch_best"], figures["keras_tuner_best"] = ls["best"], max(kt_bests)
        figures["best_goal_met"] = ls["best"] is not None and ls["best"] >= max(kt_bests)
    if ls and hb and hb["best"] is not None:
        t_ls, t_hb = Curve.time_to(_as_curve(ls), hb["best"]), Curve.time_to(_as_curve(hb), hb["best"])
        figures["time_ratio"] = None if t_ls is None else round(t_ls / max(t_hb, 1e-9), 3)
        figures["time_goal_met"] = figures["time_ratio"] is not None and figures["time_ratio"] <= 0.5
    if not args.no_record:
        from bench.results import record

        record("search_vs_keras_tuner", figures)
    return figures


def _as_curve(side: dict) -> Curve:
    curve = Curve(float("inf"))
    curve.points = [tuple(p) for p in side["curve"]]
    return curve


if __name__ == "__main__":
    main()
