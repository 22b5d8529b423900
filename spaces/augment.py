"""Augmentation as Keras preprocessing layers inside the model.

The layers are active only while training (Keras switches them off in
``predict`` and ``evaluate``), so the exported model gives the same answer as
the search measured.  X-rays have a fixed orientation: no horizontal flip
unless the run asks for it (``--hflip``), and only small rotations.

A space suggests the strengths through :func:`suggest_strengths`, which it
calls from its own ``suggest``; this module only turns strengths into layers.
"""

from __future__ import annotations

# parameter name -> (low, high) strength range, as fractions (rotation: of a full turn)
RANGES = {
    "aug_translate": (0.0, 0.15),  # shift up to this share of height/width
    "aug_zoom": (0.0, 0.2),  # zoom in or out by up to this share
    "aug_rotate": (0.0, 0.05),  # rotate up to this share of 360 degrees (0.05 = 18 degrees)
    "aug_contrast": (0.0, 0.3),  # scale contrast by a factor in [1 - s, 1 + s]
}


def suggest_strengths(trial) -> dict[str, float]:
    """The four strengths, suggested through ``trial`` (0 switches a layer off)."""
    return {name: trial.suggest_float(name, low, high) for name, (low, high) in RANGES.items()}


def augmentation_layers(strengths: dict[str, float], *, hflip: bool = False, seed: int | None = None) -> list:
    """Preprocessing layers for the given strengths; a strength of 0 adds no layer."""
    from keras import layers

    out = []
    if hflip:
        out.append(layers.RandomFlip("horizontal", seed=seed, name="aug_hflip"))
    translate = float(strengths.get("aug_translate", 0.0))
    if translate > 0:
        out.append(layers.RandomTranslation(translate, translate, fill_mode="constant", seed=seed, name="aug_translate"))
    zoom = float(strengths.get("aug_zoom", 0.0))
    if zoom > 0:
        out.append(layers.RandomZoom((-zoom, zoom), fill_mode="constant", seed=seed, name="aug_zoom"))
    rotate = float(strengths.get("aug_rotate", 0.0))
    if rotate > 0:
        out.append(layers.RandomRotation(rotate, fill_mode="constant", seed=seed, name="aug_rotate"))
    contrast = float(strengths.get("aug_contrast", 0.0))
    if contrast > 0:
        out.append(layers.RandomContrast(contrast, seed=seed, name="aug_contrast"))
    return out


def apply(x, strengths: dict[str, float], *, hflip: bool = False, seed: int | None = None):
    """``x`` passed through the augmentation layers (unchanged when there are none)."""
    for layer in augmentation_layers(strengths, hflip=hflip, seed=seed):
        x = layer(x)
    return x
