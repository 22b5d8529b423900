"""Augmentation as Keras preprocessing layers inside the model.

The layers are active only while training (Keras switches them off in
``predict`` and ``evaluate``), so the exported model gives the same answer as
the search measured.  X-rays have a fixed orientation: no horizontal flip
unless the run asks for it (``--hflip``), and only small rotations.

A space suggests augmentation through :func:`suggest`, which it calls from
its own ``suggest``: a switch ``augment`` (off / on), and the strengths only
when it is on.  Augmentation is a choice, not a tax: with every strength a
uniform draw, every trial augmented, and the seeds' hand CNN with the best
trial's strengths fell from validation AUC 0.916 to 0.829 on a small binary
folder.  This module also turns strengths into layers.
"""

from __future__ import annotations

import functools
import math

# parameter name -> (low, high) strength range, as fractions (rotation: of a full turn)
RANGES = {
    "aug_translate": (0.0, 0.15),  # shift up to this share of height/width
    "aug_zoom": (0.0, 0.2),  # zoom in or out by up to this share
    "aug_rotate": (0.0, 0.05),  # rotate up to this share of 360 degrees (0.05 = 18 degrees)
    "aug_contrast": (0.0, 0.3),  # scale contrast by a factor in [1 - s, 1 + s]
}


SWITCH = "augment"  # the categorical parameter: "off" or "on"


def suggest(trial) -> dict[str, float]:
    """``augment`` off (no strengths, no layers) or on (the four strengths, suggested through ``trial``)."""
    if trial.suggest_categorical(SWITCH, ["off", "on"]) == "off":
        return {}
    return suggest_strengths(trial)


def suggest_strengths(trial) -> dict[str, float]:
    """The four strengths, suggested through ``trial`` (0 switches a layer off)."""
    return {name: trial.suggest_float(name, low, high) for name, (low, high) in RANGES.items()}


def augmentation_layers(strengths: dict[str, float], *, hflip: bool = False, seed: int | None = None) -> list:
    """Preprocessing layers for the given strengths; a strength of 0 adds nothing.

    Translation, zoom and rotation are one :class:`RandomAffine` layer: one
    matrix per image and one batched bilinear resample.  Keras' own
    RandomTranslation/RandomZoom/RandomRotation resample image by image on the
    PyTorch backend (about 170 ms a batch of 32 on an H100, hundreds of small
    kernels), which made the GPU slower than a CPU.
    """
    from keras import layers

    out = []
    if hflip:
        out.append(layers.RandomFlip("horizontal", seed=seed, name="aug_hflip"))
    geometry = {k: float(strengths.get(f"aug_{k}", 0.0)) for k in ("translate", "zoom", "rotate")}
    if any(v > 0 for v in geometry.values()):
        out.append(random_affine(**geometry, seed=seed, name="aug_affine"))
    contrast = float(strengths.get("aug_contrast", 0.0))
    if contrast > 0:
        out.append(layers.RandomContrast(contrast, seed=seed, name="aug_contrast"))
    return out


def intensity_layer(strength: float, *, seed: int | None = None):
    """Random gamma, brightness and a little noise, for acquisition shift (training only; left out of exports).

    Per image, on pixels scaled to [0, 1]: a gamma in ``[1 - s, 1 + s]``
    (never below 0.2), then a brightness factor in ``[1 - s, 1 + s]``, then
    Gaussian noise of standard deviation ``s / 20``; back to [0, 255].  With
    ``s`` = 0.6: gamma 0.4-1.6 and brightness x0.4-1.6, the ranges in the
    spirit of MedMNIST-C that chest_xray's darker, more variable test normals call for.
    """
    return register_intensity()(strength=strength, seed=seed, name="aug_intensity")


def standardize_layer():
    """Per-image intensity standardisation, (x - mean) / std over each image, as a standard Keras layer.

    ``LayerNormalization`` over height, width and channels without a learnt
    scale or shift is exactly that, and loads in plain Keras (no custom
    layer), so an exported model still takes raw pixels.  It removes an
    image's overall brightness and contrast, which differ between
    acquisitions (chest_xray's test split is darker and more variable).
    """
    from keras import layers

    return layers.LayerNormalization(axis=(1, 2, 3), center=False, scale=False, epsilon=1e-3, name="standardize")


def apply(x, strengths: dict[str, float], *, hflip: bool = False, seed: int | None = None):
    """``x`` passed through the augmentation layers (unchanged when there are none)."""
    for layer in augmentation_layers(strengths, hflip=hflip, seed=seed):
        x = layer(x)
    return x


def inference_model(model):
    """``model`` without its augmentation layers (they pass inputs through at inference anyway).

    The exported file then loads in plain Keras, with no lungsearch import to
    register :class:`RandomAffine`.  The layers kept are the same objects, so
    the weights are shared.  A model with no ``aug_`` layer comes back as it is.
    """
    import keras

    if not any(layer.name.startswith("aug_") for layer in model.layers):
        return model

    def call(layer, *args, **kwargs):
        return args[0] if layer.name.startswith("aug_") else layer(*args, **kwargs)

    return keras.models.clone_model(model, clone_function=lambda layer: layer, call_function=call)


def random_affine(**kwargs):
    """A :class:`RandomAffine` layer (the class is made on first use, so importing this module needs no Keras)."""
    return register()(**kwargs)


@functools.cache
def register_intensity():
    """Define (once) and register :class:`RandomIntensity`; returns the class."""
    import keras
    from keras import ops

    @keras.saving.register_keras_serializable(package="lungsearch")
    class RandomIntensity(keras.layers.Layer):
        """Per-image random gamma, brightness and noise (see :func:`intensity_layer`); identity at inference."""

        def __init__(self, strength=0.5, seed=None, **kwargs):
            super().__init__(**kwargs)
            self.strength, self.seed = float(strength), seed
            self.seed_generator = keras.random.SeedGenerator(seed)

        def call(self, inputs, training=None):
            x = ops.cast(inputs, self.compute_dtype)
            if not training or self.strength <= 0:
                return x
            batch = ops.shape(x)[0]
            s = self.strength

            def uniform(low, high):
                return keras.random.uniform((batch, 1, 1, 1), low, high, seed=self.seed_generator, dtype=self.compute_dtype)

            unit = ops.clip(x / 255.0, 0.0, 1.0)
            unit = ops.power(unit + 1e-6, uniform(max(0.2, 1.0 - s), 1.0 + s))
            unit = unit * uniform(max(0.0, 1.0 - s), 1.0 + s)
            unit = unit + keras.random.normal(ops.shape(x), stddev=s / 20.0, seed=self.seed_generator, dtype=self.compute_dtype)
            return ops.clip(unit, 0.0, 1.0) * 255.0

        def compute_output_shape(self, input_shape):
            return input_shape

        def get_config(self):
            return {**super().get_config(), "strength": self.strength, "seed": self.seed}

    return RandomIntensity


@functools.cache
def register():
    """Define (once) and register :class:`RandomAffine` (and :class:`RandomIntensity`), so a model file holding one loads; returns RandomAffine."""
    register_intensity()
    import keras
    from keras import ops

    @keras.saving.register_keras_serializable(package="lungsearch")
    class RandomAffine(keras.layers.Layer):
        """Random shift, zoom and rotation in one batched resample, with Keras ops only (any backend).

        Per image: a shift of up to ``translate`` of the height and width, a
        scale in ``[1 - zoom, 1 + zoom]`` and a rotation of up to ``rotate`` of
        a full turn, about the centre; pixels from outside are 0.  Only while
        training; at inference the input passes through (as float).
        """

        def __init__(self, translate=0.0, zoom=0.0, rotate=0.0, seed=None, **kwargs):
            super().__init__(**kwargs)
            self.translate, self.zoom, self.rotate, self.seed = float(translate), float(zoom), float(rotate), seed
            self.seed_generator = keras.random.SeedGenerator(seed)
            self.supports_masking = True

        def call(self, inputs, training=None):
            x = ops.cast(inputs, self.compute_dtype)
            if not training:
                return x
            shape = ops.shape(x)
            batch, height, width, channels = shape[0], shape[1], shape[2], shape[3]

            def uniform(bound):
                return keras.random.uniform((batch, 1, 1), -bound, bound, seed=self.seed_generator, dtype=self.compute_dtype)

            angle = uniform(self.rotate * 2.0 * math.pi)
            scale = 1.0 + uniform(self.zoom)
            shift_y = uniform(self.translate) * ops.cast(height, self.compute_dtype)
            shift_x = uniform(self.translate) * ops.cast(width, self.compute_dtype)
            last_y = ops.cast(height, self.compute_dtype) - 1.0
            last_x = ops.cast(width, self.compute_dtype) - 1.0
            py = ops.reshape(ops.arange(height, dtype=self.compute_dtype) - last_y / 2.0, (1, -1, 1))
            px = ops.reshape(ops.arange(width, dtype=self.compute_dtype) - last_x / 2.0, (1, 1, -1))
            cos, sin = ops.cos(angle), ops.sin(angle)
            # where each output pixel reads from, (batch, height, width)
            src_y = scale * (cos * py - sin * px) + last_y / 2.0 - shift_y
            src_x = scale * (sin * py + cos * px) + last_x / 2.0 - shift_x
            y0, x0 = ops.floor(src_y), ops.floor(src_x)
            wy, wx = src_y - y0, src_x - x0
            flat = ops.reshape(x, (-1, channels))
            base = ops.reshape(ops.arange(batch, dtype="int32") * (height * width), (-1, 1, 1))
            out = 0.0
            for dy, dx, weight in ((0, 0, (1 - wy) * (1 - wx)), (0, 1, (1 - wy) * wx), (1, 0, wy * (1 - wx)), (1, 1, wy * wx)):
                yy, xx = y0 + dy, x0 + dx
                inside = ops.cast((yy >= 0) & (yy <= last_y) & (xx >= 0) & (xx <= last_x), self.compute_dtype)
                yi = ops.cast(ops.clip(yy, 0, last_y), "int32")
                xi = ops.cast(ops.clip(xx, 0, last_x), "int32")
                values = ops.reshape(ops.take(flat, ops.reshape(base + yi * width + xi, (-1,)), axis=0), shape)
                out = out + values * ops.expand_dims(weight * inside, -1)
            return out

        def compute_output_shape(self, input_shape):
            return input_shape

        def get_config(self):
            return {**super().get_config(), "translate": self.translate, "zoom": self.zoom, "rotate": self.rotate, "seed": self.seed}

    return RandomAffine
