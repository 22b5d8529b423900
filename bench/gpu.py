"""The GPU path: training throughput of the cnn space, and a long search exported and evaluated.

    python -m bench.gpu throughput                      # images/s here (GPU if Keras sees one), and the CPU beside it
    python -m bench.gpu throughput --no-cpu             # this machine only (what a 2-core CPU machine records)
    python -m bench.gpu search --data DIR --storage sqlite:///gpu.db --trials 100 --budget 540
    python -m bench.gpu search ... --evaluate           # once the study holds its trials: best --export, test metrics

Backend-neutral: the same Keras 3 code runs on TensorFlow (the CPU machines
here) and on PyTorch or JAX (``KERAS_BACKEND``) on a GPU machine.

* ``throughput``: the cnn space's fixed mid-range trial (``bench.harness.FIXED``)
  trained with ``model.fit`` on random uint8 images at 128 px (content does
  not change the arithmetic), one untimed warm-up epoch, then ``--epochs``
  timed epochs: training images per second.  Unless ``--no-cpu``, the same
  measurement runs again in a child process that sees no GPU, so the
  GPU / CPU ratio is taken side by side on one machine in one invocation.
* ``search``: runs (or resumes) ``lungsearch run --space cnn`` towards
  ``--trials`` for at most ``--budget`` seconds, so a search longer than one
  command's limit can be run in pieces on one storage; with ``--evaluate``,
  ``lungsearch best --export`` reads the test split once and the test metrics
  are recorded.

Every part is merged into key ``gpu`` of bench/results.json (``throughput_<gpu|cpu>_<backend>``,
``search``; ``_reduced`` appended for a run below the defaults), each with its own command, machine and date.  Goal (issue 7):
test accuracy >= 0.95 and AUC >= 0.98 after a 100-trial search at 128 px or more.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

GOAL = {"accuracy": 0.95, "roc_auc": 0.98}
METRICS = ("accuracy", "sensitivity", "specificity", "roc_auc", "balanced_accuracy")


def device_name() -> str:
    """What Keras trains on here: the GPU's name, or 'cpu'."""
    import keras

    backend = keras.backend.backend()
    if backend == "torch":
        import torch

        return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    if backend == "jax":
        import jax

        devices = jax.devices()
        return devices[0].device_kind if devices[0].platform == "gpu" else "cpu"
    if backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        return gpus[0].name if gpus else "cpu"
    return "cpu"


def images_per_second(image_size: int, images: int, epochs: int, batch_size: int | None) -> dict:
    """Training images per second of the fixed cnn trial on random images; one warm-up epoch first."""
    import keras
    import numpy as np
    import optuna

    import spaces
    from bench.harness import FIXED

    params = dict(FIXED["cnn"], **({"batch_size": batch_size} if batch_size else {}))
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(images, image_size, image_size, 1), dtype=np.uint8)
    y = rng.integers(0, 2, size=images).astype("int64")
    keras.utils.set_random_seed(0)
    model = spaces.get_space("cnn").build(optuna.trial.FixedTrial(params), input_shape=x.shape[1:], num_classes=2)
    model.fit(x, y, epochs=1, batch_size=params["batch_size"], verbose=0)  # warm-up: tracing, allocator, kernels
    start = time.perf_counter()
    model.fit(x, y, epochs=epochs, batch_size=params["batch_size"], shuffle=True, verbose=0)
    seconds = time.perf_counter() - start
    return {"device": device_name(), "backend": keras.backend.backend(), "image_size": image_size,
            "images": images, "epochs": epochs, "batch_size": params["batch_size"], "seconds": round(seconds, 2),
            "images_per_second": round(images * epochs / seconds, 1)}


def record_part(part: str, figures: dict) -> dict:
    """Merge ``figures`` (with this command, machine and date, paths relative) into key ``gpu`` under ``part``
    (``part_reduced`` for a reduced run, as ``bench.results.record`` does for keys)."""
    import shlex

    from bench.results import load, reduced_key, stamp, write

    entry = load().get("gpu", {})
    part = reduced_key(part, figures)
    entry[part] = stamp(figures, command="python -m bench.gpu " + " ".join(shlex.quote(a) for a in sys.argv[1:]))
    write("gpu", entry)
    return entry[part]


def throughput(args) -> dict:
    here = images_per_second(args.image_size, args.images, args.epochs, args.batch_size)
    print(f"{here['device']} ({here['backend']}): {here['images_per_second']:.0f} training images/s "
          f"({args.images} images x {args.epochs} epochs, {args.image_size} px, batch {here['batch_size']})", flush=True)
    figures = {"here": here, "reduced": args.reduced}
    if not args.no_cpu and here["device"] != "cpu":
        child = [sys.executable, "-m", "bench.gpu", "throughput", "--no-cpu", "--no-record", "--json",
                 "--image-size", str(args.image_size), "--images", str(args.cpu_images or args.images),
                 "--epochs", str(args.epochs)] + (["--batch-size", str(args.batch_size)] if args.batch_size else [])
        env = dict(os.environ, CUDA_VISIBLE_DEVICES="", JAX_PLATFORMS="cpu")
        done = subprocess.run(child, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"the CPU side failed: {done.stderr[-2000:]}")
        cpu = json.loads(done.stdout.strip().splitlines()[-1])["here"]
        figures["cpu_same_machine"] = cpu
        figures["gpu_over_cpu"] = round(here["images_per_second"] / cpu["images_per_second"], 2)
        print(f"cpu ({cpu['backend']}, {os.cpu_count()} cores): {cpu['images_per_second']:.0f} images/s; "
              f"GPU / CPU on this machine: {figures['gpu_over_cpu']:.1f}x", flush=True)
    if args.json:
        print(json.dumps(figures))
    if not args.no_record:
        where = "gpu" if here["device"] != "cpu" else "cpu"
        record_part(f"throughput_{where}_{here['backend']}", figures)
    return figures


def lungsearch(*args: str) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "lungsearch", *args], text=True)
    if done.returncode != 0:
        raise SystemExit(f"lungsearch {' '.join(args)} failed ({done.returncode})")
    return done


def run_search(args) -> dict:
    import optuna

    import search

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    run = ["run", "--data", args.data, "--space", "cnn", "--trials", str(args.trials), "--storage", args.storage,
           "--image-size", str(args.image_size), "--workers", str(args.workers)]
    if args.epochs:
        run += ["--epochs", str(args.epochs)]
    if args.budget:
        run += ["--timeout", str(args.budget)]
    start = time.perf_counter()
    if not args.evaluate_only:
        lungsearch(*run)
    seconds = time.perf_counter() - start
    study = search.load_study(search.open_storage(args.storage, heartbeat=None), None)
    states = {}
    for t in study.trials:
        states[t.state.name] = states.get(t.state.name, 0) + 1
    finished = search.count_finished(study)
    train_seconds = sum(t.user_attrs.get("train_seconds", 0) for t in study.trials)
    print(f"{finished} of {args.trials} trials finished ({states}); this piece {seconds:.0f} s; "
          f"best validation AUC {study.best_value:.4f} (trial {study.best_trial.number})", flush=True)
    figures = {"reduced": args.reduced, "data": args.data, "image_size": args.image_size, "trials_target": args.trials, "trials": states,
               "trials_finished": finished, "workers": args.workers, "epochs": args.epochs,
               "train_seconds_total": round(train_seconds, 1), "best_val_auc": round(study.best_value, 4),
               "best_trial": study.best_trial.number, "best_params": study.best_trial.params}
    if not (args.evaluate or args.evaluate_only):
        return figures
    os.makedirs(args.out, exist_ok=True)
    model = os.path.join(args.out, "model.keras")
    lungsearch("best", "--storage", args.storage, "--export", model, "--out", args.out)
    with open(os.path.join(args.out, "evaluation.json")) as fh:
        evaluation = json.load(fh)
    with open(os.path.join(args.out, "model.json")) as fh:  # best's default: the 3 best averaged where they are kept
        exported = [m["trial"] for m in json.load(fh).get("ensemble", [])] or [evaluation["trial"]]
    metrics = evaluation["test"]["metrics"]
    test = {k: metrics[k] for k in METRICS if k in metrics}
    for k, m in test.items():
        lo, hi = m.get("ci95", (float("nan"), float("nan")))
        print(f"  test {k:<18} {m['value']:.3f} [{lo:.3f}, {hi:.3f}]", flush=True)
    acc, auc = test["accuracy"]["value"], test.get("roc_auc", {}).get("value")
    figures.update({"test": test, "test_accuracy": acc, "test_auc": auc, "goal": GOAL,
                    "goal_met": acc >= GOAL["accuracy"] and (auc or 0) >= GOAL["roc_auc"],
                    "decision": evaluation.get("decision"), "exported_trials": exported})
    import keras

    figures["device"], figures["backend"] = device_name(), keras.backend.backend()
    if not args.no_record:
        record_part("search", figures)
    return figures


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="what", required=True)
    t = sub.add_parser("throughput", help="training images/s of the cnn space here (and on this machine's CPU)")
    t.add_argument("--image-size", type=int, default=128)
    t.add_argument("--images", type=int, default=4096)
    t.add_argument("--cpu-images", type=int, default=None, help="images for the CPU side (default --images)")
    t.add_argument("--epochs", type=int, default=3)
    t.add_argument("--batch-size", type=int, default=None, help="default: the fixed trial's 32")
    t.add_argument("--no-cpu", action="store_true", help="skip the same-machine CPU side")
    t.add_argument("--json", action="store_true")
    t.add_argument("--no-record", action="store_true")
    s = sub.add_parser("search", help="run or resume a cnn search, optionally then best --export")
    s.add_argument("--data", required=True)
    s.add_argument("--storage", required=True)
    s.add_argument("--trials", type=int, default=100)
    s.add_argument("--image-size", type=int, default=128)
    s.add_argument("--epochs", type=int, default=None, help="default: lungsearch's")
    s.add_argument("--workers", type=int, default=1)
    s.add_argument("--budget", type=float, default=None, help="seconds this piece may start trials for")
    s.add_argument("--evaluate", action="store_true", help="then best --export and record the test metrics")
    s.add_argument("--evaluate-only", action="store_true", help="skip the search, only evaluate")
    s.add_argument("--out", default="gpu_best")
    s.add_argument("--no-record", action="store_true")
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0].startswith("-") and argv[0] not in ("-h", "--help"):
        argv = ["throughput", *argv]  # `python -m bench all` runs it with no subcommand
    args = ap.parse_args(argv)
    from bench.results import below_defaults

    args.reduced = (below_defaults(t, args, "image_size", "images", "epochs") if args.what == "throughput"
                    else below_defaults(s, args, "trials", "image_size"))
    return throughput(args) if args.what == "throughput" else run_search(args)


if __name__ == "__main__":
    main()
