"""What every export module shares: the error an export raises, and the JSON file that says what a model is.

An exported ``model.keras`` has its metadata in ``model.json`` beside it
(:func:`meta_path`), marked with :data:`FORMAT`; `predict` requires the mark.
"""

from __future__ import annotations

import os

FORMAT = "lungsearch-model/1"  # marks a model.json written by lungsearch; predict requires it


class ExportError(ValueError):
    """The asked-for model cannot be exported."""

    user_error = True  # the CLI prints it on one line and exits 2


def meta_path(model_path: str) -> str:
    return os.path.splitext(model_path)[0] + ".json"


def color_mode(data) -> str:
    """``grayscale`` or ``rgb``: what the input channels of ``data`` (the study's decoded images) say."""
    return "grayscale" if data.input_shape[-1] == 1 else "rgb"
