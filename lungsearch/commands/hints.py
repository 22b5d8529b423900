"""`next:` lines that work when pasted: each carries the storage and study it was printed for.

One command per line, so a pasted line is one command (a ``|`` between two
commands on one line would pipe the first into the second).
"""

from __future__ import annotations

import os
import shlex


def command(*args: str) -> str:
    return "lungsearch " + shlex.join(str(a) for a in args)


def where(storage: str, study: str) -> list[str]:
    """The flags that find this study again, whatever the working defaults."""
    return ["--storage", storage, "--study", study]


def after_run(storage: str, study: str) -> list[str]:
    return [command("report", *where(storage, study)), command("best", *where(storage, study), "--export", "model.keras")]


def after_best(model: str, example: str) -> list[str]:
    """``predict`` on one test image, with its Grad-CAM (the test split has already been read once, by ``best``)."""
    return [command("predict", example, "--model", model, "--gradcam", "gradcam")]


def show(lines: list[str], stream=None) -> None:
    for line in lines:
        print(f"next: {line}", file=stream, flush=True)


def test_image(study) -> str | None:
    """One test image of the study's data folder (of the disease class where there is one); None for demo data."""
    from lungsearch import data as data_mod
    from lungsearch.evaluate import positive_class

    source = (study.user_attrs.get("data") or {}).get("source") or (study.user_attrs.get("config") or {}).get("data")
    if not source or source == data_mod.DEMO or not os.path.isdir(source):
        return None
    config = study.user_attrs.get("config") or {}
    try:
        layout = data_mod.read_layout(source, seed=config.get("seed", 0), cache_dir=config.get("cache_dir"),
                                      group_pattern=study.user_attrs.get("group_pattern", data_mod.DEFAULT_GROUP_PATTERN))
    except data_mod.DataError:
        return None
    paths, labels = layout.files("test")
    if not len(paths):
        return None
    positive = positive_class(layout.class_names)
    chosen = [p for p, label in zip(paths, labels) if label == positive] or paths
    return chosen[0]
