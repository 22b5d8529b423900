"""Shared fixtures: tiny synthetic image folders made by the tests themselves."""

from __future__ import annotations

import io
import os
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def pytest_configure(config) -> None:
    """Tests train Keras models eagerly, in this process only.

    A test fits a tiny model for a few batches; tracing its train, test and predict
    steps into TensorFlow graphs costs more than running them (DenseNet-121's one
    training step: 36 s traced, 6 s eager; the whole suite ran 2.5x faster).  The
    layers, losses, optimizers and callbacks are the same either way.  The graph
    path ``run`` takes is still tested: every test that starts ``lungsearch`` as a
    process (the end-to-end, workers, kill -9, Ctrl-C, PostgreSQL and refine
    workers tests) runs it as a user does, with nothing of this setting.
    """
    import keras

    if keras.config.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.run_functions_eagerly(True)


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


def load_folder(root: Path, tmp_path: Path, **kw):
    """``load_search_data`` of a test folder at 24 px, cached under ``tmp_path``, its warnings silenced (a test of one catches it)."""
    from lungsearch.data import load_search_data

    kw.setdefault("image_size", 24)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_search_data(str(root), cache_dir=str(tmp_path / "cache"), val_fraction=0.25, **kw)


def tiny_cnn(channels: int = 1, size: int = 24):
    """A two-conv Keras classifier (conv0, conv1, global average pooling, softmax) for Grad-CAM and predict."""
    import keras
    from keras import layers

    inp = keras.Input((size, size, channels))
    x = layers.Rescaling(1 / 255)(inp)
    x = layers.Conv2D(4, 3, padding="same", activation="relu", name="conv0")(x)
    x = layers.MaxPooling2D(2)(x)
    x = layers.Conv2D(6, 3, padding="same", activation="relu", name="conv1")(x)
    x = layers.GlobalAveragePooling2D()(x)
    out = layers.Dense(2, activation="softmax", name="probabilities")(x)
    return keras.Model(inp, out)


def _jpeg_bytes(rng):
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (64, 64), dtype=np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


def make_bad_folder(root: Path) -> dict[str, Path]:
    """A train/test folder with one bad file of each kind in train/NORMAL."""
    make_folder(root, per_class=8)
    folder = root / "train" / "NORMAL"
    rng = np.random.default_rng(2)
    bad = {
        "truncated": folder / "person90_truncated.jpeg",
        "empty": folder / "person91_empty.png",
        "not_image": folder / "person92_text.png",
        "unreadable": folder / "person93_gone.png",
    }
    bad["truncated"].write_bytes(_jpeg_bytes(rng)[:300])
    bad["empty"].write_bytes(b"")
    bad["not_image"].write_text("this is not a PNG\n")
    bad["unreadable"].symlink_to(root / "nowhere.png")  # a dangling link: listed, cannot be opened
    (folder / "person94_dir.jpg").mkdir()  # a folder with an image name: not a file, ignored by the scan
    return bad


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


def check_loads_here(path: str, sample: np.ndarray | None = None, expected: np.ndarray | None = None) -> None:
    """:func:`lungsearch.export.model.check_loads` without the fresh process: loads the file with Keras' registry of
    custom objects emptied, as a process that imports only Keras has it, and compares predictions alike."""
    import keras

    from lungsearch.export.base import ExportError

    registry = keras.saving.get_custom_objects()
    kept = dict(registry)
    registry.clear()
    try:
        model = keras.models.load_model(path)
    except Exception as exc:  # as the fresh process's last line of stderr would say it
        raise ExportError(f"exported {path} does not load in a fresh process: {type(exc).__name__}: {exc}") from exc
    finally:
        registry.update(kept)
    if sample is not None and expected is not None and len(sample):
        diff = float(np.max(np.abs(np.asarray(model.predict(sample, verbose=0)) - expected)))
        if diff > 1e-4:
            raise ExportError(f"exported {path} does not load in a fresh process: reloaded model predicts differently "
                              f"(max difference {diff:.2g})")


@pytest.fixture(autouse=True)
def _exports_checked_in_this_process(request, monkeypatch) -> None:
    """Every export checks its file loads in a fresh Python process (5-7 s of importing Keras there); in-process tests
    check it here instead (:func:`check_loads_here`).  The real check runs in ``tests/lungsearch/export/test_model.py``
    and wherever ``lungsearch best`` runs as a process (the end-to-end test); ``@pytest.mark.fresh_process`` keeps it."""
    if request.node.get_closest_marker("fresh_process") is None:
        monkeypatch.setattr("lungsearch.export.best.check_loads", check_loads_here)
