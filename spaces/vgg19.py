"""Transfer space `vgg19`: VGG19 backbone, ImageNet weights downloaded by Keras.  See spaces/transfer.py."""

from __future__ import annotations

from spaces.transfer import COLOR_MODE, DOWNLOADED_WEIGHTS, IMAGE_SIZE, WARM_STARTS, Backbone, build_transfer, feature_split, fit_options, suggest

NAME = "vgg19"
BACKBONE = Backbone(NAME, "VGG19", r"^block(\d)_", "caffe")
DESCRIPTION = "VGG19 backbone; frozen or last 1-3 blocks trainable, head, optional fine-tune phase. " + DOWNLOADED_WEIGHTS
WEIGHTS_NOTE = DOWNLOADED_WEIGHTS  # said once at the start of `run` when no --weights is given

__all__ = ["BACKBONE", "COLOR_MODE", "DESCRIPTION", "IMAGE_SIZE", "NAME", "WARM_STARTS", "WEIGHTS_NOTE", "build", "feature_split", "fit_options", "suggest"]


def build(trial, *, input_shape, num_classes, weights=None, hflip: bool = False, **_):
    return build_transfer(BACKBONE, trial, input_shape=input_shape, num_classes=num_classes, weights=weights, hflip=hflip)
