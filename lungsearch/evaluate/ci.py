"""95% confidence intervals of the point metrics: percentile bootstrap, and Wilson's where it collapses.

The bootstrap resamples the test images with the threshold held fixed; where a
proportion is 0/n or n/n every resample is 0/n too, so :func:`proportions`
says which metrics are plain proportions and :func:`wilson_interval` gives
their interval instead.
"""

from __future__ import annotations

import numpy as np

from lungsearch.evaluate.metrics import point_metrics

N_BOOTSTRAP = 1000  # resamples of the test set per interval
CI_LEVEL = 0.95


def bootstrap_ci(y, probs, pred, class_names, positive, *, n: int = N_BOOTSTRAP, seed: int = 0, level: float = CI_LEVEL) -> dict:
    """Percentile bootstrap interval of every metric of :func:`point_metrics`."""
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {}
    for _ in range(n):
        idx = rng.integers(0, len(y), len(y))
        for key, value in point_metrics(y[idx], probs[idx], pred[idx], class_names, positive).items():
            draws.setdefault(key, []).append(value)
    tail = (1.0 - level) / 2 * 100
    out = {}
    for key, values in draws.items():
        arr = np.asarray(values, dtype=float)
        arr = arr[np.isfinite(arr)]
        out[key] = [float(np.percentile(arr, tail)), float(np.percentile(arr, 100 - tail))] if len(arr) else [None, None]
    return out


def wilson_interval(k: int, n: int, level: float = CI_LEVEL) -> list[float]:
    """Wilson's score interval of the proportion k/n: not empty at 0/n or n/n, unlike the bootstrap's."""
    from statistics import NormalDist

    z = NormalDist().inv_cdf(0.5 + level / 2)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [float(max(0.0, centre - half)), float(min(1.0, centre + half))]


def proportions(y: np.ndarray, pred: np.ndarray, class_names, positive: int | None) -> dict[str, tuple[int, int]]:
    """(successes, trials) of every metric of :func:`point_metrics` that is a plain proportion."""
    out = {"accuracy": (int(np.sum(pred == y)), len(y))}
    if positive is not None:
        pos = y == positive
        out["sensitivity"] = (int(np.sum(pred[pos] == positive)), int(pos.sum()))
        out["specificity"] = (int(np.sum(pred[~pos] != positive)), int((~pos).sum()))
    for i, name in enumerate(class_names):
        hit = int(np.sum((pred == i) & (y == i)))
        out[f"recall/{name}"] = (hit, int(np.sum(y == i)))
        out[f"precision/{name}"] = (hit, int(np.sum(pred == i)))
    return out
