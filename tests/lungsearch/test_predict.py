"""predict, Grad-CAM and feature maps on tiny models, from any kind of model layout."""

import json

import numpy as np
import pytest

from lungsearch import gradcam
from lungsearch import predict as predict_mod
from lungsearch.cli import main
from lungsearch.export import FORMAT
from tests.conftest import write_image

SIZE = 24


def _plain(channels=1):
    import keras
    from keras import layers

    inp = keras.Input((SIZE, SIZE, channels))
    x = layers.Rescaling(1 / 255)(inp)
    x = layers.Conv2D(4, 3, padding="same", activation="relu", name="conv0")(x)
    x = layers.MaxPooling2D(2)(x)
    x = layers.Conv2D(6, 3, padding="same", activation="relu", name="conv1")(x)
    x = layers.GlobalAveragePooling2D()(x)
    out = layers.Dense(2, activation="softmax", name="probabilities")(x)
    return keras.Model(inp, out)


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
    model = _plain()
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


def test_grad_cam_reads_what_an_export_averages_from_its_json_and_guesses_only_for_older_exports():
    """model.json's ``members`` decides; without it (an export from before), an Average last layer means an ensemble."""
    from lungsearch.export.model import ensemble_model, members_of

    model = ensemble_model([_gap_softmax(), _gap_softmax()])
    assert members_of(model) == ["member0", "member1"] and members_of(_gap_softmax()) == []
    assert isinstance(gradcam.explain(model, ["member0", "member1"]), gradcam.EnsembleCut)
    assert isinstance(gradcam.explain(model), gradcam.EnsembleCut)  # no members in the JSON: the shape says it
    assert isinstance(gradcam.explain(_gap_softmax(), []), gradcam.Cut)


def test_grad_cam_and_feature_maps_of_an_ensemble_of_unlike_members(tmp_path):
    """Members with maps of different sizes, one with a nested backbone: the map is the finest member's grid."""
    import keras

    from lungsearch.export.model import ensemble_model

    keras.utils.set_random_seed(3)
    ensemble_model([_plain(), _nested(False)]).save(tmp_path / "m.keras")
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


@pytest.fixture
def exported(tmp_path):
    """A tiny model saved with lungsearch metadata, as `best --export` writes it."""
    import keras

    keras.utils.set_random_seed(0)
    model = _plain()
    model.compile(loss="sparse_categorical_crossentropy")
    path = tmp_path / "model.keras"
    model.save(path)
    meta = {"format": FORMAT, "class_names": ["NORMAL", "PNEUMONIA"], "image_size": SIZE, "color_mode": "grayscale",
            "decision": {"threshold": 0.5, "positive": 1}}
    (tmp_path / "model.json").write_text(json.dumps(meta))
    images = tmp_path / "imgs"
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        write_image(images / f"x{i}.png", i % 2, 40, rng, mode="RGB")  # other size and mode: decode must adapt them
    return path, images, model


def test_predict_decodes_as_training_and_applies_the_stored_threshold(exported, tmp_path):
    path, images, model = exported
    meta = predict_mod.load_meta(str(path))
    files = predict_mod.image_files([str(images)])
    preds = predict_mod.predict(model, meta, files)
    assert [p.image.shape for p in preds] == [(SIZE, SIZE, 1)] * 3
    for p in preds:
        assert sum(p.probabilities.values()) == pytest.approx(1, abs=1e-5)
        assert p.decision == ("PNEUMONIA" if p.probabilities["PNEUMONIA"] >= 0.5 else "NORMAL")
    meta["decision"]["threshold"] = 0.0  # everything positive now
    assert {p.decision for p in predict_mod.predict(model, meta, files)} == {"PNEUMONIA"}


@pytest.mark.parametrize("kind", ["single", "ensemble"])
def test_predict_cli_writes_gradcam_and_activation_pngs(exported, kind, tmp_path, capsys, monkeypatch):
    from PIL import Image

    path, images, model = exported
    members = []
    if kind == "ensemble":  # as `best --export --ensemble 2` writes it
        from lungsearch.export.model import ensemble_model

        ensemble_model([model, _plain()]).save(path)
        members = ["member0", "member1"]
    meta = json.loads((tmp_path / "model.json").read_text())
    (tmp_path / "model.json").write_text(json.dumps({**meta, "members": members}))
    explained = []
    explain = gradcam.explain
    monkeypatch.setattr(gradcam, "explain", lambda m, names=None: explained.append(names) or explain(m, names))
    rc = main(["predict", str(images), str(images / "x0.png"), "--model", str(path),
               "--gradcam", str(tmp_path / "cam"), "--activations", str(tmp_path / "act")])
    assert rc == 0
    out = capsys.readouterr().out
    assert "decision" in out and out.count("x0.png") == 2
    cams = sorted(p.name for p in (tmp_path / "cam").iterdir())
    assert cams == ["x0-2.gradcam.png", "x0.gradcam.png", "x1.gradcam.png", "x2.gradcam.png"]
    assert Image.open(tmp_path / "cam" / "x0.gradcam.png").size[0] > 100
    assert explained == [members]  # what model.json says the model averages, not a guess from its shape
    layers = ["conv0", "conv1"] if kind == "single" else ["member0_conv0", "member0_conv1", "member1_conv0", "member1_conv1"]
    assert sorted(p.name for p in (tmp_path / "act" / "x1").iterdir()) == [f"{i:02d}_{n}.png" for i, n in enumerate(layers)]


def test_predict_refuses_non_images_and_models_without_metadata(exported, tmp_path, capsys):
    path, images, _ = exported
    (tmp_path / "notes.txt").write_text("not an x-ray")
    assert main(["predict", str(tmp_path / "notes.txt"), "--model", str(path)]) == 2
    assert "cannot read" in capsys.readouterr().err
    (tmp_path / "model.json").unlink()
    assert main(["predict", str(images), "--model", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lungsearch: error:") and "metadata" in err and len(err.strip().splitlines()) == 1
    (tmp_path / "model.json").write_text(json.dumps({"something": "else"}))
    assert main(["predict", str(images), "--model", str(path)]) == 2
    assert main(["predict", str(tmp_path / "missing.png"), "--model", str(path)]) == 2


def test_gradcam_is_drawn_on_the_original_image_and_names_the_class_and_threshold(exported, tmp_path, monkeypatch):
    from PIL import Image

    path, _, model = exported
    wide = tmp_path / "wide.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (60, 90)).astype("uint8")).save(wide)  # 90 wide, 60 high
    meta = predict_mod.load_meta(str(path))
    (p,) = predict_mod.predict(model, meta, [str(wide)])
    drawn = {}
    real = gradcam.overlay_png
    monkeypatch.setattr(gradcam, "overlay_png", lambda image, cam, out, title, **kw: drawn.update(image=image, title=title, **kw)
                        or real(image, cam, out, title, **kw))
    (png,) = predict_mod.write_gradcams(model, meta, [p], str(tmp_path / "cam"))
    assert drawn["image"].shape == (60, 90)  # the file's own pixels, not the 24 px model input
    assert drawn["input_side"] == SIZE and drawn["explained"].startswith(f"{p.decision} (the decided class)")
    prob = p.probabilities["PNEUMONIA"]
    assert f"p(PNEUMONIA) {prob:.3f} {'>=' if prob >= 0.5 else '<'} threshold 0.500" in drawn["title"]
    assert Image.open(png).size[0] > 400
    meta["decision"] = {}  # a model without a threshold decides by argmax, and says so
    assert "the most probable class" in predict_mod.decision_text(meta, p)


def test_predict_on_a_folder_skips_an_unreadable_file_as_run_and_evaluate_do(exported, tmp_path, capsys):
    path, images, _ = exported
    folder = tmp_path / "mixed"
    folder.mkdir()
    good = sorted(images.iterdir())[:2]
    for image in good:
        (folder / image.name).write_bytes(image.read_bytes())
    (folder / "broken.png").write_bytes(b"not a png")
    assert main(["predict", str(folder), "--model", str(path)]) == 0
    captured = capsys.readouterr()
    assert "warning: skipped: cannot read" in captured.err and "broken.png" in captured.err
    assert all(image.name in captured.out for image in good) and "broken.png" not in captured.out
    for image in good:
        (folder / image.name).unlink()
    assert main(["predict", str(folder), "--model", str(path)]) == 2  # nothing readable: an error, not an empty table
    err = capsys.readouterr().err
    assert "cannot read" in err and "broken.png" in err and "object at 0x" not in err
