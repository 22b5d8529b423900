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

# The patient id in the file names of the common chest X-ray sets, one capture group each (their ids are kept apart):
# Kermany: person1000_bacteria_2931.jpeg, IM-0115-0001.jpeg, NORMAL2-IM-1427-0001.jpeg; NIH ChestX-ray14: 00012345_003.png
# (patient, then follow-up); CheXpert flattened: patient00001_study1_view1_frontal.jpg; MIMIC-CXR flattened:
# p10000032_s50414267_02aa804e.jpg (an image's path patientNNNNN/studyN/... or pNN/pNNNNNNNN/sNN/... put into its name).
# The first two alternatives and their group numbers are those of earlier versions: Kermany studies split as before.
GROUP_SCHEMES = (
    ("Kermany person<N>_", r"person(\d+)_"),
    ("Kermany IM-<N>-", r"IM-(\d+)-"),
    ("NIH ChestX-ray14 <patient>_<follow-up>", r"^(\d{8})_\d{3}\.\w+$"),
    ("CheXpert patient<N>", r"patient(\d+)"),
    ("MIMIC-CXR p<8 digits>", r"(?:^|_)p(\d{8})(?=[_.])"),
)
DEFAULT_GROUP_PATTERN = "|".join(regex for _, regex in GROUP_SCHEMES)
MOST = 0.5  # a pattern that finds a patient id in no more than this share of the names: the split is by image


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
        raise DataError(f"{{group_pattern}} {pattern!r} is not a valid regular expression: {exc}") from None
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


def group_coverage(paths: list[str], pattern: str | None = None) -> dict:
    """How far ``pattern`` finds patients in the names of ``paths``: matched, of, by (patient/image), schemes, images per patient.

    ``by`` is "image" where no more than half the names hold a patient id: a
    split then keeps nothing together, and nothing may claim it is by patient.
    """
    groups = patient_groups(paths, pattern)
    matched = [g for g in groups if not g.startswith("file:")]
    per_patient = np.bincount(np.unique(matched, return_inverse=True)[1]) if matched else np.zeros(0, int)
    out = {
        "matched": len(matched), "of": len(groups), "by": "patient" if len(matched) > MOST * len(groups) else "image",
        "patients": int(len(per_patient)),
        "images_per_patient": {"median": float(np.median(per_patient)), "max": int(per_patient.max())} if len(per_patient) else None,
    }
    if not pattern or pattern == DEFAULT_GROUP_PATTERN:  # which of the known schemes the names follow
        counts = np.bincount([int(g.split(":")[0]) for g in matched], minlength=len(GROUP_SCHEMES) + 1)
        out["schemes"] = {name: int(counts[i + 1]) for i, (name, _) in enumerate(GROUP_SCHEMES) if counts[i + 1]}
    return out


def check_coverage(coverage: dict, pattern: str | None, where: str) -> str | None:
    """Raise where a pattern the user gave finds no patient at all; the one-line warning where the split is by image, else None.

    The warning names the setting as ``{group_pattern}``: :func:`~lungsearch.data.base.word` words it.
    """
    if coverage["of"] and not coverage["matched"] and pattern and pattern != DEFAULT_GROUP_PATTERN:
        raise DataError(f"{{group_pattern}} {pattern!r} finds a patient id in none of the {coverage['of']} file names of {where}; "
                        "fix the pattern (its first matching group is the id) or leave it out")
    if coverage["by"] == "image" and coverage["of"]:
        return (f"no patient id in {coverage['of'] - coverage['matched']} of {coverage['of']} file names of {where}, so the "
                "validation split is by image: one patient's images may sit on both sides; give {group_pattern} REGEX "
                "(its first group is the patient id) if the names hold one")
    return None


def split_validation(labels: np.ndarray, groups: list[str], fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Train and validation indices: stratified by label, no group on both sides."""
    from sklearn.model_selection import StratifiedGroupKFold

    if not 0.0 < fraction < 0.5:
        raise DataError(f"{{val_fraction}} must be between 0 and 0.5, got {fraction}")
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


def kfold(labels: np.ndarray, groups: list[str], k: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """K (fit, held-out) index pairs: stratified by label, a patient's images on one side, every image held out once."""
    from sklearn.model_selection import StratifiedGroupKFold

    labels = np.asarray(labels)
    if k < 2:
        raise DataError(f"{{folds}} must be at least 2, got {k}")
    if len(set(groups)) < k:
        raise DataError(f"only {len(set(groups))} patients (groups) for {k} folds; lower {{folds}}")
    counts = np.bincount(labels) if len(labels) else np.zeros(0, int)
    if counts.size and counts[counts > 0].min() < k:
        raise DataError(f"a class has only {counts[counts > 0].min()} images, fewer than the {k} folds; lower {{folds}}")
    splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return [(np.sort(fit), np.sort(held)) for fit, held in splitter.split(np.zeros(len(labels)), labels, groups)]


def split_cached(labels: np.ndarray, groups: list[str], fraction: float, seed: int, cache_dir: str | None):
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
