"""Find the images of a data folder, split them, and decode them once.

Layouts understood (:func:`read_layout`):

(a) ``DIR/train/<class>/``, ``DIR/val/<class>/``, ``DIR/test/<class>/`` (Kaggle's
    chest_xray).  A ``val/`` too small to select on (under ``SMALL_VAL``
    images, Kaggle's has 16) is merged into train with a warning, and
    validation is carved from train instead; a larger one is used as given.
(b) ``DIR/train/<class>/`` and ``DIR/test/<class>/``: validation is carved.
(c) ``DIR/<class>/`` only: a test split is carved once, seeded, grouped by
    patient, and recorded in ``<cache dir>/splits/`` so that
    :func:`load_test` of the same folder gives exactly the carved files.

Validation is carved from train with scikit-learn's ``StratifiedGroupKFold``:
stratified by class, a patient (group id parsed from the file name) never on
both sides.  Decoded images are cached (:mod:`lungsearch.cache`).  The test
split is read only by :func:`load_test` (and, with ``dedupe``, its bytes are
hashed, never decoded, so that copies of test images leave train).
``--data demo`` is a synthetic set made by :mod:`lungsearch.demo`.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import re
import warnings
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from lungsearch import cache

IMAGE_EXTENSIONS = (".jpeg", ".jpg", ".png", ".bmp", ".tif", ".tiff")
COLOR_MODES = ("grayscale", "rgb")
# Patient id in Kermany file names: person1000_bacteria_2931.jpeg, IM-0115-0001.jpeg, NORMAL2-IM-1427-0001.jpeg
DEFAULT_GROUP_PATTERN = r"person(\d+)_|IM-(\d+)-"
DEMO = "demo"
SMALL_VAL = 100  # a given val/ with fewer images is merged into train and validation is carved instead
TEST_FRACTION = 0.15  # share of a layout (c) folder carved off as its test split
DECODER_VERSION = 1  # part of the cache key: bump when decode() changes what it produces
MIN_IMAGE_SIZE = 8
# Largest --image-size: the spaces are made for 64-224 px, and at 1024 px one batch of 32 through a
# 32-filter first convolution is 4.3 GB of float32 activations already; larger only ends out of memory.
MAX_IMAGE_SIZE = 1024
# A process that trains holds its decoded images about this many times over, as uint8: the decoding
# buffer (or the memory-mapped cache), the train/validation copies, and the backend's copy while it fits.
COPIES_WHILE_TRAINING = 3


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


def check_image_size(image_size: int, images: int = 0, color_mode: str = "grayscale", processes: int = 1) -> None:
    """Refuse, before any decoding, an image size that cannot work: :class:`DataError` saying what fits.

    Beyond the fixed bounds, ``images`` decoded at ``image_size`` in each of
    ``processes`` processes must fit the memory available now (an estimate:
    :data:`COPIES_WHILE_TRAINING` uint8 copies a process).
    """
    if image_size < MIN_IMAGE_SIZE:
        raise DataError(f"--image-size must be at least {MIN_IMAGE_SIZE} pixels, got {image_size}")
    if image_size > MAX_IMAGE_SIZE:
        raise DataError(f"--image-size {image_size} is above the {MAX_IMAGE_SIZE} px limit: the spaces are made for 64-224 px, and "
                        f"at {MAX_IMAGE_SIZE} px one batch through a first convolution already takes gigabytes; use {MAX_IMAGE_SIZE} or less")
    available = available_memory()
    if not images or not available:
        return
    per_pixel = images * channels(color_mode) * COPIES_WHILE_TRAINING * max(1, processes)
    need = per_pixel * image_size**2
    if need > available:
        fits = int(math.sqrt(available / per_pixel)) // 8 * 8
        who = f"{processes} worker processes" if processes > 1 else "one process"
        raise DataError(f"--image-size {image_size} needs about {need / 1e9:.1f} GB for {images:,} {color_mode} images "
                        f"({image_size}x{image_size} uint8, held about {COPIES_WHILE_TRAINING} times over while training, by {who}) "
                        f"and {available / 1e9:.1f} GB of memory is available; "
                        + (f"use --image-size {fits} or less" if fits >= MIN_IMAGE_SIZE else "free memory or use fewer images")
                        + (" or fewer --workers" if processes > 1 else ""))


def available_memory() -> int | None:
    """Bytes of memory available to this process now (MemAvailable, capped by a cgroup limit); None if unknown."""
    found = None
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    found = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        pass
    if found is None:
        try:
            found = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):  # not on this system
            return None
    try:
        with open("/sys/fs/cgroup/memory.max") as fh:
            limit = fh.read().strip()
        with open("/sys/fs/cgroup/memory.current") as fh:
            used = int(fh.read().strip())
        if limit.isdigit():
            found = min(found, max(0, int(limit) - used))
    except (OSError, ValueError):
        pass
    return found


# --------------------------------------------------------------------------- layout


@dataclass(frozen=True)
class Layout:
    """The image files of a data folder, by split and class."""

    root: str
    kind: str  # "train-val-test", "train-test" or "class-folders"
    class_names: tuple[str, ...]
    splits: dict[str, dict[str, list[str]]]  # {split: {class: [paths]}}, split in train/val/test
    split_record: str | None = None  # layout (c): the JSON file recording the carved test split
    ignored: dict[str, int] = field(default_factory=dict)  # subfolder of a class folder (relative to root): images in it, not read

    def files(self, split: str) -> tuple[list[str], np.ndarray]:
        """Paths and integer labels of one split (empty when the split is absent)."""
        paths, labels = [], []
        for label, name in enumerate(self.class_names):
            found = self.splits.get(split, {}).get(name, [])
            paths += found
            labels += [label] * len(found)
        return paths, np.asarray(labels, dtype=np.int64)


def scan(root: str, **kwargs) -> dict[str, dict[str, list[str]]]:
    """``{split: {class: [paths]}}`` of the data folder ``root`` (see :func:`read_layout`)."""
    return read_layout(root, **kwargs).splits


def read_layout(
    root: str,
    *,
    seed: int = 0,
    test_fraction: float = TEST_FRACTION,
    group_pattern: str | None = None,
    cache_dir: str | None = None,
    splits_wanted: tuple[str, ...] = ("train", "val", "test"),
) -> Layout:
    """Find the layout of ``root``; raise :class:`DataError` with what to change if it is unusable.

    Only the folders in ``splits_wanted`` are listed: the search asks for train
    and val, so it never lists a file of test/.
    """
    if not os.path.isdir(root):
        raise DataError(not_a_folder(root))
    root = os.path.abspath(root)  # absolute paths: a cache key and a study record that do not depend on the cwd
    with os.scandir(root) as entries:  # names only: no stat of test/ while the search reads the layout
        present = {e.name for e in entries if e.name in ("train", "val", "test") and e.is_dir()}
    if present:
        if "train" not in present:
            raise DataError(f"{root} has {'/, '.join(sorted(present))}/ but no train/ folder; expected {root}/train/<class>/*.jpeg")
        ignored: dict[str, int] = {}
        splits = {s: _scan_classes(os.path.join(root, s), f"{root}/{s}", ignored, root) for s in splits_wanted if s in present}
        classes = _check_classes(root, splits)
        kind = "train-val-test" if "val" in splits else "train-test"
        return Layout(os.path.abspath(root), kind, classes, splits, ignored=ignored)
    ignored = {}
    per_class = _scan_classes(root, root, ignored, root)
    classes = _check_classes(root, {"": per_class})
    splits, record = _carve_test(root, classes, per_class, seed, test_fraction, group_pattern, cache_dir)
    return Layout(os.path.abspath(root), "class-folders", classes, splits, record, ignored)


def not_a_folder(root: str) -> str:
    """Why ``root`` cannot be read as a data folder, and what to give instead."""
    if os.path.isfile(root):
        archive = root.lower().endswith((".zip", ".tar", ".tar.gz", ".tgz", ".tar.xz", ".7z"))
        return (f"data folder {root} is a file, not a folder; "
                + ("unpack it and give --data the folder it makes" if archive else
                   "give --data the folder that holds the class folders (train/<class>/ or <class>/), or --data demo"))
    return f"data folder {root} does not exist; give --data a folder with train/<class>/ images, or --data demo"


def _scan_classes(folder: str, shown: str, ignored: dict[str, int], root: str) -> dict[str, list[str]]:
    """``{class: [image paths directly in folder/class]}``; images deeper down are counted into ``ignored``.

    Only images directly inside a class folder are read: a subfolder may hold
    anything (the Covid-19 Radiography set keeps lung masks in ``<class>/masks/``
    beside ``<class>/images/``), so it is named, not guessed at.
    """
    out = {}
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if name.startswith(".") or not os.path.isdir(path):
            continue
        with os.scandir(path) as entries:  # scandir knows directories without a stat per file
            entries = [e for e in entries if not e.name.startswith(".")]
        out[name] = sorted(e.path for e in entries if e.name.lower().endswith(IMAGE_EXTENSIONS) and not e.is_dir())
        deeper = {os.path.relpath(e.path, root): _count_images(e.path) for e in sorted(entries, key=lambda e: e.name) if e.is_dir()}
        deeper = {k: n for k, n in deeper.items() if n}
        ignored.update(deeper)
        if not out[name]:
            if deeper:
                raise DataError(f"class folder {shown}/{name} holds no images itself, only in subfolders ({_list_counts(deeper)}); "
                                f"only images directly inside a class folder are read: move the ones to use up into {shown}/{name}")
            raise DataError(f"class folder {shown}/{name} holds no images ({', '.join(IMAGE_EXTENSIONS)}); add images or remove it")
    return out


def _count_images(folder: str) -> int:
    return sum(
        sum(1 for f in files if not f.startswith(".") and f.lower().endswith(IMAGE_EXTENSIONS))
        for _, _, files in os.walk(folder)
    )


def _list_counts(counts: dict[str, int], most: int = 5) -> str:
    """``train/NORMAL/batch1: 40, train/NORMAL/old: 3`` (the first ``most``, then how many more)."""
    items = [f"{k}: {n}" for k, n in list(counts.items())[:most]]
    return ", ".join(items) + (f" and {len(counts) - most} more" if len(counts) > most else "")


def ignored_message(layout: Layout) -> str | None:
    """The line that says which images in subfolders of class folders are not read, or None."""
    if not layout.ignored:
        return None
    total = sum(layout.ignored.values())
    return (f"{total} images in subfolders of class folders of {layout.root} are not read ({_list_counts(layout.ignored)}); "
            "only images directly inside a class folder are: move them up into it to use them")


def _check_classes(root: str, splits: dict[str, dict[str, list[str]]]) -> tuple[str, ...]:
    first = next(iter(splits))
    classes = sorted(splits[first])
    where = f"{root}/{first}" if first else root
    if not classes:
        raise DataError(f"{where} has no class folders; expected {where}/<class>/*.jpeg, one folder per class")
    if len(classes) < 2:
        raise DataError(f"{where} has a single class folder ({classes[0]}); a classifier needs at least two")
    for split, per_class in splits.items():
        if sorted(per_class) != classes:
            missing = sorted(set(classes) - set(per_class))
            extra = sorted(set(per_class) - set(classes))
            parts = ([f"lacks {', '.join(missing)}"] if missing else []) + ([f"has extra {', '.join(extra)}"] if extra else [])
            raise DataError(f"class folders of {root}/{split} differ from {first}/: it {' and '.join(parts)}; make them match")
    return tuple(classes)


def _carve_test(root, classes, per_class, seed, fraction, group_pattern, cache_dir):
    """Layout (c): split off a test set once, and record which files it holds."""
    if not 0.0 < fraction < 0.5:
        raise DataError(f"test fraction must be between 0 and 0.5, got {fraction}")
    pattern = group_pattern or DEFAULT_GROUP_PATTERN
    rel = {name: [os.path.relpath(p, root) for p in files] for name, files in per_class.items()}
    key = hashlib.sha256(json.dumps([rel, seed, fraction, pattern]).encode()).hexdigest()[:24]
    record = os.path.join(cache_dir or cache.default_cache_dir(), "splits", f"{key}.json")
    if os.path.isfile(record):
        with open(record) as fh:
            test = set(json.load(fh)["test"])
    else:
        layout = Layout(root, "class-folders", classes, {"train": per_class})
        paths, labels = layout.files("train")
        _, test_idx = split_validation(labels, patient_groups(paths, pattern), fraction, seed)
        test = {os.path.relpath(paths[i], root) for i in test_idx}
        os.makedirs(os.path.dirname(record), exist_ok=True)
        tmp = f"{record}.{os.getpid()}.tmp"
        with open(tmp, "w") as fh:
            json.dump({"root": os.path.abspath(root), "seed": seed, "fraction": fraction, "group_pattern": pattern,
                       "test": sorted(test)}, fh, indent=1)
        os.replace(tmp, record)
    splits = {
        "train": {n: [p for p, r in zip(per_class[n], rel[n]) if r not in test] for n in classes},
        "test": {n: [p for p, r in zip(per_class[n], rel[n]) if r in test] for n in classes},
    }
    return splits, record


# --------------------------------------------------------------------------- groups and splits


def patient_groups(paths: list[str], pattern: str | None = None) -> list[str]:
    """A group id per file: the patient parsed from the name, else the file itself.

    ``pattern`` is a regex searched in the file name; the first capture group
    that matched is the id (the whole match if it has none).  Ids of different
    capture groups are kept apart (``person12_`` and ``IM-12-`` are two patients);
    numeric ids ignore leading zeros.
    """
    try:
        regex = re.compile(pattern or DEFAULT_GROUP_PATTERN)
    except re.error as exc:
        raise DataError(f"--group-pattern {pattern!r} is not a valid regular expression: {exc}") from None
    groups = []
    for path in paths:
        name = os.path.basename(path)
        match = regex.search(name)
        if not match:
            groups.append(f"file:{path}")
            continue
        found = [(i, g) for i, g in enumerate(match.groups(), 1) if g] or [(0, match.group(0))]
        i, value = found[0]
        groups.append(f"{i}:{int(value) if value.isdigit() else value}")
    return groups


def split_validation(labels: np.ndarray, groups: list[str], fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Train and validation indices: stratified by label, no group on both sides."""
    from sklearn.model_selection import StratifiedGroupKFold

    if not 0.0 < fraction < 0.5:
        raise DataError(f"--val-fraction must be between 0 and 0.5, got {fraction}")
    counts = np.bincount(labels) if len(labels) else np.zeros(0, int)
    n_splits = max(2, round(1.0 / fraction))
    if len(set(groups)) < n_splits:
        raise DataError(f"only {len(set(groups))} patients (groups) to split; need at least {n_splits} for a {fraction:.0%} validation split")
    if counts.size and counts[counts > 0].min() < 2:
        raise DataError("a class has a single image; need at least two per class to carve a validation split")
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    with warnings.catch_warnings():  # "least populated class has only N members": tiny test sets; we check above
        warnings.simplefilter("ignore", UserWarning)
        train_idx, val_idx = next(splitter.split(np.zeros(len(labels)), labels, groups))
    return np.sort(train_idx), np.sort(val_idx)


def _split_cached(labels: np.ndarray, groups: list[str], fraction: float, seed: int, cache_dir: str | None):
    """:func:`split_validation`, remembered in the cache: the splitter takes seconds on 5,000 files."""
    key = hashlib.sha256(json.dumps(["split", labels.tolist(), groups, fraction, seed]).encode()).hexdigest()[:24]

    def build():
        train_idx, val_idx = split_validation(labels, groups, fraction, seed)
        return {"train": train_idx, "val": val_idx}, {}

    entry = cache.cached(f"split-{key}", build, cache_dir)
    return np.asarray(entry.arrays["train"]), np.asarray(entry.arrays["val"])


def group_report(groups: list[str], parts: dict[str, np.ndarray]) -> tuple[dict[str, int], dict[str, int]]:
    """Groups per part and the groups shared by each pair of parts (``"train-val"``: n)."""
    sets = {name: {groups[i] for i in idx} for name, idx in parts.items()}
    names = list(sets)
    overlap = {f"{a}-{b}": len(sets[a] & sets[b]) for k, a in enumerate(names) for b in names[k + 1:]}
    return {n: len(s) for n, s in sets.items()}, overlap


# --------------------------------------------------------------------------- decoding


def decode(path: str, image_size: int, color_mode: str) -> np.ndarray:
    """One image file as (image_size, image_size, C) uint8; raises on a bad file."""
    with open(path, "rb") as fh:
        return _decode_bytes(fh.read(), image_size, color_mode)[0]


def _decode_bytes(raw: bytes, image_size: int, color_mode: str) -> tuple[np.ndarray, tuple[int, int], str]:
    """Pixels, original (width, height) and original mode of an encoded image."""
    from PIL import Image, ImageOps

    with Image.open(io.BytesIO(raw)) as img:
        size, mode = img.size, img.mode
        if img.format == "JPEG" and mode in ("L", "RGB"):
            img.draft(mode, (image_size, image_size))  # let the JPEG decoder downscale (DCT scaling): much faster
        img.load()  # raises on truncated data
        img = ImageOps.exif_transpose(img)
        if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
            arr = np.asarray(img, dtype=np.float64)
            top = float(arr.max()) if arr.size else 0.0
            bits = max(8, math.ceil(math.log2(top + 1))) if top > 0 else 8  # 12-bit data fills 0..255 too
            img = Image.fromarray(np.clip(arr * (255.0 / (2**bits - 1)), 0, 255).round().astype(np.uint8), mode="L")
        if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
            img = img.convert("RGBA")
            background = Image.new("RGBA", img.size, (0, 0, 0, 255))  # X-ray background is black
            img = Image.alpha_composite(background, img)
        img = img.convert("L" if color_mode == "grayscale" else "RGB")
        if img.size != (image_size, image_size):
            img = img.resize((image_size, image_size), Image.BILINEAR)
        arr = np.asarray(img, dtype=np.uint8)
    return (arr[..., None] if arr.ndim == 2 else arr), size, mode


def _read_one(path: str, image_size: int, color_mode: str) -> dict:
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        return {"error": f"{type(exc).__name__}: {exc.strerror or exc}"}
    digest = hashlib.sha1(raw).hexdigest()
    if not raw:
        return {"error": "empty file (0 bytes)", "sha1": digest}
    try:
        arr, size, mode = _decode_bytes(raw, image_size, color_mode)
    except Exception as exc:  # Pillow raises many kinds on a bad file; skip it, say so
        return {"error": f"{type(exc).__name__}: {exc}", "sha1": digest}
    return {"x": arr, "sha1": digest, "size": size, "mode": mode}


def _workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def decode_all(paths: list[str], image_size: int, color_mode: str, desc: str = "decoding") -> tuple[np.ndarray, list[int], list[str]]:
    """Decode many files: (images, indices decoded, paths skipped as unreadable)."""
    x, meta = _decode_many(paths, image_size, color_mode, desc)
    return x, meta["kept"], [f"{paths[i]} ({why})" for i, why in meta["skipped"]]


def _decode_many(paths: list[str], image_size: int, color_mode: str, desc: str) -> tuple[np.ndarray, dict]:
    """Decode in threads (Pillow releases the GIL while decoding and resizing), with a progress bar."""
    from tqdm.auto import tqdm

    c = channels(color_mode)
    x = np.zeros((len(paths), image_size, image_size, c), np.uint8)
    kept, skipped, hashes, sizes, modes = [], [], [], [], []
    pool = ThreadPoolExecutor(max_workers=_workers())
    try:
        results = pool.map(lambda p: _read_one(p, image_size, color_mode), paths)
        for i, r in enumerate(tqdm(results, total=len(paths), desc=desc, unit="img", leave=False, disable=True if len(paths) < 200 else None)):
            hashes.append(r.get("sha1"))
            if "error" in r:
                skipped.append([i, r["error"]])
                sizes.append(None)
                modes.append(None)
                continue
            x[len(kept)] = r["x"]
            kept.append(i)
            sizes.append(list(r["size"]))
            modes.append(r["mode"])
    finally:  # on Ctrl-C, do not wait for the queued files
        pool.shutdown(wait=False, cancel_futures=True)
    meta = {"kept": kept, "skipped": skipped, "sha1": hashes, "sizes": sizes, "modes": modes}
    return x[: len(kept)], meta


@dataclass(frozen=True)
class Decoded:
    """The decoded images of a file list: ``x[j]`` is ``paths[kept[j]]``."""

    paths: list[str]
    x: np.ndarray  # memory-mapped from the cache
    kept: list[int]
    skipped: list[str]  # "path (reason)"
    sha1: list[str | None]  # per path; None where the file could not be read
    sizes: list  # per path: [width, height] of the original, or None
    modes: list  # per path: Pillow mode of the original, or None
    cache_hit: bool
    fingerprint: str


def decode_cached(paths: list[str], image_size: int, color_mode: str, *, cache_dir: str | None = None,
                  desc: str = "decoding", group: str | None = None) -> Decoded:
    """Decode ``paths`` once; later calls (any process) load the cached arrays memory-mapped."""
    check_image_size(image_size, len(paths), color_mode)
    key = cache.file_fingerprint(paths, image_size, color_mode, DECODER_VERSION)

    def build():
        x, meta = _decode_many(paths, image_size, color_mode, desc)
        return {"x": x}, meta

    entry = cache.cached(key, build, cache_dir, group=f"{group}|{image_size}|{color_mode}" if group else None)
    meta = entry.meta
    return Decoded(
        paths=paths, x=entry.arrays["x"], kept=list(meta["kept"]),
        skipped=[f"{paths[i]} ({why})" for i, why in meta["skipped"]],
        sha1=meta["sha1"], sizes=meta["sizes"], modes=meta["modes"], cache_hit=entry.hit, fingerprint=key,
    )


def hash_files(paths: list[str]) -> list[str | None]:
    """SHA-1 of each file's bytes (None where unreadable); no decoding."""
    def one(path):
        try:
            with open(path, "rb") as fh:
                return hashlib.sha1(fh.read()).hexdigest()
        except OSError:
            return None

    with ThreadPoolExecutor(max_workers=_workers()) as pool:
        return list(pool.map(one, paths))


def duplicate_sets(hashes: list[str | None]) -> list[list[int]]:
    """Indices of byte-identical files, one list per content seen more than once."""
    by_hash: dict[str, list[int]] = {}
    for i, h in enumerate(hashes):
        if h is not None:
            by_hash.setdefault(h, []).append(i)
    return [idx for idx in by_hash.values() if len(idx) > 1]


def fingerprint(paths: list[str]) -> str:
    return cache.file_fingerprint(paths)


# --------------------------------------------------------------------------- entry points


def load_search_data(
    source: str,
    *,
    image_size: int,
    color_mode: str = "grayscale",
    val_fraction: float = 0.15,
    seed: int = 0,
    group_pattern: str | None = DEFAULT_GROUP_PATTERN,
    cache_dir: str | None = None,
    dedupe: bool = False,
) -> SearchData:
    """Train and validation arrays for a search.  Never decodes the test split.

    ``dedupe`` drops byte-identical copies from train and validation: a file
    equal to a test file, and every repeat of a file already seen in train.
    """
    c = channels(color_mode)
    check_image_size(image_size)
    group_pattern = group_pattern or DEFAULT_GROUP_PATTERN
    if source == DEMO:
        from lungsearch import demo

        x, y = demo.make_split("train", image_size)
        x = _to_channels(x, c)
        groups = [f"file:{i}" for i in range(len(y))]
        train_idx, val_idx = split_validation(y, groups, val_fraction, seed)
        info = {"source": DEMO, "counts": {"train": len(train_idx), "val": len(val_idx)}, "skipped": []}
        return SearchData(demo.CLASS_NAMES, Arrays(x[train_idx], y[train_idx]), Arrays(x[val_idx], y[val_idx]), info)

    # test/ is listed only to find byte copies of test images under --dedupe; it is never decoded here
    wanted = ("train", "val", "test") if dedupe else ("train", "val")
    layout = read_layout(source, seed=seed, group_pattern=group_pattern, cache_dir=cache_dir, splits_wanted=wanted)
    paths, labels = layout.files("train")
    val_paths, val_labels = layout.files("val")
    if layout.ignored:
        warnings.warn(ignored_message(layout))
    use_given_val = len(val_paths) >= SMALL_VAL and len(set(val_labels.tolist())) == len(layout.class_names)
    notes = []
    if val_paths and not use_given_val:
        notes.append(f"{source}/val has only {len(val_paths)} images (or lacks a class); merged into train and validation carved from it")
        warnings.warn(notes[-1])
        paths, labels = paths + val_paths, np.concatenate([labels, val_labels])
    n_given_train = len(paths)
    if use_given_val:
        paths, labels = paths + val_paths, np.concatenate([labels, val_labels])
    decoded = decode_cached(paths, image_size, color_mode, cache_dir=cache_dir, desc="decoding train", group=layout.root)
    for line in decoded.skipped:
        warnings.warn(f"skipped unreadable image {line}")
    kept = np.asarray(decoded.kept, dtype=np.int64)  # positions in paths of the rows of decoded.x

    dropped = []
    if dedupe:
        test_hashes = {h for h in hash_files(layout.files("test")[0]) if h}
        seen, keep_rows = set(), []
        for row, i in enumerate(kept):
            h = decoded.sha1[i]
            if h in test_hashes or h in seen:
                dropped.append(paths[i])
            else:
                keep_rows.append(row)
            seen.add(h)
        rows = np.asarray(keep_rows, dtype=np.int64)
    else:
        rows = np.arange(len(kept))
    if dropped:
        warnings.warn(f"--dedupe dropped {len(dropped)} byte-identical copies from train/validation")
    file_idx = kept[rows]
    row_labels = labels[file_idx]
    groups = patient_groups([paths[i] for i in file_idx], group_pattern)
    if use_given_val:
        is_val = file_idx >= n_given_train
        train_rows, val_rows = np.flatnonzero(~is_val), np.flatnonzero(is_val)
    else:
        train_rows, val_rows = _split_cached(row_labels, groups, val_fraction, seed, cache_dir)
    missing = [n for k, n in enumerate(layout.class_names) if not np.any(row_labels[val_rows] == k)]
    if missing:
        raise DataError(f"the validation split of {source} has no {', '.join(missing)} image ({len(set(groups))} patients in all); "
                        "raise --val-fraction or add images")
    per_split, overlap = group_report(groups, {"train": train_rows, "val": val_rows})
    if overlap["train-val"]:
        warnings.warn(f"{overlap['train-val']} patients appear in both train/ and val/ of {source}")
    dup_within = sum(len(s) - 1 for s in duplicate_sets([decoded.sha1[i] for i in file_idx]))
    info = {
        "source": os.path.abspath(source),
        "layout": layout.kind,
        "validation": "given val/" if use_given_val else f"carved {val_fraction:g} by patient, seed {seed}",
        "counts": {"train": int(len(train_rows)), "val": int(len(val_rows))},
        "class_counts": {s: dict(zip(layout.class_names, np.bincount(row_labels[r], minlength=len(layout.class_names)).tolist()))
                         for s, r in (("train", train_rows), ("val", val_rows))},
        "groups": per_split,
        "group_overlap": overlap["train-val"],
        "group_pattern": group_pattern,
        "duplicates_left": int(dup_within),
        "deduped": dropped,
        "skipped": decoded.skipped,
        "ignored_subfolders": layout.ignored,
        "notes": notes,
        "fingerprint": decoded.fingerprint,
        "cache_hit": decoded.cache_hit,
    }
    if layout.split_record:
        info["split_record"] = layout.split_record
    x = decoded.x
    return SearchData(
        layout.class_names,
        Arrays(x[rows[train_rows]], row_labels[train_rows]),
        Arrays(x[rows[val_rows]], row_labels[val_rows]),
        info,
    )


def load_test(
    source: str,
    *,
    image_size: int,
    color_mode: str,
    class_names: tuple[str, ...],
    seed: int = 0,
    group_pattern: str | None = DEFAULT_GROUP_PATTERN,
    cache_dir: str | None = None,
) -> Arrays:
    """The held-out test split, for the final evaluation of an exported model only.

    For a layout (c) folder pass the study's ``seed`` (and ``group_pattern``):
    the recorded carve of that seed is read back.
    """
    c = channels(color_mode)
    if source == DEMO:
        from lungsearch import demo

        x, y = demo.make_split("test", image_size)
        return Arrays(_to_channels(x, c), y)
    layout = read_layout(source, seed=seed, group_pattern=group_pattern, cache_dir=cache_dir)
    if tuple(class_names) != layout.class_names:
        raise DataError(f"{source} has classes {', '.join(layout.class_names)}, the model was trained on {', '.join(class_names)}")
    paths, labels = layout.files("test")
    if not paths:
        raise DataError(f"{source} has no test/<class>/ images to evaluate on")
    decoded = decode_cached(paths, image_size, color_mode, cache_dir=cache_dir, desc="decoding test", group=layout.root + "|test")
    for line in decoded.skipped:
        warnings.warn(f"skipped unreadable image {line}")
    return Arrays(np.asarray(decoded.x), labels[decoded.kept])


def _to_channels(x: np.ndarray, c: int) -> np.ndarray:
    x = x[..., None] if x.ndim == 3 else x
    return np.repeat(x, c, axis=-1) if x.shape[-1] != c else x


def summarize_modes(decoded: Decoded) -> dict:
    """Counts of original image sizes and modes of the readable files."""
    sizes = Counter(f"{w}x{h}" for w, h in (s for s in decoded.sizes if s))
    modes = Counter(m for m in decoded.modes if m)
    return {"sizes": dict(sizes.most_common()), "modes": dict(modes.most_common())}
