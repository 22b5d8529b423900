"""`lungsearch evaluate`: an exported model scored on a labelled folder with its stored decision, for both class orders."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lungsearch.cli import main
from lungsearch.export import FORMAT
from tests.conftest import write_image

SIZE = 24


def _exported(tmp_path, names, disease):
    """A model that calls an image diseased when its mean brightness is high (the test images' blob), with its .json."""
    import keras
    from keras import layers

    positive = names.index(disease)
    inp = keras.Input((SIZE, SIZE, 1))
    mean = layers.GlobalAveragePooling2D()(layers.Rescaling(1 / 255)(inp))
    dense = layers.Dense(2, activation="softmax")
    model = keras.Model(inp, dense(mean))
    w, b = np.zeros((1, 2), "float32"), np.zeros(2, "float32")
    w[0, positive], b[positive] = 200.0, -200.0 * 98 / 255  # p(disease) crosses 0.5 at a mean of 98 of 255
    dense.set_weights([w, b])
    path = tmp_path / "model.keras"
    model.save(path)
    meta = {"format": FORMAT, "class_names": list(names), "image_size": SIZE, "color_mode": "grayscale",
            "study": "s", "trial": 0, "decision": {"threshold": 0.5, "positive": positive, "rule": "max Youden's J on validation"}}
    (tmp_path / "model.json").write_text(json.dumps(meta))
    return path


def _folder(root, names, disease, per_class=12, split=None):
    rng = np.random.default_rng(1)
    base = root / split if split else root
    for name in names:
        folder = base / name.lower()  # a hospital's folder names need not match the case
        folder.mkdir(parents=True)
        for i in range(per_class):
            write_image(folder / f"{i}.png", int(name == disease), 40, rng)
    return root


@pytest.mark.parametrize("names, disease", [(("NORMAL", "PNEUMONIA"), "PNEUMONIA"), (("Covid", "Normal"), "Covid")])
def test_evaluate_scores_a_folder_with_the_stored_decision(tmp_path, capsys, names, disease):
    model = _exported(tmp_path, names, disease)
    data = _folder(tmp_path / "hospital", names, disease)
    out = tmp_path / "ev"
    assert main(["evaluate", "--model", str(model), "--data", str(data), "--out", str(out), "--bootstrap", "50"]) == 0
    printed = capsys.readouterr().out
    assert "24 images" in printed and "decision" in printed
    ev = json.loads((out / "evaluation.json").read_text())
    m = {k: v["value"] for k, v in ev["test"]["metrics"].items()}
    assert m["roc_auc"] == pytest.approx(1.0)  # right way up whichever index the disease class has
    assert m["accuracy"] == pytest.approx(1.0) and m["sensitivity"] == pytest.approx(1.0)
    assert ev["test"]["counts"] == {n: 12 for n in names}
    assert ev["data_folder"] == str(data)
    for name in ("evaluation.md", "confusion_matrix.png", "roc_curve.png"):
        assert (out / name).stat().st_size > 0


def test_a_test_split_is_read_alone_and_a_missing_class_is_a_note(tmp_path, capsys):
    names = ("NORMAL", "PNEUMONIA")
    model = _exported(tmp_path, names, "PNEUMONIA")
    data = _folder(tmp_path / "kaggle", names, "PNEUMONIA", per_class=4, split="test")
    _folder(tmp_path / "kaggle", names, "PNEUMONIA", per_class=9, split="train")  # never read
    assert main(["evaluate", "--model", str(model), "--data", str(data), "--bootstrap", "20"]) == 0
    assert "8 images" in capsys.readouterr().out
    only = tmp_path / "only"
    (only / "PNEUMONIA").mkdir(parents=True)
    write_image(only / "PNEUMONIA" / "a.png", 1, 40, np.random.default_rng(0))
    assert main(["evaluate", "--model", str(model), "--data", str(only), "--bootstrap", "20"]) == 0
    assert "has no NORMAL images" in capsys.readouterr().out


@pytest.mark.parametrize("case", ["unknown class", "a file", "missing", "no model"])
def test_bad_input_is_one_line_exit_2(tmp_path, capsys, case):
    names = ("NORMAL", "PNEUMONIA")
    model = _exported(tmp_path, names, "PNEUMONIA")
    data = _folder(tmp_path / "d", names, "PNEUMONIA", per_class=2)
    expect = {"unknown class": "does not know", "a file": "is a file, not a folder", "missing": "does not exist",
              "no model": "does not exist"}[case]
    if case == "unknown class":
        _folder(tmp_path / "d", ("Tuberculosis",), "Tuberculosis", per_class=1)
    args = ["evaluate", "--model", str(model), "--data", str(data)]
    if case == "a file":
        args[-1] = str(model)
    elif case == "missing":
        args[-1] = str(tmp_path / "nowhere")
    elif case == "no model":
        args[2] = str(tmp_path / "nowhere.keras")
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("lungsearch: error:") and expect in err[0]


@pytest.mark.parametrize("names, disease, present, missing_metric", [
    (("NORMAL", "PNEUMONIA"), "PNEUMONIA", "NORMAL", "sensitivity"),  # no disease images: sensitivity cannot be measured
    (("Covid", "Normal"), "Covid", "Normal", "sensitivity"),  # the other class order
    (("Covid", "Normal"), "Covid", "Covid", "specificity"),  # no normal images: specificity
])
def test_a_folder_of_one_class_names_the_metric_it_cannot_give(tmp_path, capsys, names, disease, present, missing_metric):
    model = _exported(tmp_path, names, disease)
    data = _folder(tmp_path / "hospital", (present,), disease)
    assert main(["evaluate", "--model", str(model), "--data", str(data), "--out", str(tmp_path / "ev"), "--bootstrap", "20"]) == 0
    note = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("note:"))
    assert f"(AUC, {missing_metric}) are n/a" in note
