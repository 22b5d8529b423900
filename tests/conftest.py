"""Shared fixtures: tiny synthetic image folders made by the tests themselves."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def write_image(path: Path, label: int, size: int, rng: np.random.Generator, mode: str = "L") -> None:
    """A gray square; class 1 gets a bright blob, so tiny models can learn it."""
    from PIL import Image

    img = rng.normal(90, 20, (size, size))
    if label:
        yy, xx = np.mgrid[0:size, 0:size]
        cx, cy = rng.uniform(0.3, 0.7, 2) * size
        img += 90 * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * (size / 6) ** 2))
    arr = np.clip(img, 0, 255).astype(np.uint8)
    Image.fromarray(arr, mode="L").convert(mode).save(path)


def make_folder(
    root: Path,
    classes=("NORMAL", "PNEUMONIA"),
    splits=("train", "test"),
    per_class: int = 12,
    size: int = 24,
    seed: int = 0,
    patients: bool = True,
    disease: str | None = None,
) -> Path:
    """``root/<split>/<class>/*.png``; with ``patients``, Kermany-style names, 2 images per patient.

    The images of every class but the first carry the bright blob, or with
    ``disease`` those of that class only (a Covid/Normal folder: index 0).
    """
    rng = np.random.default_rng(seed)
    for split in splits:
        for label, name in enumerate(classes):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                stem = f"person{label * 1000 + splits.index(split) * 10_000 + i // 2}_img_{i}" if patients else f"img{i}"
                marked = (name == disease) if disease is not None else min(label, 1)
                write_image(folder / f"{stem}.png", int(marked), size, rng)
    return root


def wait_until(predicate, *, timeout: float = 60, what: str):
    """Polls ``predicate`` until it returns something true, and returns that; fails saying ``what`` it waited for.

    Tests wait on a state (a file appears, a trial is stored), never a fixed sleep: a sleep long
    enough for a loaded CI machine wastes time everywhere else, and one shorter fails there now and then.
    """
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            pytest.fail(f"waited {timeout:g} s for {what}")
        time.sleep(0.05)
    return value


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    """A two-class train/test folder of small PNGs."""
    return make_folder(tmp_path / "xray")


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not present at {SHARED_DATA}")
    return SHARED_DATA
