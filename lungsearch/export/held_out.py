"""The test split of an export: checked to be there before any work, and read once, for the exported model's report.

The search never reads it (STYLE.md, "three things not to do"); `best` reads it
here, decoded as the study's train/validation data was.
"""

from __future__ import annotations

import optuna

from lungsearch.export.base import ExportError, color_mode
from lungsearch.export.rebuild import data_source


def check_test_split(study: optuna.Study) -> None:
    """The study's data folder still has test/<class>/ images: `best` evaluates on them, so it says so before any work."""
    from lungsearch import data as data_mod

    source = data_source(study)
    if source == data_mod.DEMO:
        return
    config = study.user_attrs.get("config") or {}
    layout = data_mod.read_layout(source, seed=config.get("seed", 0), cache_dir=config.get("cache_dir"),
                                  group_pattern=study.user_attrs.get("group_pattern", data_mod.DEFAULT_GROUP_PATTERN))
    if not layout.files("test")[0]:
        raise ExportError(f"{source} has no test/<class>/ images, and `best` evaluates the exported model on them once; "
                          "add a test split (images of patients not in train/) and run `best` again")


def load_test(study: optuna.Study, data):
    """The test split, decoded like ``data`` (the study's train/validation data): same size, color mode and classes."""
    from lungsearch import data as data_mod

    attrs = study.user_attrs
    config = attrs.get("config", {})
    return data_mod.load_test(
        data_source(study), image_size=int(data.input_shape[0]), color_mode=color_mode(data), class_names=tuple(data.class_names),
        seed=config.get("seed", 0), group_pattern=attrs.get("group_pattern", data_mod.DEFAULT_GROUP_PATTERN),
        cache_dir=config.get("cache_dir"),
    )
