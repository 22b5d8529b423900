"""The entry points: train/validation arrays for a search, and the test split for the final evaluation only."""

from __future__ import annotations

import os
import warnings

import numpy as np

from lungsearch.data.base import Arrays, DataError, DataWarning, SearchData, channels
from lungsearch.data.decoding import decode_cached
from lungsearch.data.dedupe import duplicate_sets, hash_files
from lungsearch.data.groups import DEFAULT_GROUP_PATTERN, group_coverage, group_report, patient_groups, split_cached, split_validation
from lungsearch.data.layout import content_fingerprint, ignored_message, read_layout

DEMO = "demo"
SMALL_VAL = 100  # a given val/ with fewer images is merged into train and validation is carved instead


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
    processes: int = 1,
) -> SearchData:
    """Train and validation arrays for a search.  Never decodes the test split.

    ``dedupe`` drops byte-identical copies from train and validation: a file
    equal to a test file, and every repeat of a file already seen in train.
    ``processes``: how many processes will hold these arrays at once (the
    workers of a run), for the memory check before decoding.
    """
    c = channels(color_mode)
    group_pattern = group_pattern or DEFAULT_GROUP_PATTERN
    if source == DEMO:
        from lungsearch import demo

        x, y = demo.make_split("train", image_size)
        x = _to_channels(x, c)
        groups = [f"file:{i}" for i in range(len(y))]
        train_idx, val_idx = split_validation(y, groups, val_fraction, seed)
        info = {"source": DEMO, "counts": {"train": len(train_idx), "val": len(val_idx)}, "skipped": []}
        return SearchData(demo.CLASS_NAMES, Arrays(x[train_idx], y[train_idx]), Arrays(x[val_idx], y[val_idx]), info,
                          groups={"train": [groups[i] for i in train_idx], "val": [groups[i] for i in val_idx]})

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
    decoded = decode_cached(paths, image_size, color_mode, cache_dir=cache_dir, desc="decoding train", group=layout.root,
                            processes=processes)
    for line in decoded.skipped:
        warnings.warn(f"skipped unreadable image {line}")
    kept = np.asarray(decoded.kept, dtype=np.int64)  # positions in paths of the rows of decoded.x

    dropped = []
    if dedupe:
        # read again by every call (each worker of a run, and `best --export` just before load_test decodes them):
        # not cached, as it is cheap (chest_xray's 624 test files: 0.04 s from the page cache)
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
        warnings.warn(DataWarning(f"{{dedupe}} dropped {len(dropped)} byte-identical copies from train/validation"))
    file_idx = kept[rows]
    row_labels = labels[file_idx]
    groups = patient_groups([paths[i] for i in file_idx], group_pattern)
    if use_given_val:
        is_val = file_idx >= n_given_train
        train_rows, val_rows = np.flatnonzero(~is_val), np.flatnonzero(is_val)
    else:
        train_rows, val_rows = split_cached(row_labels, groups, val_fraction, seed, cache_dir)
    missing = [n for k, n in enumerate(layout.class_names) if not np.any(row_labels[val_rows] == k)]
    if missing:
        raise DataError(f"the validation split of {source} has no {', '.join(missing)} image ({len(set(groups))} patients in all); "
                        "raise {val_fraction} or add images")
    per_split, overlap = group_report(groups, {"train": train_rows, "val": val_rows})
    if overlap["train-val"]:
        warnings.warn(f"{overlap['train-val']} patients appear in both train/ and val/ of {source}")
    dup_within = sum(len(s) - 1 for s in duplicate_sets([decoded.sha1[i] for i in file_idx]))
    grouping = group_coverage([paths[i] for i in file_idx], group_pattern)  # "by": "image" where names hold no patient id
    info = {
        "source": os.path.abspath(source),
        "layout": layout.kind,
        "validation": "given val/" if use_given_val else f"carved {val_fraction:g} by {grouping.get('by', 'patient')}, seed {seed}",
        "counts": {"train": int(len(train_rows)), "val": int(len(val_rows))},
        "class_counts": {s: dict(zip(layout.class_names, np.bincount(row_labels[r], minlength=len(layout.class_names)).tolist()))
                         for s, r in (("train", train_rows), ("val", val_rows))},
        "groups": per_split,
        "group_overlap": overlap["train-val"],
        "group_pattern": group_pattern,
        "grouping": grouping,
        "duplicates_left": int(dup_within),
        "deduped": dropped,
        "skipped": decoded.skipped,
        "ignored_subfolders": layout.ignored,
        "notes": notes,
        "fingerprint": decoded.fingerprint,
        **content_fingerprint(layout),  # what a resume compares: names within the folder and sizes, not the path given
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
        groups={"train": [groups[i] for i in train_rows], "val": [groups[i] for i in val_rows]},
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
    # `best --export` lists the folder three times (load_search_data, here, and commands/hints.test_image); this
    # listing also checks that test/ has the classes of train/, and costs 7 ms on chest_xray: kept, not passed along
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
