"""Exports are atomic: a failed or interrupted `best` leaves the earlier export byte for byte; predict refuses a mixed pair."""

import hashlib
import json
import os

import optuna
import pytest

from lungsearch import export
from lungsearch.cli import main
from tests.conftest import make_folder


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A two-trial study and a first export of it: (storage url, data folder, export folder)."""
    root = tmp_path_factory.mktemp("atomic")
    data = make_folder(root / "xray", per_class=16, size=24)
    url = f"sqlite:///{root / 's.db'}"
    assert main(["run", "--data", str(data), "--trials", "2", "--epochs", "1", "--image-size", "24", "--quiet",
                 "--val-fraction", "0.3", "--storage", url, "--study", "tiny"]) == 0
    out = root / "export"
    assert main(["best", "--storage", url, "--export", str(out / "model.keras"), "--bootstrap", "20", "--ensemble", "1"]) == 0
    return url, data, out


def checksums(folder) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.mark.parametrize("where", ["check_loads", "write_files", "interrupt"])
def test_a_failed_or_interrupted_export_leaves_the_earlier_one_byte_identical(exported, monkeypatch, capsys, where):
    url, _, out = exported
    before = checksums(out)
    assert {"model.keras", "model.json", "evaluation.json"} <= set(before)

    def fail(*_, **__):
        if where == "interrupt":
            raise KeyboardInterrupt
        raise export.ExportError("injected failure")

    target = {"check_loads": "lungsearch.export.best.check_loads", "write_files": "lungsearch.evaluate.write_files",
              "interrupt": "lungsearch.evaluate.write_files"}[where]
    monkeypatch.setattr(target, fail)
    args = ["best", "--storage", url, "--export", str(out / "model.keras"), "--bootstrap", "20", "--trial", "1"]
    if where == "interrupt":
        with pytest.raises(KeyboardInterrupt):
            export.export_best(optuna.load_study(study_name="tiny", storage=url), str(out / "model.keras"), 1, n_bootstrap=20,
                               log=lambda *_: None)
    else:
        assert main(args) == 2
        assert "injected failure" in capsys.readouterr().err
    assert checksums(out) == before  # nothing changed, and no staging folder left behind


def test_an_unwritable_export_folder_is_one_line_before_any_data_is_read(exported, tmp_path, capsys):
    url, _, _ = exported
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert main(["best", "--storage", url, "--export", str(blocker / "model.keras")]) == 2
    captured = capsys.readouterr()
    assert "cannot write into" in captured.err and len(captured.err.strip().splitlines()) == 1
    assert "loading the study's train/validation data" not in captured.out


def test_a_three_class_study_with_min_sensitivity_is_refused_before_anything_is_written(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 's.db'}"
    study = optuna.create_study(storage=url, study_name="three", direction="maximize")
    study.set_user_attr("class_names", ["Covid", "Normal", "Viral Pneumonia"])
    (tmp_path / "out").mkdir()
    assert main(["best", "--storage", url, "--study", "three", "--export", str(tmp_path / "out" / "model.keras"),
                 "--min-sensitivity", "0.95"]) == 2
    assert "needs a two-class study" in capsys.readouterr().err
    assert not list((tmp_path / "out").iterdir())


def test_a_study_whose_folder_lost_its_test_split_fails_before_training(exported, tmp_path, capsys):
    url, data, _ = exported
    hidden = data.parent / "test-hidden"
    os.rename(data / "test", hidden)
    try:
        assert main(["best", "--storage", url, "--export", str(tmp_path / "m.keras"), "--retrain", "--trial", "0"]) == 2
        captured = capsys.readouterr()
        assert "has no test/<class>/ images" in captured.err and "training again" not in captured.out
        assert not (tmp_path / "m.keras").exists()
    finally:
        os.rename(hidden, data / "test")


def test_predict_and_evaluate_refuse_a_model_its_json_does_not_describe(exported, tmp_path, capsys):
    url, data, out = exported
    image = next((data / "test" / "NORMAL").iterdir())
    meta = json.loads((out / "model.json").read_text())
    assert len(meta["model_sha256"]) == 64
    mixed = tmp_path / "model.keras"
    mixed.write_bytes((out / "model.keras").read_bytes())

    def refused(changed: dict, words: str, evaluate_words: str | None = None):
        (tmp_path / "model.json").write_text(json.dumps({**meta, **changed}))
        assert main(["predict", "--model", str(mixed), str(image)]) == 2
        err = capsys.readouterr().err
        assert words in err and len(err.strip().splitlines()) == 1, err
        assert main(["evaluate", "--model", str(mixed), "--data", str(data / "test"), "--out", str(tmp_path / "ev")]) == 2
        assert (evaluate_words or words) in capsys.readouterr().err

    refused({"model_sha256": "0" * 64}, "checksum differs")
    # a JSON from before the checksum, beside a model of another class count: the 3-class model beside a binary JSON
    refused({"model_sha256": None, "class_names": ["Covid", "Normal", "Viral Pneumonia"], "decision": {"threshold": None}},
            "gives 2 class probabilities, its .json names 3 classes", "that the model does not know")
    refused({"model_sha256": None, "input_shape": [32, 32, 1], "image_size": 32}, "takes inputs of shape")
    # not a Keras file at all, with a JSON beside it: one line, not a traceback
    fake = tmp_path / "fake.keras"
    fake.write_text("not a model")
    (tmp_path / "fake.json").write_text(json.dumps({**meta, "model_sha256": None}))
    assert main(["predict", "--model", str(fake), str(image)]) == 2
    assert "does not load as a Keras model" in capsys.readouterr().err
    # the pair as exported still predicts
    (tmp_path / "model.json").write_text(json.dumps(meta))
    assert main(["predict", "--model", str(mixed), str(image)]) == 0


def test_a_threshold_of_one_is_warned_about(exported, tmp_path, monkeypatch, capsys):
    """A validation split separated so well that Youden's J lands at 1.0: the model would never decide the disease."""
    from lungsearch import evaluate

    url, _, _ = exported
    real = evaluate.choose_threshold
    monkeypatch.setattr(evaluate, "choose_threshold", lambda *a, **k: {**real(*a, **k), "threshold": 1.0})
    assert main(["best", "--storage", url, "--export", str(tmp_path / "m.keras"), "--bootstrap", "20", "--ensemble", "1"]) == 0
    out = capsys.readouterr().out
    assert "warning: the threshold chosen on validation is 1.0000, so this model never decides PNEUMONIA" in out
