"""Harness overhead: one epoch inside a real lungsearch trial against a bare ``model.fit`` epoch.

    python -m bench.overhead                                   # chest_xray, 64 px, 5 repeats
    python -m bench.overhead --data demo --image-size 32       # quick
    python -m bench.overhead --train-limit 1024 --repeats 3    # fewer training images

Both sides train the same cnn model (one fixed trial, same seed) for one epoch
on the same arrays (``lungsearch.data.load_search_data``: train and the
patient-disjoint validation):

* lungsearch: a SQLite study, the trial enqueued with those parameters, run by
  ``search.Objective`` with ``lungsearch.train.fit`` (validation metrics via
  scikit-learn, plateau callbacks, ``trial.report``/pruning, user attrs).
* bare: ``keras.backend.clear_session``, the same build, then
  ``model.fit(..., epochs=1, class_weight=..., validation_data=val)``, as one
  would write by hand (the same balanced class weights as ``train.fit``).

Each side is timed whole (build + epoch + validation + storage writes), and
the fit alone.  The sides alternate (A B B A ...) after one untimed warm-up of
each; the figure is the median of the per-pair ratios.  Key ``overhead``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

from bench.harness import DATA_ROOT, FIXED, load_arrays

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def lungsearch_trial(space, params: dict, data, folder: str, index: int) -> tuple[float, float]:
    """Seconds of one whole 1-epoch trial through Objective + train.fit on SQLite, and of its fit alone."""
    import optuna

    import search
    from lungsearch import train

    storage = search.open_storage(f"sqlite:///{folder}/overhead{index}.db", heartbeat=None)
    study = optuna.create_study(storage=storage, direction="maximize", study_name="overhead",
                                sampler=search.make_sampler("tpe", 0), pruner=search.make_pruner("median", 0))
    study.enqueue_trial(params)
    timed = {}

    def fit(model, **kwargs):
        start = time.perf_counter()
        try:
            return train.fit(model, data=data, epochs=1, **kwargs)
        finally:
            timed["fit"] = time.perf_counter() - start

    objective = search.Objective(space, input_shape=data.input_shape, num_classes=len(data.class_names), fit=fit, seed=0)
    start = time.perf_counter()
    study.optimize(objective, n_trials=1)
    seconds = time.perf_counter() - start
    state = study.trials[-1].state
    if state != optuna.trial.TrialState.COMPLETE:
        raise SystemExit(f"the lungsearch trial ended {state.name}, not COMPLETE")
    return seconds, timed["fit"]


def bare_epoch(space, params: dict, data) -> tuple[float, float]:
    """Seconds of the same build + one bare model.fit epoch with validation_data, and of the fit alone."""
    import keras
    import optuna

    from lungsearch.train import class_weights

    weights = class_weights(data.train.y, len(data.class_names))  # as train.fit weighs them: the model's training, not the harness
    start = time.perf_counter()
    keras.backend.clear_session(free_memory=True)
    keras.utils.set_random_seed(0)
    model = space.build(optuna.trial.FixedTrial(params), input_shape=data.input_shape, num_classes=len(data.class_names))
    fit_start = time.perf_counter()
    model.fit(data.train.x, data.train.y, epochs=1, batch_size=params["batch_size"], shuffle=True, verbose=0,
              class_weight=weights, validation_data=(data.val.x, data.val.y))
    end = time.perf_counter()
    return end - start, end - fit_start


def main(argv=None) -> dict:
    import optuna

    import spaces
    from bench.results import below_defaults

    optuna.logging.set_verbosity(optuna.logging.WARNING)

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=os.path.join(DATA_ROOT, "chest_xray"), help="image folder or 'demo' (default: ../shared/data/chest_xray)")
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--train-limit", type=int, default=None, help="train on this many images (validation whole)")
    ap.add_argument("--repeats", type=int, default=5, help="timed pairs after one warm-up pair")
    ap.add_argument("--no-record", action="store_true")
    args = ap.parse_args(argv)

    space = spaces.get_space("cnn")
    params = FIXED["cnn"]
    data = load_arrays(args.data, args.image_size, args.train_limit)
    print(f"{len(data.train)} train, {len(data.val)} validation images, {args.image_size} px; cnn trial {params}", flush=True)
    runs = {"lungsearch": [], "bare": []}
    with tempfile.TemporaryDirectory() as folder:
        lungsearch_trial(space, params, data, folder, -1)  # warm-up: imports, first tracing
        bare_epoch(space, params, data)
        for i in range(args.repeats):
            order = ("lungsearch", "bare") if i % 2 == 0 else ("bare", "lungsearch")
            for side in order:
                runs[side].append(lungsearch_trial(space, params, data, folder, i) if side == "lungsearch" else bare_epoch(space, params, data))
            (whole_l, fit_l), (whole_b, fit_b) = runs["lungsearch"][-1], runs["bare"][-1]
            print(f"pair {i + 1}: lungsearch {whole_l:.2f} s (fit {fit_l:.2f}), bare {whole_b:.2f} s (fit {fit_b:.2f}), "
                  f"ratio {whole_l / whole_b:.3f}", flush=True)
    ratios = [l[0] / b[0] for l, b in zip(runs["lungsearch"], runs["bare"])]
    fit_ratios = [l[1] / b[1] for l, b in zip(runs["lungsearch"], runs["bare"])]
    epoch_ratio, fit_ratio = statistics.median(ratios), statistics.median(fit_ratios)
    print(f"one-epoch trial / bare epoch, median of {args.repeats}: {epoch_ratio:.3f} (fit alone: {fit_ratio:.3f}); goal <= 1.03")
    figures = {
        "epoch_ratio": round(epoch_ratio, 4), "fit_ratio": round(fit_ratio, 4), "goal_met": epoch_ratio <= 1.03,
        "data": args.data, "image_size": args.image_size, "train_images": len(data.train), "val_images": len(data.val),
        "repeats": args.repeats, "trial": params,
        "reduced": below_defaults(ap, args, "image_size", "train_limit", "repeats") or args.data == "demo",
        "raw_seconds": {side: [[round(a, 3), round(b, 3)] for a, b in rs] for side, rs in runs.items()},
        "raw_note": "per pair: [whole trial or build+fit, fit alone]",
    }
    if not args.no_record:
        from bench.results import record

        record("overhead", figures)
    return figures


if __name__ == "__main__":
    main()
