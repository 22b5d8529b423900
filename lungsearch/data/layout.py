"""Which image files a data folder holds, by split and class (see :func:`read_layout`)."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field

import numpy as np

from lungsearch import cache
from lungsearch.data.base import IMAGE_EXTENSIONS, DataError
from lungsearch.data.groups import DEFAULT_GROUP_PATTERN, patient_groups, split_validation

TEST_FRACTION = 0.15  # share of a layout (c) folder carved off as its test split


@dataclass(frozen=True)
class Layout:
    """The image files of a data folder, by split and class."""

    root: str
    kind: str  # "train-val-test", "train-test" or "class-folders"
    class_names: tuple[str, ...]
    splits: dict[str, dict[str, list[str]]]  # {split: {class: [paths]}}, split in train/val/test
    split_record: str | None = None  # layout (c): the JSON file recording the carved test split
    ignored: dict[str, int] = field(default_factory=dict)  # subfolder of a class folder (relative to root): images in it, not read
    folders: tuple[str, ...] = ()  # which of train/ val/ test/ the folder has (by name: test/ is never opened for this)

    def files(self, split: str) -> tuple[list[str], np.ndarray]:
        """Paths and integer labels of one split (empty when the split is absent)."""
        paths, labels = [], []
        for label, name in enumerate(self.class_names):
            found = self.splits.get(split, {}).get(name, [])
            paths += found
            labels += [label] * len(found)
        return paths, np.asarray(labels, dtype=np.int64)


def content_fingerprint(layout: Layout) -> dict:
    """What a study remembers of its data: the train and val images by name within the folder, with their sizes.

    Names are relative to the data folder, so the same folder given by another
    path (``base/``, its absolute path, a symlink, a copy) has the same
    fingerprint, and another folder that happens to share its name has not.
    """
    digest = hashlib.sha256(b"lungsearch-data-1\n")
    files = {}
    for split in ("train", "val"):
        paths, labels = layout.files(split)
        files[split] = len(paths)
        for path, label in sorted(zip(paths, labels.tolist())):
            try:
                size = os.stat(path).st_size
            except OSError:
                size = -1
            digest.update(f"{split}|{layout.class_names[label]}|{os.path.relpath(path, layout.root)}|{size}\n".encode())
    return {"content_fingerprint": digest.hexdigest()[:24], "files": files}


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
        return Layout(root, kind, classes, splits, ignored=ignored, folders=tuple(sorted(present)))
    ignored = {}
    per_class = _scan_classes(root, root, ignored, root)
    classes = _check_classes(root, {"": per_class})
    splits, record = _carve_test(root, classes, per_class, seed, test_fraction, group_pattern, cache_dir)
    return Layout(root, "class-folders", classes, splits, record, ignored)


def not_a_folder(root: str) -> str:
    """Why ``root`` cannot be read as a data folder, and what to give instead (the setting named ``{data}``, see :func:`~lungsearch.data.base.word`)."""
    if os.path.isfile(root):
        archive = root.lower().endswith((".zip", ".tar", ".tar.gz", ".tgz", ".tar.xz", ".7z"))
        return (f"data folder {root} is a file, not a folder; "
                + ("unpack it and give {data} the folder it makes" if archive else
                   "give {data} the folder that holds the class folders (train/<class>/ or <class>/), or {data} demo"))
    return f"data folder {root} does not exist; give {{data}} a folder with train/<class>/ images, or {{data}} demo"


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
