"""Forward-pass FLOPs of a Keras model, counted from its layers' shapes.

Counts 2 x multiply-adds of the layers that dominate a CNN: Conv1D/2D/3D,
depthwise and separable convolutions, and Dense, in nested models too.
Pooling, normalisation, activations and element-wise additions are left out
(they are a few percent in these architectures), so the figure is a slight
undercount, the same way for every space.  Per image, batch of one.
"""

from __future__ import annotations

import math


def count_flops(model) -> int | None:
    """FLOPs of one forward pass of one image, or None when a shape is unknown."""
    try:
        return int(sum(layer_flops(layer) for layer in leaf_layers(model)))
    except (AttributeError, ValueError, TypeError):  # a layer called twice, or a dynamic shape
        return None


def leaf_layers(model):
    """The layers of ``model`` with nested models opened, at any depth: the layers that do the work."""
    for layer in model.layers:
        if hasattr(layer, "layers") and layer.layers:
            yield from leaf_layers(layer)
        else:
            yield layer


def layer_flops(layer) -> float:
    """FLOPs of one call of ``layer`` on one image: 0 for a layer this count leaves out (see the module's docstring)."""
    from keras import layers

    if not isinstance(layer, (layers.Dense, layers.Conv1D, layers.Conv2D, layers.Conv3D,
                              layers.DepthwiseConv2D, layers.SeparableConv2D)):
        return 0.0
    in_shape, out_shape = tuple(layer.input.shape), tuple(layer.output.shape)
    if isinstance(layer, layers.Dense):
        return 2.0 * math.prod(in_shape[1:]) * layer.units
    out_positions = math.prod(out_shape[1:-1])
    kernel = math.prod(layer.kernel_size)
    c_in = in_shape[-1]
    if isinstance(layer, layers.DepthwiseConv2D):
        return 2.0 * out_positions * kernel * c_in * layer.depth_multiplier
    if isinstance(layer, layers.SeparableConv2D):
        depthwise = 2.0 * out_positions * kernel * c_in * layer.depth_multiplier
        return depthwise + 2.0 * out_positions * c_in * layer.depth_multiplier * layer.filters
    return 2.0 * out_positions * kernel * (c_in // layer.groups) * layer.filters
