"""Grad-CAM and feature maps on tiny models, from any kind of model layout: plain, nested backbones, ensembles."""

import numpy as np
import pytest

from lungsearch import gradcam
from tests.conftest import tiny_cnn

SIZE = 24


def _nested(pool_inside: bool):
    """A transfer-style model: a backbone Model used as one layer, pooling inside it or after it."""
    import keras
    from keras import layers

    b_in = keras.Input((SIZE, SIZE, 3))
    h = layers.Conv2D(4, 3, padding="same", activation="relu", name="b_conv1")(b_in)
    h = layers.Conv2D(5, 3, padding="same", activation="relu", name="b_conv2")(h)
    if pool_inside:
        h = layers.GlobalAveragePooling2D(name="b_gap")(h)
    backbone = keras.Model(b_in, h, name="backbone")
    inp = keras.Input((SIZE, SIZE, 1))
    x = layers.Rescaling(1 / 255)(inp)
    x = layers.Concatenate()([x, x, x])
    x = backbone(x)
    if not pool_inside:
        x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dense(3, activation="relu")(x)
    out = layers.Dense(2, activation="softmax")(x)
    return keras.Model(inp, out)


def _image(seed=0, label=1):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 255, (SIZE, SIZE, 1)).astype(np.uint8)


def test_grad_cam_equals_class_activation_map_for_a_gap_dense_head():
    """With GAP + softmax Dense after the last conv, Grad-CAM is CAM: relu(sum_k W[k, c] A_k), normalised."""
    import keras

    keras.utils.set_random_seed(0)
    model = tiny_cnn()
    c = gradcam.cut(model)
    assert c.layer_name == "conv1"
    img = _image()
    a = np.asarray(keras.Model(model.inputs, model.get_layer("conv1").output).predict(img[None], verbose=0))[0]
    w = keras.ops.convert_to_numpy(model.get_layer("probabilities").kernel)
    for cls in (0, 1):
        expected = np.maximum(a @ w[:, cls], 0)
        expected = expected / expected.max() if expected.max() > 0 else expected
        got = gradcam.grad_cam(c, img, cls)
        assert got.shape == a.shape[:2]
        np.testing.assert_allclose(got, expected, atol=2e-2)


@pytest.mark.parametrize("pool_inside", [False, True])
def test_grad_cam_and_feature_maps_reach_into_a_nested_backbone(pool_inside, tmp_path):
    import keras

    keras.utils.set_random_seed(1)
    _nested(pool_inside).save(tmp_path / "m.keras")
    model = keras.models.load_model(tmp_path / "m.keras")  # as predict meets it: reloaded from the file
    c = gradcam.cut(model)
    assert ("b_conv2" in c.layer_name) if pool_inside else c.layer_name == "backbone"
    cam = gradcam.grad_cam(c, _image(), 1)
    assert cam.shape == (SIZE, SIZE) and 0 <= cam.min() and cam.max() <= 1
    names = [n for n, _ in gradcam.conv_layers(model)]
    assert names == ["backbone/b_conv1", "backbone/b_conv2"]
    maps = dict(gradcam.conv_layers(model))["backbone/b_conv2"](_image()[None])
    assert maps.shape == (1, SIZE, SIZE, 5)


def _gap_softmax():
    """conv -> GAP -> Dense -> Softmax layer: logits linear in the conv maps, so Grad-CAM has a closed form."""
    import keras
    from keras import layers

    inp = keras.Input((SIZE, SIZE, 1))
    x = layers.Rescaling(1 / 255)(inp)
    x = layers.Conv2D(5, 3, padding="same", activation="relu", name="conv0")(x)
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inp, layers.Softmax()(layers.Dense(2, name="logits")(x)))


def test_grad_cam_of_an_ensemble_weighs_each_member_by_the_averaged_probability():
    """S = log(mean_i p_i[c]); with logits z_i = W_i . GAP(A_i) + b_i, dS/dA_ik is, at every cell,
    p_i[c] (W_i[k, c] - sum_j p_i[j] W_i[k, j]) / (K mean_i p_i[c] h w): the map is relu(sum_i sum_k of that x A_ik)."""
    import keras

    from lungsearch.export.model import ensemble_model

    keras.utils.set_random_seed(2)
    members = [_gap_softmax() for _ in range(3)]
    c = gradcam.explain(ensemble_model(members))
    assert isinstance(c, gradcam.EnsembleCut) and c.layer_name == "conv0 in each of the 3 members"
    drawn = 0
    for seed in range(3):
        img = _image(seed)
        maps = [np.asarray(keras.Model(m.inputs, m.get_layer("conv0").output).predict(img[None], verbose=0))[0] for m in members]
        probs = [np.asarray(m.predict(img[None], verbose=0))[0] for m in members]
        for cls in (0, 1):
            mean = np.mean([p[cls] for p in probs])
            total = 0
            for m, a, p in zip(members, maps, probs):
                w = keras.ops.convert_to_numpy(m.get_layer("logits").kernel)
                alpha = p[cls] * (w[:, cls] - w @ p) / (len(members) * mean * a.shape[0] * a.shape[1])
                total = total + a @ alpha
            expected = np.maximum(total, 0)
            expected = expected / expected.max() if expected.max() > 0 else expected
            drawn += expected.max() > 0  # a class with no positive evidence anywhere has an all-zero map
            np.testing.assert_allclose(gradcam.grad_cam(c, img, cls), expected, atol=2e-2)
    assert drawn >= 2


def test_grad_cam_and_feature_maps_of_an_ensemble_of_unlike_members(tmp_path):
    """Members with maps of different sizes, one with a nested backbone: the map is the finest member's grid."""
    import keras

    from lungsearch.export.model import ensemble_model

    keras.utils.set_random_seed(3)
    ensemble_model([tiny_cnn(), _nested(False)]).save(tmp_path / "m.keras")
    model = keras.models.load_model(tmp_path / "m.keras")
    c = gradcam.explain(model)
    assert c.layer_name == "member0/conv1, member1/backbone"
    cams = [gradcam.grad_cam(c, _image(), cls) for cls in (0, 1)]
    assert all(cam.shape == (SIZE, SIZE) and cam.min() >= 0 for cam in cams)
    assert max(cam.max() for cam in cams) == pytest.approx(1)
    layers = dict(gradcam.conv_layers(model))
    assert list(layers) == ["member0/conv0", "member0/conv1", "member1/backbone/b_conv1", "member1/backbone/b_conv2"]
    assert layers["member1/backbone/b_conv2"](_image()[None]).shape == (1, SIZE, SIZE, 5)
    assert layers["member0/conv1"](_image()[None]).shape == (1, SIZE // 2, SIZE // 2, 6)


def test_a_model_without_conv_layers_is_refused():
    import keras
    from keras import layers

    inp = keras.Input((SIZE, SIZE, 1))
    out = layers.Dense(2, activation="softmax")(layers.Flatten()(inp))
    with pytest.raises(gradcam.GradCamError):
        gradcam.cut(keras.Model(inp, out))


def test_grad_cam_reads_what_an_export_averages_from_its_json_and_guesses_only_for_older_exports():
    """model.json's ``members`` decides; without it (an export from before), an Average last layer means an ensemble."""
    from lungsearch.export.model import ensemble_model, members_of

    model = ensemble_model([_gap_softmax(), _gap_softmax()])
    assert members_of(model) == ["member0", "member1"] and members_of(_gap_softmax()) == []
    assert isinstance(gradcam.explain(model, ["member0", "member1"]), gradcam.EnsembleCut)
    assert isinstance(gradcam.explain(model), gradcam.EnsembleCut)  # no members in the JSON: the shape says it
    assert isinstance(gradcam.explain(_gap_softmax(), []), gradcam.Cut)
