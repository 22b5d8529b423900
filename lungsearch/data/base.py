"""What every data module shares: the error, the array containers, image file extensions and color modes."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

IMAGE_EXTENSIONS = (".jpeg", ".jpg", ".png", ".bmp", ".tif", ".tiff")
COLOR_MODES = ("grayscale", "rgb")
# The settings a data message may name, written {image_size} in it: the data layer knows settings, not the CLI's flags
SETTINGS = ("data", "image_size", "val_fraction", "group_pattern", "dedupe", "folds", "workers")
_SETTING = re.compile(r"\{(" + "|".join(SETTINGS) + r")\}")


def word(template: str, name: Callable[[str], str] = str) -> str:
    """``template`` with each ``{setting}`` of :data:`SETTINGS` given as ``name(setting)`` (default: the setting's own name)."""
    return _SETTING.sub(lambda m: name(m.group(1)), template)


class _Worded:
    """A message that names settings as ``{image_size}``: ``str()`` says ``image_size``, the CLI its flag (:meth:`worded`)."""

    def __init__(self, template: str):
        self.template = template
        super().__init__(word(template))

    def worded(self, name: Callable[[str], str]) -> str:
        return word(self.template, name)


class DataError(_Worded, ValueError):
    """A data folder that cannot be used as asked."""

    user_error = True  # the CLI prints it on one line (settings worded as its flags) and exits 2


class DataWarning(_Worded, UserWarning):
    """Something about the data the user should know; the CLI words its settings as flags, like :class:`DataError`'s."""


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
    # each image's patient (group) id, per split: the folds of a refit keep a patient's images on one side
    groups: dict = field(default_factory=dict, repr=False)  # {"train": [...], "val": [...]}; empty where unknown

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.train.x.shape[1:])


def channels(color_mode: str) -> int:
    if color_mode not in COLOR_MODES:
        raise DataError(f"unknown color mode {color_mode!r}; use one of {', '.join(COLOR_MODES)}")
    return 1 if color_mode == "grayscale" else 3
