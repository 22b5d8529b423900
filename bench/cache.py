"""Decode-once cache: first decode vs cached load of chest_xray, side by side.

    python -m bench.cache [--data ../shared/data/chest_xray] [--image-size 128]

Times ``load_search_data`` (train + carved validation, what every trial and
worker calls) three ways in one run, on a fresh cache folder:

1. first load: every JPEG decoded (in threads) and written to the cache;
2. cached load in this process (median of 5; the machine may be shared): memory-mapped arrays, cached split;
3. cached load in a fresh worker process (the load call only, timed inside it).

The source files are read once before timing, so the first decode is not
slowed by a cold disk: the ratio is decode work against cache work.
Records key "cache" in bench/results.json.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

from bench.results import below_defaults, record

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_DATA = os.path.join(HERE, "..", "shared", "data", "chest_xray")

CHILD = """
import sys, time, warnings
warnings.simplefilter("ignore")
from lungsearch.data import load_search_data
t = time.perf_counter()
d = load_search_data(sys.argv[1], image_size=int(sys.argv[2]), cache_dir=sys.argv[3])
print(time.perf_counter() - t, d.info["cache_hit"], len(d.train) + len(d.val))
"""


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=DEFAULT_DATA)
    parser.add_argument("--image-size", type=int, default=128)
    args = parser.parse_args(argv)
    if not os.path.isdir(args.data):
        print(f"no data at {args.data}; nothing measured")
        return 1
    import warnings

    from lungsearch.data import load_search_data, read_layout

    warnings.simplefilter("ignore")
    paths = read_layout(args.data).files("train")[0]
    for p in paths:  # warm the page cache: measure decoding, not the disk
        with open(p, "rb") as fh:
            fh.read()
    with tempfile.TemporaryDirectory(prefix="lungsearch-bench-") as cache_dir:
        kw = dict(image_size=args.image_size, cache_dir=cache_dir)
        t = time.perf_counter()
        first = load_search_data(args.data, **kw)
        first_s = time.perf_counter() - t
        assert not first.info["cache_hit"]
        cached = []
        for _ in range(5):
            t = time.perf_counter()
            again = load_search_data(args.data, **kw)
            cached.append(time.perf_counter() - t)
            assert again.info["cache_hit"]
        cached_s = statistics.median(cached)
        out = subprocess.run([sys.executable, "-c", CHILD, args.data, str(args.image_size), cache_dir],
                             capture_output=True, text=True, check=True, cwd=HERE).stdout.split()
        worker_s, worker_hit = float(out[0]), out[1] == "True"
    n = len(first.train) + len(first.val)
    print(f"{n} images at {args.image_size}px, {os.cpu_count()} cores")
    print(f"first load (decode + cache write): {first_s:8.3f} s")
    print(f"cached load, same process:         {cached_s:8.3f} s   speedup {first_s / cached_s:6.1f}x  "
          f"(median of {len(cached)}: {', '.join(f'{c:.2f}' for c in cached)})")
    print(f"cached load, fresh worker process: {worker_s:8.3f} s   speedup {first_s / worker_s:6.1f}x  (hit: {worker_hit})")
    record("cache", {
        "images": n, "image_size": args.image_size, "reduced": below_defaults(parser, args, "image_size"),
        "first_seconds": round(first_s, 3), "cached_seconds": round(cached_s, 4), "cached_seconds_all": [round(c, 4) for c in cached],
        "worker_cached_seconds": round(worker_s, 4), "worker_cache_hit": worker_hit,
        "speedup": round(first_s / cached_s, 1), "worker_speedup": round(first_s / worker_s, 1),
    })
    return 0


if __name__ == "__main__":
    sys.exit(main())
