"""Grad-CAM and feature-map grids for any lungsearch model, on any Keras 3 backend.

The model is cut at its last conv-like layer (looking inside a nested backbone
model too) into a *feature* part (pixels -> conv maps A) and a *head*
(A -> class score).  Grad-CAM needs, per channel k, the gradient of the class
score summed over the map: sum_ij dS/dA_kij.  That is exactly the directional
derivative of S along "add the same eps to every cell of channel k", so it is
measured with central differences, two head evaluations per channel, batched.
This uses nothing but forward passes (``model.predict``), so it runs unchanged
on TensorFlow, PyTorch and JAX, with no per-backend autodiff code.  The heads
of these models (pooling, GAP, ReLU, Dense) are piecewise linear, so the
difference equals the gradient except at a kink.  The score is the pre-softmax
logit when the last layer is a softmax Dense (computed from its weights), as
in the Grad-CAM paper; otherwise the log-probability.

An averaging ensemble (``best --export --ensemble K``, or a refined study's
fold models; its model.json lists them as ``members``) has no one last conv
layer: each member is cut at its own, and the score explained is the
ensemble's, the log of the averaged probability.  Each member's map is
weighted by the gradient of that score along its own channels, the maps are
brought to the finest member's grid, summed, and only then ReLU'd: the
members' contributions to one score, as Grad-CAM takes the channels'.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from typing import Callable

import numpy as np

CONV_WORDS = ("Conv",)  # Conv2D, SeparableConv2D, DepthwiseConv2D, Conv2DTranspose, ConvLSTM...
HEAD_BATCH = 256


class GradCamError(ValueError):
    """A model Grad-CAM cannot explain."""

    user_error = True  # the CLI prints it on one line and exits 2


def _rank4(tensor) -> bool:
    return tensor is not None and len(tensor.shape) == 4


def _out(layer):
    try:
        return layer.output
    except (AttributeError, ValueError):  # a layer never called symbolically
        return None


def _outer(layer, which: str):
    """The tensor where ``layer`` meets the enclosing graph.  For a nested Model, ``layer.output`` is its
    own inner tensor; the enclosing graph's is on the node of its call there (Keras 3 keeps one per call)."""
    from lungsearch.keras_private import last_call_tensors

    tensors = last_call_tensors(layer, which) if _is_model(layer) else None
    return tensors[0] if tensors else getattr(layer, which)


def _is_model(layer) -> bool:
    import keras

    return isinstance(layer, keras.Model)


def _is_conv(layer) -> bool:
    return any(w in type(layer).__name__ for w in CONV_WORDS) and _rank4(_out(layer))


def _has_conv(model) -> bool:
    return any(_is_conv(l) or (_is_model(l) and _has_conv(l)) for l in model.layers)


@dataclass
class Cut:
    """``features(x) -> A`` and ``head(A) -> score inputs``; ``score(h, c)`` turns head output into class scores."""

    layer_name: str
    features: Callable[[np.ndarray], np.ndarray]
    head: Callable[[np.ndarray], np.ndarray]
    to_scores: Callable[[np.ndarray], np.ndarray]


def _predictor(model) -> Callable[[np.ndarray], np.ndarray]:
    return lambda x: np.asarray(model.predict(x, batch_size=HEAD_BATCH, verbose=0))


def cut(model) -> Cut:
    """Split ``model`` at its last conv-like layer (inside a nested backbone when needed)."""
    import keras

    last = model.layers[-1]
    kernel_bias = None
    if type(last).__name__ == "Dense" and getattr(last.activation, "__name__", "") == "softmax":
        kernel, bias = (np.asarray(keras.ops.convert_to_numpy(w)) for w in (last.kernel, last.bias))
        kernel_bias = (kernel, bias)
        end = last.input  # the head stops before the softmax: logits are computed from its weights
    else:
        end = model.outputs[0]

    def to_scores(h):
        if kernel_bias is not None:
            return h @ kernel_bias[0] + kernel_bias[1]
        return np.log(np.clip(h, 1e-12, None))

    for layer in reversed(model.layers):
        if _is_conv(layer) or (_is_model(layer) and _rank4(_out(layer)) and _has_conv(layer)):
            features = keras.Model(model.inputs, _outer(layer, "output"))
            head = keras.Model(_outer(layer, "output"), end)
            return Cut(layer.name, _predictor(features), _predictor(head), to_scores)
        if _is_model(layer) and _has_conv(layer):
            # A backbone that pools inside: cut inside it, and chain the parts around it.
            inner = cut_inner(layer)
            before = keras.Model(model.inputs, _outer(layer, "input"))
            after = keras.Model(_outer(layer, "output"), end)
            feats = keras.Model(layer.inputs, inner.output)
            rest = keras.Model(inner.output, layer.outputs)
            return Cut(
                f"{layer.name}/{inner.name}",
                lambda x: _predictor(feats)(_predictor(before)(x)),
                lambda a: _predictor(after)(_predictor(rest)(a)),
                to_scores,
            )
    raise GradCamError(f"model {model.name!r} has no convolutional layer to explain")


def cut_inner(model):
    """The last conv-like layer of a nested model (recursing is left out: one level covers keras.applications)."""
    for layer in reversed(model.layers):
        if _is_conv(layer):
            return layer
    raise GradCamError(f"backbone {model.name!r} has no convolutional layer with a 4-D output")


@dataclass
class EnsembleCut:
    """An averaging ensemble: each member's :class:`Cut`."""

    layer_name: str
    members: list[Cut]


def _ensemble_members(model, names: list[str] | None) -> list | None:
    """The sub-models whose probabilities ``model`` averages, named by its model.json's ``members``; None for one model.

    ``names`` None: an export made before model.json said so (``members``), recognised
    as :func:`lungsearch.export.model.ensemble_model` builds it, by an Average as last layer.
    """
    if names is not None:
        return [model.get_layer(n) for n in names] if len(names) > 1 else None
    members = [l for l in model.layers if _is_model(l)]
    if type(model.layers[-1]).__name__ == "Average" and len(members) > 1:
        return members
    return None


def explain(model, members: list[str] | None = None) -> Cut | EnsembleCut:
    """What :func:`grad_cam` takes: the model cut at its last conv layer, or an ensemble's members each cut at theirs.

    ``members``: model.json's list of the sub-models the model averages ([] for one model; None where the JSON predates it).
    """
    members = _ensemble_members(model, members)
    if members is None:
        return cut(model)
    cuts = [cut(m) for m in members]
    names = {c.layer_name for c in cuts}
    where = (f"{names.pop()} in each of the {len(cuts)} members" if len(names) == 1
             else ", ".join(f"{m.name}/{c.layer_name}" for m, c in zip(members, cuts)))
    return EnsembleCut(where, cuts)


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _weighted_map(c: Cut, a: np.ndarray, score: Callable[[np.ndarray], np.ndarray], rel_eps: float) -> np.ndarray:
    """sum_k alpha_k A_k before the ReLU, alpha_k the spatially averaged derivative of ``score`` (of head outputs) along A_k."""
    h, w, k = a.shape
    eps = rel_eps * (float(np.mean(np.abs(a))) + 1e-6)
    batch = np.repeat(a[None], 2 * k, axis=0)
    for j in range(k):
        batch[2 * j, :, :, j] += eps
        batch[2 * j + 1, :, :, j] -= eps
    scores = score(c.head(batch))
    alpha = (scores[0::2] - scores[1::2]) / (2 * eps) / (h * w)
    return np.tensordot(a, alpha, axes=([2], [0]))


def _resized(m: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    if m.shape == shape:
        return m
    return np.asarray(Image.fromarray(m.astype(np.float32), mode="F").resize(shape[::-1], Image.BILINEAR))


def _ensemble_map(c: EnsembleCut, image: np.ndarray, class_index: int, rel_eps: float) -> np.ndarray:
    """The members' weighted maps, on the finest member's grid, summed: the score is the log of the averaged probability."""
    feats = [member.features(image[None])[0].astype(np.float32) for member in c.members]
    # each member's probability of the class, from its own head (no second pass through the member)
    probs = [float(_softmax(m.to_scores(m.head(a[None])))[0, class_index]) for m, a in zip(c.members, feats)]
    maps = []
    for member, a, p in zip(c.members, feats, probs):
        rest = sum(probs) - p  # the other members' probabilities, held while this member's head output moves

        def score(h, member=member, rest=rest):
            return np.log(np.clip((_softmax(member.to_scores(h))[:, class_index] + rest) / len(probs), 1e-12, None))

        maps.append(_weighted_map(member, a, score, rel_eps))
    shape = max((m.shape for m in maps), key=lambda s: s[0] * s[1])
    return sum(_resized(m, shape) for m in maps)


def grad_cam(c: Cut | EnsembleCut, image: np.ndarray, class_index: int, rel_eps: float = 1e-3) -> np.ndarray:
    """Heatmap in [0, 1] at the conv map's resolution (an ensemble's: its finest member's) for one uint8 image (H, W, C)."""
    if isinstance(c, EnsembleCut):
        weighted = _ensemble_map(c, image, class_index, rel_eps)
    else:
        a = c.features(image[None])[0].astype(np.float32)  # (h, w, K)
        weighted = _weighted_map(c, a, lambda h: c.to_scores(h)[:, class_index], rel_eps)
    cam = np.maximum(weighted, 0.0)
    top = cam.max()
    return cam / top if top > 0 else cam


def overlay_png(image: np.ndarray, cam: np.ndarray, path: str, title: str, *, explained: str | None = None,
                input_side: int | None = None) -> None:
    """The X-ray, and the heatmap resized to it and laid over it, side by side.

    ``image`` is best the original file's pixels (any size): the model saw the
    whole image resized to its square input, so the map stretches back onto it
    exactly.  ``explained`` names the class the map explains; ``input_side``
    says how small the model's input was.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    image = np.asarray(image)
    gray = image if image.ndim == 2 else image[..., 0] if image.shape[-1] == 1 else np.asarray(Image.fromarray(image).convert("L"))
    heat = np.asarray(Image.fromarray((cam * 255).astype(np.uint8)).resize(gray.shape[::-1], Image.BILINEAR)) / 255.0
    aspect = gray.shape[1] / gray.shape[0]
    fig, axes = plt.subplots(1, 2, figsize=(2 * 4 * min(max(aspect, 0.6), 1.6) + 0.4, 4.6), dpi=110)
    axes[0].imshow(gray, cmap="gray", vmin=0, vmax=255)
    size = f"{gray.shape[1]}x{gray.shape[0]} px" + (f"; the model saw it at {input_side}x{input_side}" if input_side else "")
    axes[0].set_title(f"X-ray ({size})", fontsize=9)
    axes[1].imshow(gray, cmap="gray", vmin=0, vmax=255)
    shown = axes[1].imshow(heat, cmap="jet", alpha=0.4, vmin=0, vmax=1)
    # wrapped, so a long layer name (an ensemble's members, a nested backbone) stays inside the figure
    axes[1].set_title(textwrap.fill(f"Grad-CAM of {explained}" if explained else "Grad-CAM", 60), fontsize=9)
    fig.colorbar(shown, ax=axes[1], fraction=0.046, pad=0.02, label="share of the strongest evidence")
    for ax in axes:
        ax.axis("off")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _conv_makers(model) -> list[tuple[str, Callable[[], Callable[[np.ndarray], np.ndarray]]]]:
    """(name, build) for each conv layer of ``model`` and of the models nested in it, at any depth; ``build()``
    gives the function from ``model``'s input to that layer's maps (built only when asked: a backbone has dozens)."""
    import keras

    found = []
    for layer in model.layers:
        if _is_conv(layer):
            found.append((layer.name, lambda l=layer: _predictor(keras.Model(model.inputs, l.output))))
        elif _is_model(layer) and _has_conv(layer):
            for name, build in _conv_makers(layer):
                def chained(l=layer, build=build):
                    before, part = _predictor(keras.Model(model.inputs, _outer(l, "input"))), build()
                    return lambda x: part(before(x))
                found.append((f"{layer.name}/{name}", chained))
    return found


def conv_layers(model, limit: int = 12) -> list[tuple[str, Callable[[np.ndarray], np.ndarray]]]:
    """(name, pixels -> maps) for each conv layer, nested backbones' and ensemble members' included (evenly thinned to ``limit``)."""
    found = _conv_makers(model)
    if len(found) > limit:
        keep = np.unique(np.linspace(0, len(found) - 1, limit).round().astype(int))
        found = [found[i] for i in keep]
    return [(name, build()) for name, build in found]


def activation_grid_png(maps: np.ndarray, path: str, title: str, max_channels: int = 16) -> None:
    """The ``max_channels`` most active channels of one (h, w, K) map as a grid."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    order = np.argsort(maps.reshape(-1, maps.shape[-1]).mean(axis=0))[::-1][:max_channels]
    cols = int(np.ceil(np.sqrt(len(order))))
    rows = int(np.ceil(len(order) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(1.8 * cols, 1.8 * rows + 0.4), dpi=100, squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, ch in zip(axes.ravel(), order):
        ax.imshow(maps[..., ch], cmap="viridis")
        ax.set_title(f"ch {ch}", fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
