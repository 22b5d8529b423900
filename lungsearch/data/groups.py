"""Patient groups parsed from file names, and the validation split that keeps a patient on one side."""

from __future__ import annotations

import hashlib
import json
import os
import re
import warnings

import numpy as np

from lungsearch import cache
from lungsearch.data.base import DataError

# Patient id in Kermany file names: person1000_bacteria_2931.jpeg, IM-0115-0001.jpeg, NORMAL2-IM-1427-0001.jpeg
DEFAULT_GROUP_PATTERN = r"person(\d+)_|IM-(\d+)-"


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
