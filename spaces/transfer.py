"""Transfer learning from a ``keras.applications`` backbone: the shared space.

Every transfer space is a row of the table in :mod:`spaces.backbones`: a
:class:`Backbone` built here, so the spaces share one set of parameter names:

- ``trainable_blocks`` 0-3: 0 freezes the whole backbone, k trains its last k
  blocks (with pretrained weights batch-norm layers stay frozen, as the Keras
  fine-tuning guide does; from random weights they train, or their initial
  statistics would wreck every activation);
- a head of batch norm (on/off), dropout and dense units;
- optimizer and learning rate;
- ``fine_tune``: an optional second phase, from half the epochs on, that
  unfreezes the whole backbone (batch norm still frozen) and continues at
  ``learning_rate * fine_tune_lr_factor`` (carried out by ``fit``).

The model takes raw pixels: a grayscale image is repeated to three channels
inside the model, then the backbone's own preprocessing follows as layers, so
an exported model needs nothing around it.

Backbone weights (the ``weights`` fact) of the ``keras.applications`` spaces
(the EfficientNet-Lite spaces ship their own, see spaces/backbones.py):
``None`` or ``"imagenet"`` uses the
ImageNet weights when Keras can load or fetch them; a path loads a local
weights file (``--weights PATH`` or ``LUNGSEARCH_WEIGHTS``); ``"random"`` asks
for random initialisation.  When ImageNet weights cannot be had, the backbone
starts from random weights and the trial (and its study) gets a
``weights_warning`` user attribute, and Python warns: never silently.
"""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass
from typing import Callable

from spaces.common import OPTIMIZERS, check_facts, compile_model
from spaces.registry import SpaceError

IMAGE_SIZE = 224  # default input side: what the ImageNet weights were trained at
COLOR_MODE = "grayscale"
MIN_SIDE = 32  # the smallest input every backbone here accepts with include_top=False
MAX_TRAINABLE_BLOCKS = 3
FINE_TUNE_START = 0.5  # the second phase starts after this share of the epochs

# What the keras.applications spaces say about their weights (DESCRIPTION, and once at the start of `run`)
DOWNLOADED_WEIGHTS = (
    "ImageNet weights need the network (Keras downloads them at run time); offline it trains from RANDOM "
    "weights unless --weights PATH names a local file. --space efficientnet-lite0 has ImageNet weights installed"
)

IMAGENET_MEAN = (0.485, 0.456, 0.406)  # "torch" preprocessing (DenseNet)
IMAGENET_STD = (0.229, 0.224, 0.225)
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)  # "caffe" preprocessing (VGG)


@dataclass(frozen=True)
class Backbone:
    name: str  # the space name
    application: str  # attribute of keras.applications
    block_pattern: str  # regex whose groups identify a backbone block from a layer name
    preprocess: str  # "tf" ([-1, 1]), "torch" (ImageNet mean/std), "caffe" (BGR minus mean), "lite" ((x - 127) / 128), "none" (inside the backbone)
    description: str = ""
    # (shape, weights, cache_dir=...) -> (model, weights used, warning or None), for a backbone not in keras.applications
    load: Callable | None = None


# Known-good starting point of every transfer space, enqueued as the first trial of a new study:
# the backbone frozen (features as they come) under a small head, which is cheap and, with pretrained
# weights, the setting that carried to chest_xray's shifted test split.
WARM_STARTS = [
    {
        "name": "frozen-backbone",
        "params": {
            "trainable_blocks": 0, "head_batch_norm": False, "head_dropout": 0.2, "head_units": 128,
            "optimizer": "adam", "learning_rate": 1e-3, "fine_tune": False, "batch_size": 32,
        },
    },
]

WEIGHTS_FAILED: dict[str, str] = {}  # application -> why ImageNet weights failed, once per process


def suggest(trial) -> dict:
    """Every choice of a transfer space, suggested through ``trial``."""
    p = {
        "trainable_blocks": trial.suggest_int("trainable_blocks", 0, MAX_TRAINABLE_BLOCKS),
        "head_batch_norm": trial.suggest_categorical("head_batch_norm", [False, True]),
        "head_dropout": trial.suggest_float("head_dropout", 0.0, 0.5),
        "head_units": trial.suggest_int("head_units", 32, 512, log=True),
        "optimizer": trial.suggest_categorical("optimizer", list(OPTIMIZERS)),
        "learning_rate": trial.suggest_float("learning_rate", 1e-5, 1e-2, log=True),
        "fine_tune": trial.suggest_categorical("fine_tune", [False, True]),
    }
    if p["fine_tune"]:
        p["fine_tune_lr_factor"] = trial.suggest_float("fine_tune_lr_factor", 0.01, 0.3, log=True)
    return p


def fit_options(trial) -> dict:
    """Batch size, and the second phase when the trial fine-tunes."""
    options = {"batch_size": trial.suggest_int("batch_size", 8, 64, log=True)}
    p = suggest(trial)  # the same trial returns the values already suggested by build
    if p["fine_tune"]:
        options["second_phase"] = {
            "start": FINE_TUNE_START,
            "learning_rate": p["learning_rate"] * p["fine_tune_lr_factor"],
        }
    return options


def build_transfer(backbone: Backbone, trial, *, input_shape, num_classes, weights=None, hflip: bool = False, cache_dir=None):
    """A compiled classifier: channel repeat, preprocessing, backbone, tuned head."""
    height, width, channels = check_facts(input_shape, num_classes)
    if min(height, width) < MIN_SIDE:
        raise ValueError(f"{backbone.name} needs inputs of at least {MIN_SIDE} px, got {height}x{width}")
    p = suggest(trial)

    import keras
    from keras import layers

    if backbone.load is not None:
        base, weights_used, warning = backbone.load((height, width, 3), weights, cache_dir=cache_dir)
    else:
        base, weights_used, warning = _backbone(backbone, (height, width, 3), weights)
    _record_weights(trial, weights_used, warning)
    blocks = block_ids(base, backbone.block_pattern)
    trainable = set(sorted(set(b for b in blocks.values() if b is not None))[-p["trainable_blocks"]:]) if p["trainable_blocks"] else set()
    pretrained = weights_used != "random"
    for layer in base.layers:
        if isinstance(layer, layers.BatchNormalization):
            # pretrained: keep the learnt statistics (frozen, inference mode); random: they must learn
            layer.trainable = not pretrained
        else:
            layer.trainable = blocks.get(layer.name) in trainable

    inputs = keras.Input(shape=(height, width, channels), name="pixels")
    x = inputs
    if hflip:
        x = layers.RandomFlip("horizontal", name="aug_hflip")(x)
    if channels == 1:
        x = layers.Concatenate(axis=-1, name="gray_to_rgb")([x, x, x])
    x = _preprocess(backbone, x, channels)
    x = base(x, training=False) if pretrained else base(x)  # pretrained: batch norm in inference mode, also when fine-tuning
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    if p["head_batch_norm"]:
        x = layers.BatchNormalization(name="head_bn")(x)
    x = layers.Dropout(p["head_dropout"], name="head_dropout")(x)
    x = layers.Dense(p["head_units"], activation="relu", name="head_dense")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="probabilities")(x)
    model = keras.Model(inputs, outputs, name=backbone.name)
    return compile_model(model, p["optimizer"], p["learning_rate"])


@dataclass
class FeatureSplit:
    """A transfer model cut where its frozen part ends: ``frozen`` (pixels in) and ``rest`` (the frozen part's output in).

    Both are made of the model's own layers, so training ``rest`` trains the
    model: the whole network, pixels in, is what a trial keeps and exports.
    """

    frozen: object  # keras.Model: pixels -> features (a fixed function: pretrained, batch norm in inference mode)
    rest: object  # keras.Model: features -> class probabilities (what trains)
    cut: str  # where: the last frozen layer's name ("gap": the whole backbone is frozen)


def feature_split(model) -> FeatureSplit | None:
    """Cut a model of :func:`build_transfer` after its frozen part, or None where the part is not a fixed function.

    Fixed means: pretrained (every batch norm of the backbone frozen, the
    backbone called in inference mode) and no augmentation before it
    (``--hflip``).  With the whole backbone frozen, the cut is after the global
    pooling (a 1,280-number vector for Lite0); with its last k blocks trainable,
    before the first trainable layer, at a block boundary.
    """
    import keras
    from keras import layers

    names = [layer.name for layer in model.layers]
    bases = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    if len(bases) != 1 or "gap" not in names or any(n.startswith("aug_") for n in names):
        return None
    base = bases[0]
    if any(layer.trainable for layer in base.layers if isinstance(layer, layers.BatchNormalization)):
        return None  # random weights: batch norm learns, so the backbone's output changes while training
    first = next((i for i, layer in enumerate(base.layers) if layer.trainable and layer.weights), None)
    at = names.index(base.name)

    def front(x):  # the layers before the backbone, as build_transfer calls them
        for layer in model.layers[1:at]:
            x = layer([x, x, x]) if layer.name == "gray_to_rgb" else layer(x)
        return x

    def head(x):  # the layers after the global pooling
        for layer in model.layers[names.index("gap") + 1:]:
            x = layer(x)
        return x

    pixels = keras.Input(shape=tuple(model.input_shape[1:]), name="pixels")
    try:
        if first is None:  # the whole backbone is frozen: cut after the pooling
            frozen_out = model.get_layer("gap")(base(front(pixels), training=False))
            features = keras.Input(shape=tuple(frozen_out.shape[1:]), name="features")
            rest_out, cut = head(features), "gap"
        else:
            inner = base.layers[first].input
            # named, so the frozen part's config (in the feature cache's key) is the same each time; Keras refuses a cut a skip crosses
            prefix = keras.Model(base.input, inner, name=f"{base.name}_frozen")
            suffix = keras.Model(inner, base.output, name=f"{base.name}_trainable")
            frozen_out = prefix(front(pixels), training=False)
            features = keras.Input(shape=tuple(frozen_out.shape[1:]), name="features")
            rest_out, cut = head(model.get_layer("gap")(suffix(features, training=False))), base.layers[first - 1].name
    except ValueError:  # a graph Keras cannot cut here: train on pixels as before
        return None
    return FeatureSplit(keras.Model(pixels, frozen_out, name="frozen"), keras.Model(features, rest_out, name="rest"), cut)


def block_ids(base, pattern: str) -> dict[str, tuple | None]:
    """Layer name -> block id (the regex groups); stem layers get None, top layers the last block."""
    regex = re.compile(pattern)
    out, current = {}, None
    for layer in base.layers:
        match = regex.match(layer.name)
        if match:
            current = tuple(int(g) for g in match.groups())
        out[layer.name] = current
    return out


def _preprocess(backbone: Backbone, x, channels: int):
    from keras import layers

    if backbone.preprocess == "tf":
        return layers.Rescaling(1.0 / 127.5, offset=-1.0, name="preprocess")(x)
    if backbone.preprocess == "torch":
        x = layers.Rescaling(1.0 / 255.0, name="preprocess_scale")(x)
        return layers.Normalization(mean=list(IMAGENET_MEAN), variance=[s * s for s in IMAGENET_STD], name="preprocess")(x)
    if backbone.preprocess == "lite":  # the TensorFlow originals of EfficientNet-Lite: (x - 127) / 128
        return layers.Rescaling(1.0 / 128.0, offset=-127.0 / 128.0, name="preprocess")(x)
    if backbone.preprocess == "caffe":
        if channels == 3:  # RGB -> BGR as a fixed 1x1 convolution (serialisable, no Lambda)
            x = _channel_flip(x)
        return layers.Normalization(mean=list(CAFFE_MEAN_BGR), variance=[1.0, 1.0, 1.0], name="preprocess")(x)
    return x  # "none": the backbone rescales and normalises itself (EfficientNet)


def _channel_flip(x):
    import numpy as np
    from keras import layers

    flip = layers.Conv2D(3, 1, use_bias=False, trainable=False, name="rgb_to_bgr")
    y = flip(x)
    flip.set_weights([np.eye(3, dtype="float32")[::-1].reshape(1, 1, 3, 3)])
    return y


def _backbone(backbone: Backbone, shape: tuple[int, int, int], weights):
    """The backbone model and what it was initialised with: (model, weights used, warning or None)."""
    import keras

    make = getattr(keras.applications, backbone.application)
    if weights not in (None, "imagenet", "random"):
        path = os.path.expanduser(str(weights))
        if not os.path.isfile(path):
            raise SpaceError(f"backbone weights file {path} does not exist (--weights or LUNGSEARCH_WEIGHTS)")
        try:
            return make(include_top=False, weights=path, input_shape=shape), os.path.abspath(path), None
        except Exception as exc:
            raise SpaceError(f"backbone weights file {path} does not fit {backbone.application}: {type(exc).__name__}: {exc}") from exc
    if weights == "random":
        return make(include_top=False, weights=None, input_shape=shape), "random", None
    failed = WEIGHTS_FAILED.get(backbone.application)  # tried and failed before in this process
    if failed is None:
        try:
            return imagenet_backbone(make, shape), "imagenet", None
        except Exception as exc:  # offline, or a proxy in the way: fall back, loudly
            failed = (
                f"ImageNet weights for {backbone.application} could not be loaded ({type(exc).__name__}: {str(exc)[:300]}); "
                "the backbone starts from RANDOM weights. Give a local weights file with --weights PATH "
                "(or LUNGSEARCH_WEIGHTS), or --weights random to ask for this"
            )
            WEIGHTS_FAILED[backbone.application] = failed
            warnings.warn(failed, stacklevel=2)
    return make(include_top=False, weights=None, input_shape=shape), "random", failed


def imagenet_backbone(make, shape):
    """Build with ImageNet weights: from Keras's cache, else fetched (tests replace this)."""
    return make(include_top=False, weights="imagenet", input_shape=shape)


def _record_weights(trial, weights_used: str, warning: str | None) -> None:
    set_attr = getattr(trial, "set_user_attr", None)
    if set_attr is None:
        return
    set_attr("backbone_weights", weights_used)
    if warning:
        set_attr("weights_warning", warning)
        study = getattr(trial, "study", None)
        if study is not None:
            study.set_user_attr("weights_warning", warning)
