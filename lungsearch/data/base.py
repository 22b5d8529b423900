"""What every data module shares: the error, the array containers, image file extensions and color modes."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

IMAGE_EXTENSIONS = (".jpeg", ".jpg", ".png", ".bmp", ".tif", ".tiff")
COLOR_MODES = ("grayscale", "rgb")


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
    # each image's patient (group) id, per split: the folds of a refit keep a patient's images on one side
    groups: dict = field(default_factory=dict, repr=False)  # {"train": [...], "val": [...]}; empty where unknown

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.train.x.shape[1:])


def channels(color_mode: str) -> int:
    if color_mode not in COLOR_MODES:
        raise DataError(f"unknown color mode {color_mode!r}; use one of {', '.join(COLOR_MODES)}")
    return 1 if color_mode == "grayscale" else 3
