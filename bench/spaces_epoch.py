"""Parameter count, FLOPs and seconds per training epoch of each space at its default input size.

    python -m bench.spaces_epoch [--data ../shared/data/chest_xray] [--per-class 128] [SPACE ...]

Each space is built from one fixed, mid-range trial (transfer spaces: frozen
backbone, no fine-tune phase, random weights since this machine cannot fetch
ImageNet's), on the first ``--per-class`` images of each train class.  One
warm-up batch traces the graph; then one epoch is timed, validation excluded.
Figures go to bench/results.json under "spaces_epoch".
"""

from __future__ import annotations

import argparse
import os
import time

from bench.harness import DATA_ROOT, FIXED

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

TRANSFER = {"trainable_blocks": 0, "head_batch_norm": True, "head_dropout": 0.3, "head_units": 128,
            "optimizer": "adam", "learning_rate": 1e-3, "fine_tune": False, "batch_size": 32}


def main() -> None:
    import numpy as np
    import keras
    import optuna

    import spaces
    from bench.results import below_defaults, record
    from lungsearch.data import decode, scan
    from spaces.flops import count_flops

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=os.path.join(DATA_ROOT, "chest_xray"))
    parser.add_argument("--per-class", type=int, default=128)
    parser.add_argument("names", nargs="*", default=spaces.list_spaces())
    args = parser.parse_args()

    per_class = scan(args.data)["train"]
    paths = [p for name in sorted(per_class) for p in per_class[name][: args.per_class]]
    labels = np.array([i for i, name in enumerate(sorted(per_class)) for _ in per_class[name][: args.per_class]])
    figures = {"reduced": below_defaults(parser, args, "per_class", "names"), "subset": f"first {args.per_class} images of each train class of {os.path.normpath(args.data)} ({len(paths)} images)"}
    for name in args.names:
        space = spaces.get_space(name)
        size = space.image_size
        x = np.stack([decode(p, size, space.color_mode) for p in paths]).astype("float32")
        keras.backend.clear_session(free_memory=True)
        keras.utils.set_random_seed(0)
        params = FIXED.get(name, TRANSFER)
        model = space.build(optuna.trial.FixedTrial(space.fixed_params(params)), input_shape=x.shape[1:], num_classes=2, weights="random")
        batch = params["batch_size"]
        model.fit(x[:batch], labels[:batch], epochs=1, batch_size=batch, verbose=0)  # trace once
        start = time.perf_counter()
        model.fit(x, labels, epochs=1, batch_size=batch, shuffle=True, verbose=0)
        seconds = time.perf_counter() - start
        figures[name] = {
            "image_size": size,
            "param_count": int(model.count_params()),
            "trainable_params": int(sum(np.prod(w.shape) for w in model.trainable_weights)),
            "gflops_per_image": round(count_flops(model) / 1e9, 3),
            "seconds_per_epoch": round(seconds, 1),
            "trial": params,
        }
        print(f"{name:<13} {size}px  params {figures[name]['param_count']:>11,}  trainable {figures[name]['trainable_params']:>10,}  "
              f"GFLOPs/image {figures[name]['gflops_per_image']:>7}  {seconds:7.1f} s/epoch of {len(paths)} images", flush=True)
    record("spaces_epoch", figures)


if __name__ == "__main__":
    main()
