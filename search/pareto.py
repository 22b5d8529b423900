"""Pareto front of two objectives, one maximised and one minimised."""

from __future__ import annotations

import numpy as np


def pareto_mask(maximise: np.ndarray, minimise: np.ndarray) -> np.ndarray:
    """True where no other point is at least as good on both and better on one."""
    a = np.asarray(maximise, dtype=float)
    b = np.asarray(minimise, dtype=float)
    no_worse = (a[None, :] >= a[:, None]) & (b[None, :] <= b[:, None])
    better = (a[None, :] > a[:, None]) | (b[None, :] < b[:, None])
    return ~np.any(no_worse & better, axis=1)
