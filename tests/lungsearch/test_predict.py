"""predict: images decoded as in training, the stored threshold applied, Grad-CAM and activation PNGs written, bad input refused."""

import json

import numpy as np
import pytest

from lungsearch import gradcam
from lungsearch import predict as predict_mod
from lungsearch.cli import main
from lungsearch.export import FORMAT
from tests.conftest import tiny_cnn, write_image

SIZE = 24


@pytest.fixture
def exported(tmp_path):
    """A tiny model saved with lungsearch metadata, as `best --export` writes it."""
    import keras

    keras.utils.set_random_seed(0)
    model = tiny_cnn()
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

        ensemble_model([model, tiny_cnn()]).save(path)
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
