"""Peak RSS per trial across a long in-process search: does memory stay flat?

Keras/TensorFlow are known to grow across ``fit`` calls in one process
(optuna#1178, tensorflow#61791).  This runs ``--trials`` trials of a space in
ONE process through the real objective and trial loop, and records each
trial's peak RSS (VmHWM, reset before every trial) and the RSS after it.
Target: the last trial's peak within 10% of the fifth's.

    python -m bench.memory                      # 30 trials, demo data, 64 px, 1 epoch
    python -m bench.memory --trials 10 --image-size 32   # quicker
    python -m bench.memory --recycle 10         # a fresh process every 10 trials
"""

from __future__ import annotations

import argparse
import gc
import os
import tempfile

from bench.results import below_defaults

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def status_kb(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status (Linux only)")


def _reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as fh:  # "5" resets VmHWM to the current RSS
        fh.write("5")


def _run_trials(args, url: str, count: int, queue) -> None:
    """Run ``count`` more trials of the bench study in this process; put (peaks, afters) on ``queue``."""
    import functools

    import optuna

    import search
    from lungsearch import data as data_mod
    from lungsearch import train
    from spaces import get_space

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = get_space(args.space)
    data = data_mod.load_search_data("demo", image_size=args.image_size, color_mode=space.color_mode)
    study = optuna.load_study(study_name="memory", storage=search.open_storage(url),
                              sampler=optuna.samplers.RandomSampler(seed=0), pruner=optuna.pruners.NopPruner())
    peaks, after = [], []

    def measure(study, trial):
        peaks.append(status_kb("VmHWM") / 1024)
        after.append(status_kb("VmRSS") / 1024)
        print(f"trial {trial.number:>3} {trial.state.name:<8} peak {peaks[-1]:7.1f} MiB  after {after[-1]:7.1f} MiB  "
              f"(pid {os.getpid()})", flush=True)
        if not args.vary and len(study.trials) < args.trials:
            study.enqueue_trial(study.trials[0].params)  # the same model again: any growth is a leak
        gc.collect()
        _reset_peak()

    objective = search.Objective(
        space, input_shape=data.input_shape, num_classes=len(data.class_names), seed=0,
        fit=functools.partial(train.fit, data=data, epochs=args.epochs),
    )
    _reset_peak()
    done = search.count_finished(study)
    search.run_trials(study, objective, total=min(args.trials, done + count), callbacks=[measure])
    queue.put((peaks, after))


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=30)
    ap.add_argument("--space", default="cnn")
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--recycle", type=int, default=0,
                    help="run every K trials in a fresh process, as `lungsearch run --recycle K` does (0: one process)")
    ap.add_argument("--vary", action="store_true",
                    help="sample new parameters every trial (default: repeat trial 0's, so growth is not mistaken for a bigger model)")
    ap.add_argument("--no-record", action="store_true", help="print only; leave bench/results.json alone")
    args = ap.parse_args(argv)

    import multiprocessing as mp
    import queue as queue_mod

    import optuna

    import search

    peaks, after = [], []
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/memory.db"
        optuna.create_study(storage=search.open_storage(url), study_name="memory", direction="maximize")
        if args.recycle:
            ctx = mp.get_context("spawn")
            while len(peaks) < args.trials:
                q = ctx.Queue()
                proc = ctx.Process(target=_run_trials, args=(args, url, args.recycle, q))
                proc.start()
                p, a = q.get()
                proc.join()
                peaks += p
                after += a
        else:
            q = queue_mod.Queue()
            _run_trials(args, url, args.trials, q)
            peaks, after = q.get()

    fifth, last = peaks[min(4, len(peaks) - 1)], peaks[-1]
    figures = {
        "trials": len(peaks), "space": args.space, "image_size": args.image_size, "epochs": args.epochs,
        "recycle": args.recycle, "same_params": not args.vary, "backend": os.environ.get("KERAS_BACKEND", "tensorflow"),
        "peak_rss_mib": [round(p, 1) for p in peaks],
        "rss_after_mib": [round(a, 1) for a in after],
        "fifth_peak_mib": round(fifth, 1), "last_peak_mib": round(last, 1),
        "last_over_fifth": round(last / fifth, 3),
        "reduced": below_defaults(ap, args, "trials", "image_size", "epochs"),
    }
    print(f"peak RSS (recycle {args.recycle or 'off'}): trial 1 {peaks[0]:.0f} MiB, trial 5 {fifth:.0f} MiB, "
          f"trial {len(peaks)} {last:.0f} MiB (last/fifth = {last / fifth:.3f}; target <= 1.10)")
    if not args.no_record:
        from bench.results import record

        record("memory" if not args.recycle else f"memory_recycle_{args.recycle}", figures)
    return figures


if __name__ == "__main__":
    main()
