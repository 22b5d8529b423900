"""Find the images of a data folder, split them, and decode them once.

Layouts understood: ``DIR/train/<class>/*`` and ``DIR/test/<class>/*``, with an
optional ``DIR/val/<class>/*``.  Validation is carved from train, stratified by
class and grouped by patient (a patient never sits on both sides), seeded.
The test split is read only by :func:`load_test`, never by the search.
``--data demo`` is a synthetic set made by :mod:`lungsearch.demo`.
"""

from __future__ import annotations

import hashlib
import os
import re
import warnings
from dataclasses import dataclass, field

import numpy as np

IMAGE_EXTENSIONS = (".jpeg", ".jpg", ".png", ".bmp", ".tif", ".tiff")
COLOR_MODES = ("grayscale", "rgb")
# Patient id in Kermany file names: person1000_bacteria_2931.jpeg, IM-0115-0001.jpeg, NORMAL2-IM-1427-0001.jpeg
DEFAULT_GROUP_PATTERN = r"person(\d+)_|IM-(\d+)-"
DEMO = "demo"


class DataError(ValueError):
    """A data folder that cannot be used as asked."""

    user_error = True  # the CLI prints it on one line and exits 2


@dataclass(frozen=True)
class Arrays:
    """Decoded images (N, H, W, C) uint8 and integer labels (N,)."""

    x: np.ndarray
    y: np.ndarray

    def __len__(self) -> int:
        return len(self.y)


@dataclass(frozen=True)
class SearchData:
    """What the search trains and validates on: never the test split."""

    class_names: tuple[str, ...]
    train: Arrays
    val: Arrays
    info: dict = field(default_factory=dict)  # counts, groups, skipped files, fingerprint

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.train.x.shape[1:])


def channels(color_mode: str) -> int:
    if color_mode not in COLOR_MODES:
        raise DataError(f"unknown color mode {color_mode!r}; use one of {', '.join(COLOR_MODES)}")
    return 1 if color_mode == "grayscale" else 3


# --------------------------------------------------------------------------- layout


def scan(root: str, splits_wanted: tuple[str, ...] = ("train", "val", "test")) -> dict[str, dict[str, list[str]]]:
    """``{split: {class: [paths]}}`` for the train/val/test folders under ``root`` (only ``splits_wanted`` are listed)."""
    if not os.path.isdir(root):
        raise DataError(f"data folder {root} does not exist; give --data a folder with train/<class>/ images, or --data demo")
    splits = {}
    for split in splits_wanted:
        path = os.path.join(root, split)
        if os.path.isdir(path):
            splits[split] = _scan_classes(path)
    if "train" not in splits:
        raise DataError(f"{root} has no train/ folder; expected {root}/train/<class>/*.jpeg (and test/<class>/ for the final evaluation)")
    classes = sorted(splits["train"])
    if len(classes) < 2:
        raise DataError(f"{root}/train needs at least two class folders, found {classes or 'none'}")
    for split, per_class in splits.items():
        if per_class and sorted(per_class) != classes:
            raise DataError(f"class folders of {split}/ {sorted(per_class)} differ from train/ {classes}; make them match")
        for name, files in per_class.items():
            if not files and split == "train":
                raise DataError(f"{root}/train/{name} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
    return splits


def _scan_classes(split_dir: str) -> dict[str, list[str]]:
    out = {}
    for name in sorted(os.listdir(split_dir)):
        path = os.path.join(split_dir, name)
        if name.startswith(".") or not os.path.isdir(path):
            continue
        out[name] = sorted(
            os.path.join(path, f)
            for f in os.listdir(path)
            if not f.startswith(".") and f.lower().endswith(IMAGE_EXTENSIONS)
        )
    return out


def patient_groups(paths: list[str], pattern: str = DEFAULT_GROUP_PATTERN) -> list[str]:
    """A group id per file: the patient from the name, else the file itself."""
    regex = re.compile(pattern)
    groups = []
    for path in paths:
        name = os.path.basename(path)
        match = regex.search(name)
        ids = [g for g in match.groups() if g] if match else []
        groups.append(f"patient:{int(ids[0])}" if ids and ids[0].isdigit() else ids[0] if ids else f"file:{name}")
    return groups


def split_validation(labels: np.ndarray, groups: list[str], fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Train and validation indices: stratified by label, no group on both sides."""
    from sklearn.model_selection import StratifiedGroupKFold

    if not 0.0 < fraction < 0.5:
        raise DataError(f"--val-fraction must be between 0 and 0.5, got {fraction}")
    n_splits = max(2, round(1.0 / fraction))
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    train_idx, val_idx = next(splitter.split(np.zeros(len(labels)), labels, groups))
    return np.sort(train_idx), np.sort(val_idx)


# --------------------------------------------------------------------------- decoding


def decode(path: str, image_size: int, color_mode: str) -> np.ndarray:
    """One image file as (image_size, image_size, C) uint8; raises on a bad file."""
    from PIL import Image, ImageOps

    with Image.open(path) as img:
        img = ImageOps.exif_transpose(img)
        if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
            arr = np.asarray(img, dtype=np.float32)
            hi = arr.max() or 1.0
            img = Image.fromarray((arr * (255.0 / hi)).astype(np.uint8), mode="L")
        if img.mode in ("RGBA", "LA", "P", "PA"):
            img = img.convert("RGBA")
            background = Image.new("RGBA", img.size, (0, 0, 0, 255))
            img = Image.alpha_composite(background, img)
        img = img.convert("L" if color_mode == "grayscale" else "RGB")
        img = img.resize((image_size, image_size), Image.BILINEAR)
        arr = np.asarray(img, dtype=np.uint8)
    return arr[..., None] if arr.ndim == 2 else arr


def decode_all(paths: list[str], image_size: int, color_mode: str, desc: str = "decoding") -> tuple[np.ndarray, list[int], list[str]]:
    """Decode many files: (images, indices decoded, paths skipped as unreadable)."""
    from tqdm.auto import tqdm

    images, kept, skipped = [], [], []
    for i, path in enumerate(tqdm(paths, desc=desc, unit="img", leave=False, disable=len(paths) < 200)):
        try:
            images.append(decode(path, image_size, color_mode))
            kept.append(i)
        except Exception as exc:  # Pillow raises many kinds on a bad file; skip it, say so
            skipped.append(f"{path} ({type(exc).__name__}: {exc})")
    c = channels(color_mode)
    x = np.stack(images) if images else np.zeros((0, image_size, image_size, c), np.uint8)
    return x, kept, skipped


def _flatten(per_class: dict[str, list[str]], class_names: tuple[str, ...]) -> tuple[list[str], np.ndarray]:
    paths, labels = [], []
    for label, name in enumerate(class_names):
        paths += per_class.get(name, [])
        labels += [label] * len(per_class.get(name, []))
    return paths, np.asarray(labels, dtype=np.int64)


def fingerprint(paths: list[str]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        st = os.stat(path)
        digest.update(f"{os.path.abspath(path)}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


# --------------------------------------------------------------------------- entry points


def load_search_data(
    source: str,
    *,
    image_size: int,
    color_mode: str = "grayscale",
    val_fraction: float = 0.15,
    seed: int = 0,
    group_pattern: str = DEFAULT_GROUP_PATTERN,
) -> SearchData:
    """Train and validation arrays for a search.  Never lists the test split."""
    c = channels(color_mode)
    if image_size < 8:
        raise DataError(f"--image-size must be at least 8 pixels, got {image_size}")
    if source == DEMO:
        from lungsearch import demo

        x, y = demo.make_split("train", image_size)
        x = _to_channels(x, c)
        groups = [f"file:{i}" for i in range(len(y))]
        train_idx, val_idx = split_validation(y, groups, val_fraction, seed)
        info = {"source": DEMO, "counts": {"train": len(train_idx), "val": len(val_idx)}, "skipped": []}
        return SearchData(demo.CLASS_NAMES, Arrays(x[train_idx], y[train_idx]), Arrays(x[val_idx], y[val_idx]), info)

    splits = scan(source, ("train", "val"))  # the search never lists test/
    class_names = tuple(sorted(splits["train"]))
    paths, labels = _flatten(splits["train"], class_names)
    if splits.get("val"):
        val_paths, val_labels = _flatten(splits["val"], class_names)
        if len(val_paths) < 100:  # Kaggle's chest_xray val/ has 16 images: too few to select on
            warnings.warn(f"{source}/val has only {len(val_paths)} images; merged into train and validation carved from it")
            paths, labels = paths + val_paths, np.concatenate([labels, val_labels])
    x, kept, skipped = decode_all(paths, image_size, color_mode, desc="decoding train")
    for line in skipped:
        warnings.warn(f"skipped unreadable image {line}")
    paths = [paths[i] for i in kept]
    labels = labels[kept]
    groups = patient_groups(paths, group_pattern)
    train_idx, val_idx = split_validation(labels, groups, val_fraction, seed)
    info = {
        "source": os.path.abspath(source),
        "counts": {"train": len(train_idx), "val": len(val_idx)},
        "groups": {"train": len({groups[i] for i in train_idx}), "val": len({groups[i] for i in val_idx})},
        "group_overlap": len({groups[i] for i in train_idx} & {groups[i] for i in val_idx}),
        "skipped": skipped,
        "fingerprint": fingerprint(paths),
    }
    return SearchData(
        class_names,
        Arrays(x[train_idx], labels[train_idx]),
        Arrays(x[val_idx], labels[val_idx]),
        info,
    )


def load_test(source: str, *, image_size: int, color_mode: str, class_names: tuple[str, ...]) -> Arrays:
    """The held-out test split, for the final evaluation of an exported model only."""
    c = channels(color_mode)
    if source == DEMO:
        from lungsearch import demo

        x, y = demo.make_split("test", image_size)
        return Arrays(_to_channels(x, c), y)
    splits = scan(source)
    if not splits.get("test"):
        raise DataError(f"{source} has no test/<class>/ images to evaluate on")
    paths, labels = _flatten(splits["test"], tuple(class_names))
    x, kept, skipped = decode_all(paths, image_size, color_mode, desc="decoding test")
    for line in skipped:
        warnings.warn(f"skipped unreadable image {line}")
    return Arrays(x, labels[kept])


def _to_channels(x: np.ndarray, c: int) -> np.ndarray:
    x = x[..., None] if x.ndim == 3 else x
    return np.repeat(x, c, axis=-1) if x.shape[-1] != c else x
