"""A synthetic chest-X-ray-like data set, so ``--data demo`` runs anywhere.

Each image is a bright thorax with two dark lung fields, a bright mediastinum,
faint ribs and vessel-like specks.  The disease class adds diffuse opacities
(soft bright blobs) inside the lung fields, with a strength drawn from a wide
range, so some cases are faint: learnable, but not trivially separable.
Everything is drawn from a fixed seed, so every run sees the same images.
"""

from __future__ import annotations

import numpy as np

CLASS_NAMES = ("NORMAL", "PNEUMONIA")
COUNTS = {"train": (200, 400), "test": (80, 120)}  # (NORMAL, PNEUMONIA), imbalanced like Kermany's
SEEDS = {"train": 1234, "test": 5678}


def make_split(split: str, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, size, size) uint8 and labels (N,) int64 of one split."""
    rng = np.random.default_rng(SEEDS[split])
    n_normal, n_disease = COUNTS[split]
    labels = np.array([0] * n_normal + [1] * n_disease, dtype=np.int64)
    rng.shuffle(labels)
    images = np.stack([_image(rng, size, bool(label)) for label in labels])
    return images, labels


def _image(rng: np.random.Generator, size: int, disease: bool) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    dx, dy = rng.normal(0, 0.03, 2)  # patient position
    scale = rng.uniform(0.9, 1.1)
    img = 0.55 + 0.1 * rng.standard_normal() * 0.3 + 0.15 * (1 - np.abs(xx - 0.5) * 2)  # thorax
    lungs = np.zeros_like(img)
    for side in (-1, 1):
        cx, cy = 0.5 + side * 0.19 * scale + dx, 0.5 + dy
        rx, ry = 0.14 * scale * rng.uniform(0.9, 1.1), 0.3 * scale * rng.uniform(0.9, 1.1)
        lungs = np.maximum(lungs, (((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 < 1).astype(np.float32))
    lungs = _soften(lungs)
    img -= 0.35 * lungs
    img += 0.05 * lungs * np.sin((yy + dy) * 40 + rng.uniform(0, 6)) ** 8  # ribs
    for _ in range(rng.integers(5, 15)):  # vessels and other specks, in both classes
        img += _blob(rng, xx, yy, lungs, rng.uniform(0.01, 0.03), rng.uniform(0.04, 0.1))
    if disease:
        strength = rng.uniform(0.1, 0.35)
        for _ in range(rng.integers(1, 4)):
            img += _blob(rng, xx, yy, lungs, rng.uniform(0.06, 0.16), strength)
    img += rng.normal(0, 0.04, img.shape)  # film grain
    img = (img - img.mean()) * rng.uniform(0.8, 1.2) + img.mean()  # exposure
    return np.clip(img * 255, 0, 255).astype(np.uint8)


def _blob(rng, xx, yy, lungs, radius, strength):
    ys, xs = np.nonzero(lungs > 0.5)
    if len(xs) == 0:
        return 0.0
    i = rng.integers(len(xs))
    cx, cy = xx[ys[i], xs[i]], yy[ys[i], xs[i]]
    return strength * lungs * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * radius**2))


def _soften(mask: np.ndarray) -> np.ndarray:
    out = mask.copy()
    for _ in range(2):
        out = (out + np.roll(out, 1, 0) + np.roll(out, -1, 0) + np.roll(out, 1, 1) + np.roll(out, -1, 1)) / 5
    return out
