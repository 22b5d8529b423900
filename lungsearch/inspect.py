"""What a data folder holds, before any search: ``lungsearch data inspect``.

Counts per split and class, patients per split and their overlap (with the
validation split the search would carve, same seed and fraction), byte-identical
duplicates, original image sizes and modes, unreadable files, images in
subfolders of class folders (which are not read); and two
pictures: ``class_distribution.png`` and ``samples.png``.  Images are decoded
through the same cache as the search, so inspecting first makes the first run
at that image size a cache hit.
"""

from __future__ import annotations

import os

import numpy as np

from lungsearch import data


def inspect_folder(
    root: str,
    *,
    image_size: int = 64,
    color_mode: str = "grayscale",
    val_fraction: float = 0.15,
    seed: int = 0,
    group_pattern: str | None = None,
    cache_dir: str | None = None,
) -> tuple[dict, dict]:
    """A JSON-ready summary, and the decoded samples per class for the pictures."""
    pattern = group_pattern or data.DEFAULT_GROUP_PATTERN
    layout = data.read_layout(root, seed=seed, group_pattern=pattern, cache_dir=cache_dir)
    names = layout.class_names
    all_paths, all_labels, split_of = [], [], []
    for split in ("train", "val", "test"):
        paths, labels = layout.files(split)
        all_paths += paths
        all_labels += labels.tolist()
        split_of += [split] * len(paths)
    decoded = data.decode_cached(all_paths, image_size, color_mode, cache_dir=cache_dir, desc="inspecting", group=layout.root + "|inspect")
    labels = np.asarray(all_labels, dtype=np.int64)
    split_of = np.asarray(split_of)
    readable = np.zeros(len(all_paths), bool)
    readable[decoded.kept] = True
    groups = data.patient_groups(all_paths, pattern)
    grouping = data.group_coverage(all_paths, pattern)

    # the search's view: train (+ a tiny val merged) split into train / carved validation
    search_idx = np.flatnonzero(readable & (split_of != "test"))
    given_val = np.flatnonzero(readable & (split_of == "val"))
    parts: dict[str, np.ndarray] = {}
    # not quite load_search_data's rule (it counts listed val files, not readable ones, and also wants every class in
    # val/): a val/ of 100+ images lacking a class shows here as "given val/" but is merged by run
    if len(given_val) >= data.SMALL_VAL:
        parts["train"], parts["val"] = np.flatnonzero(readable & (split_of == "train")), given_val
        validation = "given val/"
    else:
        tr, va = data.split_validation(labels[search_idx], [groups[i] for i in search_idx], val_fraction, seed)
        parts["train"], parts["val"] = search_idx[tr], search_idx[va]
        validation = f"carved {val_fraction:g} of train by {grouping['by']}, seed {seed}"  # as run records it
    parts["test"] = np.flatnonzero(readable & (split_of == "test"))
    patients, overlaps = data.group_report(groups, parts)

    dups = data.duplicate_sets(decoded.sha1)
    across = [s for s in dups if len({split_of[i] for i in s}) > 1]
    summary = {
        "root": layout.root,
        "layout": layout.kind,
        "classes": list(names),
        "splits": {s: {n: len(layout.splits[s][n]) for n in names} for s in ("train", "val", "test") if s in layout.splits},
        "search_splits": {s: dict(zip(names, np.bincount(labels[idx], minlength=len(names)).tolist())) for s, idx in parts.items()},
        "validation": validation,
        "patients": patients,
        "patient_overlap": overlaps["train-val"],
        "patient_overlap_pairs": overlaps,
        "group_pattern": pattern,
        "grouping": grouping,  # how many names held a patient id, by which known scheme, images per patient
        "duplicates": int(sum(len(s) - 1 for s in dups)),
        "duplicates_across_splits": len(across),
        "duplicates_across_patients": sum(len({groups[i] for i in s}) > 1 for s in dups),  # could straddle train/val
        "duplicate_examples": [[os.path.relpath(all_paths[i], layout.root) for i in s] for s in dups[:10]],
        **data.summarize_modes(decoded),
        "skipped": [all_paths[i] for i in range(len(all_paths)) if not readable[i]],
        "skipped_reasons": decoded.skipped,
        "ignored_subfolders": layout.ignored,  # {subfolder: images}: not read, only images directly in a class folder are
    }
    if layout.split_record:
        summary["split_record"] = layout.split_record
    rows_of = np.full(len(all_paths), -1)
    rows_of[decoded.kept] = np.arange(len(decoded.kept))
    rng = np.random.default_rng(seed)
    samples = {}
    for k, name in enumerate(names):
        idx = np.flatnonzero(readable & (labels == k))
        pick = np.sort(rng.choice(idx, size=min(6, len(idx)), replace=False)) if len(idx) else idx
        samples[name] = np.asarray(decoded.x[rows_of[pick]])
    return summary, samples


def write_figures(summary: dict, samples: dict, out: str) -> list[str]:
    """``class_distribution.png`` (counts per split and class) and ``samples.png`` (a grid per class)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(out, exist_ok=True)
    written = []
    splits, names = summary["splits"], summary["classes"]
    fig, ax = plt.subplots(figsize=(1.6 + 1.4 * len(splits) * len(names) / 2, 3.6))
    width = 0.8 / len(names)
    for k, name in enumerate(names):
        counts = [splits[s][name] for s in splits]
        bars = ax.bar(np.arange(len(splits)) + k * width, counts, width, label=name)
        ax.bar_label(bars, fontsize=8)
    ax.set_xticks(np.arange(len(splits)) + width * (len(names) - 1) / 2, list(splits))
    ax.set_ylabel("images")
    ax.set_title(f"{os.path.basename(summary['root'])}: images per split and class")
    ax.legend()
    fig.tight_layout()
    written.append(os.path.join(out, "class_distribution.png"))
    fig.savefig(written[-1], dpi=110)
    plt.close(fig)

    cols = max((len(v) for v in samples.values()), default=1) or 1
    fig, axes = plt.subplots(len(samples), cols, figsize=(1.5 * cols, 1.6 * len(samples)), squeeze=False)
    for r, (name, imgs) in enumerate(samples.items()):
        for c in range(cols):
            ax = axes[r][c]
            ax.axis("off")
            if c < len(imgs):
                img = imgs[c]
                ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray", vmin=0, vmax=255)
            if c == 0:
                ax.set_title(name, fontsize=9, loc="left")
    fig.tight_layout()
    written.append(os.path.join(out, "samples.png"))
    fig.savefig(written[-1], dpi=110)
    plt.close(fig)
    return written


def format_text(summary: dict) -> str:
    """The summary as a few readable lines."""
    names = summary["classes"]
    lines = [f"{summary['root']}: layout {summary['layout']}, classes {', '.join(names)}"]
    width = max(len(n) for n in names) + 2
    lines.append("split  " + "".join(f"{n:>{width}}" for n in names) + f"{'patients':>10}")
    for split, counts in summary["search_splits"].items():
        lines.append(f"{split:<7}" + "".join(f"{counts[n]:>{width}}" for n in names) + f"{summary['patients'][split]:>10}")
    g = summary["grouping"]
    schemes = ", ".join(f"{k} x{v}" for k, v in (g.get("schemes") or {}).items()) or "the --group-pattern"
    per = g["images_per_patient"]
    lines.append(f"patients: an id in {g['matched']} of {g['of']} file names ({schemes})"
                 + (f", {g['patients']} patients, images per patient median {per['median']:g}, max {per['max']}" if per else ""))
    if g["by"] == "image":
        lines.append(f"validation: {summary['validation']}; BY IMAGE: no patient id in most names, so one patient may be "
                     "on both sides; give --group-pattern REGEX")
    else:
        lines.append(f"validation: {summary['validation']}; patient overlap train-val {summary['patient_overlap']}, "
                     + ", ".join(f"{k} {v}" for k, v in summary["patient_overlap_pairs"].items() if k != "train-val"))
    lines.append(f"duplicates: {summary['duplicates']} byte-identical copies ({summary['duplicates_across_splits']} sets across splits, "
                 f"{summary['duplicates_across_patients']} across patients; --dedupe drops them)")
    lines.append("sizes: " + ", ".join(f"{k} x{v}" for k, v in list(summary["sizes"].items())[:5])
                 + ("" if len(summary["sizes"]) <= 5 else f", ... ({len(summary['sizes'])} sizes)"))
    lines.append("modes: " + ", ".join(f"{k} x{v}" for k, v in summary["modes"].items()))
    lines.append(f"skipped: {len(summary['skipped'])} unreadable files" + "".join(f"\n  {s}" for s in summary["skipped_reasons"]))
    ignored = summary.get("ignored_subfolders") or {}
    lines.append(f"not read: {sum(ignored.values())} images in subfolders of class folders"
                 + (" (only images directly inside a class folder are read; move them up to use them)" if ignored else "")
                 + "".join(f"\n  {k}: {n}" for k, n in ignored.items()))
    return "\n".join(lines)

