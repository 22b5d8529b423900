"""`best`: pick, export, evaluate once on test, reload in a fresh process; bad input exits 2."""

import json

import optuna
import pytest

from lungsearch import export
from lungsearch.cli import main
from tests.conftest import make_folder

EVALUATION_FIELDS = {"study", "trial", "model", "class_names", "decision", "validation", "test", "versions"}
META_FIELDS = {"format", "class_names", "image_size", "input_shape", "color_mode", "preprocessing", "study", "trial", "params",
               "validation", "decision", "test", "test_ci95", "data", "versions", "retrained"}


@pytest.fixture(scope="module")
def study_db(tmp_path_factory):
    """A study with at least 3 completed trials on a tiny synthetic folder: (storage url, folder).

    Its first two trials are the cnn space's warm starts; at 24 px a sampled
    trial may be pruned for too many poolings, so it runs a fourth."""
    root = tmp_path_factory.mktemp("best")
    data = make_folder(root / "xray", per_class=16, size=24)
    url = f"sqlite:///{root / 's.db'}"
    assert main(["run", "--data", str(data), "--trials", "4", "--epochs", "1", "--image-size", "24",
                 "--val-fraction", "0.3", "--storage", url, "--study", "tiny"]) == 0
    trials = optuna.load_study(study_name="tiny", storage=url).trials
    assert sum(t.state.name == "COMPLETE" for t in trials) >= 3
    return url, root


def test_best_exports_model_json_and_evaluation_files(study_db, tmp_path, capsys):
    url, _ = study_db
    dest = tmp_path / "out" / "model.keras"
    assert main(["best", "--storage", url, "--export", str(dest), "--bootstrap", "50", "--min-sensitivity", "0.9"]) == 0
    out = capsys.readouterr().out
    assert "reloaded in a fresh process: ok" in out and "test (32 images" in out  # 16 per class
    meta = json.loads((tmp_path / "out" / "model.json").read_text())
    assert META_FIELDS <= set(meta)
    assert meta["format"] == export.FORMAT and meta["class_names"] == ["NORMAL", "PNEUMONIA"]
    assert meta["decision"]["positive"] == 1 and meta["decision"]["min_sensitivity"] == 0.9
    assert meta["data"]["test_count"] == 32 and meta["data"]["fingerprint"]
    assert set(meta["versions"]["export"]) >= {"lungsearch", "keras", "optuna"}
    ev = json.loads((tmp_path / "out" / "evaluation.json").read_text())
    assert EVALUATION_FIELDS <= set(ev)
    for key in ("accuracy", "balanced_accuracy", "roc_auc", "sensitivity", "specificity", "precision/NORMAL", "f1/PNEUMONIA"):
        m = ev["test"]["metrics"][key]
        assert set(m) == {"value", "ci95", "ci_method"}
    assert sum(map(sum, ev["test"]["confusion_matrix"])) == 32
    for name in ("evaluation.md", "confusion_matrix.png", "roc_curve.png", "training_curves.png"):
        assert (tmp_path / "out" / name).stat().st_size > 0


def test_trial_choice_and_max_train_seconds(study_db):
    url, _ = study_db
    study = optuna.load_study(study_name="tiny", storage=url)
    trials = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    fastest = min(trials, key=lambda t: t.user_attrs["train_seconds"])
    budget = fastest.user_attrs["train_seconds"]
    picked = export.pick_trial(study, max_train_seconds=budget)  # the best of those within it: tiny trials may tie on time
    within = [t for t in trials if t.user_attrs["train_seconds"] <= budget]
    assert picked.user_attrs["train_seconds"] <= budget
    assert picked.user_attrs["val_accuracy"] == max(t.user_attrs["val_accuracy"] for t in within)  # "the most accurate"
    assert export.pick_trial(study, trials[0].number).number == trials[0].number
    with pytest.raises(export.ExportError, match="within"):
        export.pick_trial(study, max_train_seconds=budget / 10)
    with pytest.raises(export.ExportError, match="not a completed trial"):
        export.pick_trial(study, 99)


def test_retrain_rebuilds_a_trial_whose_model_is_gone(study_db, tmp_path, capsys):
    url, root = study_db
    study = optuna.load_study(study_name="tiny", storage=url)
    trial = study.best_trial
    artifact = trial.user_attrs["model_artifact"]
    # Forget the model, as the keeper does for a dominated trial.
    store = root / "s.artifacts" / artifact
    saved = store.read_bytes()
    store.unlink()
    try:
        dest = tmp_path / "model.keras"
        assert main(["best", "--storage", url, "--export", str(dest), "--trial", str(trial.number)]) == 2
        err = capsys.readouterr().err
        assert "no longer kept" in err and "--retrain" in err and len(err.strip().splitlines()) == 1
        assert main(["best", "--storage", url, "--export", str(dest), "--trial", str(trial.number), "--retrain", "--bootstrap", "20"]) == 0
        meta = json.loads((tmp_path / "model.json").read_text())
        assert meta["retrained"] is True and meta["params"] == trial.params
        assert meta["members"] == []  # one model: Grad-CAM cuts it at its own last conv layer
    finally:
        store.write_bytes(saved)


def test_by_default_best_averages_the_three_best_trials(study_db, tmp_path, capsys):
    import keras
    import numpy as np

    from spaces import augment

    url, root = study_db
    study = optuna.load_study(study_name="tiny", storage=url)
    top = export.pick_trials(study, 3)
    assert [t.value for t in top] == sorted((t.value for t in top), reverse=True)
    dest = tmp_path / "ens" / "model.keras"
    assert main(["best", "--storage", url, "--export", str(dest), "--bootstrap", "20"]) == 0
    out = capsys.readouterr().out
    assert "exporting the 3 best trials averaged (the default; --ensemble 1" in out
    assert "ensemble of trials" in out and "reloaded in a fresh process: ok" in out
    meta = json.loads((tmp_path / "ens" / "model.json").read_text())
    assert [m["trial"] for m in meta["ensemble"]] == [t.number for t in top]
    assert meta["members"] == ["member0", "member1", "member2"]  # it says it averages, and what: Grad-CAM reads this
    members = ", ".join(f"#{t.number}" for t in top)
    assert f"trials {members} averaged: reading the test split (once)" in out  # the ensemble is tested, not the first trial
    assert META_FIELDS <= set(meta)
    card = (tmp_path / "ens" / "MODEL_CARD.md").read_text()  # the card names every member
    assert "the probabilities of the 3 best trials averaged" in card and all(f"- trial #{t.number} (" in card for t in top)
    # the one file averages what the three kept models say, image by image
    augment.register()
    x = np.random.default_rng(0).integers(0, 256, (5, 24, 24, 1)).astype("uint8")
    members = []
    for t in top:
        copy = tmp_path / f"member{t.number}.keras"  # artifacts are stored without the .keras suffix load_model wants
        copy.write_bytes((root / "s.artifacts" / t.user_attrs["model_artifact"]).read_bytes())
        members.append(augment.inference_model(keras.models.load_model(copy)))
    mean = np.mean([m.predict(x, verbose=0) for m in members], axis=0)
    np.testing.assert_allclose(keras.models.load_model(dest).predict(x, verbose=0), mean, atol=1e-5)
    ev = json.loads((tmp_path / "ens" / "evaluation.json").read_text())
    assert ev["test"]["n"] == 32


def test_the_default_falls_back_to_the_best_trial_alone_and_says_why(study_db, tmp_path, capsys):
    url, root = study_db
    study = optuna.load_study(study_name="tiny", storage=url)
    best, second, third = export.pick_trials(study, 3)
    kept = {best.number, second.number, third.number}
    assert export.default_ensemble(study, lambda t: t.number in kept)[0] == 3
    k, why = export.default_ensemble(study, lambda t: t.number != third.number)
    assert k == 1 and f"trial #{third.number} has none" in why and "--keep-top 3" in why
    two = optuna.create_study(direction="maximize")
    for value in (0.9, 0.8):
        two.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.COMPLETE, value=value))
    assert export.default_ensemble(two, lambda t: True) == (1, "the best trial alone: the default average of the 3 best "
                                                               "needs 3 completed trials, the study has 2")
    # through the command: the third model gone, `best` exports the best trial alone and says so
    store = root / "s.artifacts" / third.user_attrs["model_artifact"]
    saved = store.read_bytes()
    store.unlink()
    try:
        dest = tmp_path / "model.keras"
        assert main(["best", "--storage", url, "--export", str(dest), "--bootstrap", "20"]) == 0
        assert "exporting the best trial alone" in capsys.readouterr().out
        meta = json.loads((tmp_path / "model.json").read_text())
        assert "ensemble" not in meta and meta["trial"] == best.number
    finally:
        store.write_bytes(saved)


def test_ensemble_larger_than_the_study_or_with_trial_is_one_line(study_db, tmp_path, capsys):
    url, _ = study_db
    dest = str(tmp_path / "m.keras")
    assert main(["best", "--storage", url, "--export", dest, "--ensemble", "9"]) == 2
    assert "needs 9 completed trials" in capsys.readouterr().err
    assert main(["best", "--storage", url, "--export", dest, "--ensemble", "2", "--trial", "0"]) == 2
    assert "cannot be combined" in capsys.readouterr().err


def test_threshold_rule_is_opt_in_and_recorded(study_db, tmp_path, capsys):
    url, _ = study_db
    dest = tmp_path / "mid" / "model.keras"
    assert main(["best", "--storage", url, "--export", str(dest), "--bootstrap", "20", "--threshold-rule", "temperature"]) == 0
    meta = json.loads((tmp_path / "mid" / "model.json").read_text())
    d = meta["decision"]
    assert d["threshold_rule"] == "temperature" and d["temperature"] > 0 and 0 < d["prevalence"] < 1
    assert "temperature" in capsys.readouterr().out
    assert main(["best", "--storage", url, "--export", str(dest), "--threshold-rule", "half", "--min-sensitivity", "0.9"]) == 2
    assert "not both" in capsys.readouterr().err


def test_best_on_a_study_without_completed_trials_is_one_line_exit_2(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'e.db'}"
    study = optuna.create_study(storage=url, study_name="empty", direction="maximize")
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL))
    assert main(["best", "--storage", url, "--export", str(tmp_path / "m.keras")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lungsearch: error:") and "no completed trial" in err and len(err.strip().splitlines()) == 1


@pytest.mark.realdata
@pytest.mark.slow
def test_real_chest_xray_export_has_every_field(shared_data, tmp_path):
    folder = shared_data / "chest_xray"
    if not (folder / "test").is_dir():
        pytest.skip("chest_xray not present")
    url = f"sqlite:///{tmp_path / 's.db'}"
    assert main(["run", "--data", str(folder), "--trials", "1", "--epochs", "1", "--image-size", "24",
                 "--batch-size", "128", "--storage", url]) == 0
    assert main(["best", "--storage", url, "--export", str(tmp_path / "model.keras"), "--bootstrap", "100"]) == 0
    ev = json.loads((tmp_path / "evaluation.json").read_text())
    assert EVALUATION_FIELDS <= set(ev)
    assert ev["test"]["n"] == 624 and ev["test"]["counts"] == {"NORMAL": 234, "PNEUMONIA": 390}
    for key in ("accuracy", "balanced_accuracy", "roc_auc", "sensitivity", "specificity"):
        m = ev["test"]["metrics"][key]
        assert m["ci95"][0] <= m["value"] <= m["ci95"][1]
    meta = json.loads((tmp_path / "model.json").read_text())
    assert META_FIELDS <= set(meta)
