"""`refine`: finalists refitted on patient-grouped folds, every training image predicted once by a model that never saw it;
`best` then chooses, builds and thresholds on those out-of-fold predictions."""

import json
import os

import keras
import numpy as np
import optuna
import pytest

from lungsearch import refine
from lungsearch.cli import main
from tests.conftest import make_folder


def _study(root, *, classes=("NORMAL", "PNEUMONIA"), disease=None, trials=2):
    data = make_folder(root / "xray", classes=classes, per_class=24, size=24, disease=disease)
    url = f"sqlite:///{root / 's.db'}"
    assert main(["run", "--data", str(data), "--trials", str(trials), "--epochs", "2", "--image-size", "24", "--seed", "1",
                 "--val-fraction", "0.25", "--storage", url, "--study", "tiny", "--quiet"]) == 0
    return url, data


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    """A study of two trials, never refined: tests that refine it take a copy (:func:`_copy`)."""
    root = tmp_path_factory.mktemp("plain")
    url, _ = _study(root)
    return url, root


def _copy(plain, dest):
    """The plain study's database and kept models in ``dest``, the copy pointing at its own models."""
    import shutil

    url, root = plain
    shutil.copyfile(root / "s.db", dest / "s.db")
    copy = f"sqlite:///{dest / 's.db'}"
    study = _load(copy)
    folder = dest / "models"
    shutil.copytree(study.user_attrs["artifacts"], folder)
    study.set_user_attr("artifacts", str(folder))
    return copy


@pytest.fixture(scope="module")
def refined(plain, tmp_path_factory):
    root = tmp_path_factory.mktemp("refined")
    url = _copy(plain, root)
    assert main(["refine", "--storage", url, "--top", "2", "--folds", "3"]) == 0
    return url, plain[1]


def _load(url):
    return optuna.load_study(study_name="tiny", storage=url)


def test_every_training_image_is_predicted_once_by_a_fold_model_that_never_saw_its_patient(refined):
    url, _ = refined
    study = _load(url)
    record = study.user_attrs["refine"]
    held = [np.asarray(h) for h in record["held_out"]]
    assert sorted(np.concatenate(held).tolist()) == list(range(record["images"]))
    assert len(record["finalists"]) == 2 and record["folds"] == 3
    for number in record["finalists"]:
        figures = record["results"][str(number)]
        assert 0.0 <= figures["oof_auc"] <= 1.0 and figures["oof_auc_ci95"][0] <= figures["oof_auc"] <= figures["oof_auc_ci95"][1]
        assert figures["oof_log_loss"] > 0 and 0 <= figures["oof_brier"] <= 2 and figures["images"] == record["images"]
        for k in range(3):
            unit = study.user_attrs[refine.unit_key(number, k)]
            assert len(unit["probs"]) == len(held[k])
            assert os.path.isfile(os.path.join(study.user_attrs["artifacts"], unit["model"]))


def test_a_fold_trains_on_the_other_folds_with_its_own_patient_split(refined):
    from lungsearch.export.rebuild import search_data

    study = _load(refined[0])
    pool = refine.pool_of(search_data(study), 3, 1)
    assert pool.digest == study.user_attrs["refine"]["digest"]
    for k, (_, held) in enumerate(pool.folds):
        data, rows = refine.fold_data(pool, k, 0.25, 1)
        used = np.concatenate([rows["train"], rows["val"]])
        assert not set(used.tolist()) & set(held.tolist())
        assert not {pool.groups[i] for i in used} & {pool.groups[i] for i in held}
        assert not set(data.groups["train"]) & set(data.groups["val"])
        np.testing.assert_array_equal(data.train.x, pool.x[rows["train"]])


def test_a_second_refine_carries_on_and_retrains_nothing_stored(refined, capsys):
    url, _ = refined
    before = {k: v["seconds"] for k, v in _load(url).user_attrs.items() if k.startswith(refine.UNIT_PREFIX)}
    assert main(["refine", "--storage", url, "--top", "2", "--folds", "3"]) == 0
    out = capsys.readouterr().out
    assert "6 of 6 fold fits stored, 0 to go" in out
    after = {k: v["seconds"] for k, v in _load(url).user_attrs.items() if k.startswith(refine.UNIT_PREFIX)}
    assert after == before


def test_a_refine_cut_short_keeps_its_units_and_the_next_finishes_the_rest(plain, tmp_path, capsys):
    url = _copy(plain, tmp_path)
    refine.refine(_load(url), top=1, folds=3, fit=False, log=lambda line: None)  # the finalist begun (as a killed refine leaves it)
    assert main(["refine", "--storage", url, "--top", "1", "--folds", "3", "--timeout", "0.001"]) == 0
    out = capsys.readouterr().out
    assert "--timeout reached with 2 fold fits to go" in out  # a begun finalist is carried on; its first unit precedes the clock
    stored = [k for k in _load(url).user_attrs if k.startswith(refine.UNIT_PREFIX)]
    assert len(stored) == 1 and not _load(url).user_attrs["refine"]["results"]
    assert main(["refine", "--storage", url, "--top", "1", "--folds", "3"]) == 0
    assert "1 of 3 fold fits stored, 2 to go" in capsys.readouterr().out
    assert len(_load(url).user_attrs["refine"]["results"]) == 1


def test_other_folds_or_other_images_are_refused_and_nothing_stored_is_lost(refined, tmp_path, capsys):
    url, root = refined
    before = json.dumps(_load(url).user_attrs, sort_keys=True)
    assert main(["refine", "--storage", url, "--top", "2", "--folds", "4"]) == 2
    assert "refined with 3 folds; give --folds 3" in capsys.readouterr().err
    victim = sorted((root / "xray" / "train" / "NORMAL").iterdir())[0]
    moved = tmp_path / victim.name
    victim.rename(moved)
    try:
        code = main(["refine", "--storage", url, "--top", "2", "--folds", "3"])
    finally:
        moved.rename(victim)
    assert code == 2
    assert "error:" in capsys.readouterr().err
    assert json.dumps(_load(url).user_attrs, sort_keys=True) == before


def test_best_exports_the_oof_best_finalists_fold_models_averaged_thresholded_out_of_fold(refined, tmp_path):
    url, _ = refined
    out = tmp_path / "bag"
    assert main(["best", "--storage", url, "--export", str(out / "model.keras"), "--bootstrap", "10"]) == 0
    meta = json.loads((out / "model.json").read_text())
    study = _load(url)
    results = study.user_attrs["refine"]["results"]
    from lungsearch.evaluate.calibration import apply_platt, calibrate

    (best,) = meta["refined"]["weights"]  # the highest OOF AUC once each fold model is calibrated
    assert best == max(results, key=lambda n: (results[n]["oof_auc_calibrated"], -int(n)))  # as refine stores and names it
    assert f"the best out of fold: trial #{best} (OOF AUC, fold models calibrated" in refine.summary_line(study.user_attrs["refine"])
    assert meta["refined"]["rule"] == "bag" and meta["refined"]["weights"] == {best: 1} and best in results
    assert meta["members"] == [f"trial{best}_fold{k}" for k in range(meta["refined"]["folds"])]  # the fold models it averages
    assert meta["decision"]["chosen_on"].startswith("out-of-fold") and "out-of-fold" in meta["decision"]["rule"]
    record = study.user_attrs["refine"]
    y, held = np.asarray(record["labels"]), [np.asarray(h) for h in record["held_out"]]
    raw = refine.oof_of(study, int(best), len(y), [(None, h) for h in held])
    calibrated, platt = calibrate(raw, y, held, positive=1)  # each fold's (a, b) fitted on its own held-out images
    assert meta["refined"]["fold_calibration"]["platt"][best] == [[pytest.approx(a, abs=1e-5), pytest.approx(b, abs=1e-5)] for a, b in platt]
    assert meta["out_of_fold"]["oof_auc"] == pytest.approx(refine.figures(y, calibrated, ("NORMAL", "PNEUMONIA"))["oof_auc"], abs=1e-6)
    card = (out / "MODEL_CARD.md").read_text()  # the card says what was mixed, and where the threshold was chosen
    assert "Refined (`lungsearch refine`, rule `bag`)" in card and f"- trial #{best} x1: OOF AUC" in card
    assert "on the out-of-fold predictions of every training image" in card and "| metric | out-of-fold |" in card
    assert "Each fold model was calibrated before averaging" in card
    # the export is the mean of the finalist's fold models, each calibrated by its (a, b)
    folder = study.user_attrs["artifacts"]
    folds = [keras.models.load_model(os.path.join(folder, study.user_attrs[refine.unit_key(int(best), k)]["model"]), compile=False)
             for k in range(3)]
    x = np.random.default_rng(0).integers(0, 255, (5, 24, 24, 1)).astype("uint8")
    each = [np.asarray(m.predict(x, verbose=0)).astype(np.float64) for m in folds]
    mean = np.mean([apply_platt(p, a, b, 1) for p, (a, b) in zip(each, platt)], axis=0)
    exported = keras.models.load_model(out / "model.keras", compile=False)
    np.testing.assert_allclose(np.asarray(exported.predict(x, verbose=0)), mean, atol=1e-4)
    # --fold-calibration off: the plain mean, and the stored OOF figure
    off = tmp_path / "off"
    assert main(["best", "--storage", url, "--export", str(off / "model.keras"), "--bootstrap", "10", "--fold-calibration", "off"]) == 0
    meta_off = json.loads((off / "model.json").read_text())
    plain_best = max(results, key=lambda n: (results[n]["oof_auc"], -int(n)))
    assert meta_off["refined"]["weights"] == {plain_best: 1} and meta_off["refined"]["fold_calibration"]["method"] == "off"
    assert meta_off["out_of_fold"]["oof_auc"] == pytest.approx(results[plain_best]["oof_auc"], abs=1e-6)
    if plain_best == best:
        np.testing.assert_allclose(np.asarray(keras.models.load_model(off / "model.keras", compile=False).predict(x, verbose=0)),
                                   np.mean(each, axis=0), atol=1e-5)
    from PIL import Image

    Image.fromarray(x[0, :, :, 0]).save(tmp_path / "x.png")
    assert main(["predict", str(tmp_path / "x.png"), "--model", str(out / "model.keras"), "--gradcam", str(tmp_path / "gc")]) == 0
    assert (tmp_path / "gc" / "x.gradcam.png").is_file()  # Grad-CAM explains the bag as it does an ensemble


def test_best_average_mixes_the_best_refined_finalists_by_validation_all_their_fold_models_alike(refined, tmp_path):
    from lungsearch.evaluate.calibration import apply_platt, calibrate

    url, _ = refined
    out = tmp_path / "average"
    assert main(["best", "--storage", url, "--export", str(out / "model.keras"), "--bootstrap", "10", "--refined", "average"]) == 0
    meta = json.loads((out / "model.json").read_text())
    study = _load(url)
    record = study.user_attrs["refine"]
    done = sorted(int(n) for n in record["results"])
    assert meta["refined"]["rule"] == "average" and meta["refined"]["weights"] == {str(n): 1 for n in done}  # both refined, top 3
    assert meta["members"] == [f"trial{n}_fold{k}" for n in done for k in range(3)]
    y, held = np.asarray(record["labels"]), [np.asarray(h) for h in record["held_out"]]
    x = np.random.default_rng(2).integers(0, 255, (4, 24, 24, 1)).astype("uint8")
    folder = study.user_attrs["artifacts"]
    want, oof = [], 0
    for n in done:
        cal, platt = calibrate(refine.oof_of(study, n, len(y), [(None, h) for h in held]), y, held, positive=1)
        oof = oof + cal / len(done)
        for k, (a, b) in enumerate(platt):
            m = keras.models.load_model(os.path.join(folder, study.user_attrs[refine.unit_key(n, k)]["model"]), compile=False)
            want.append(apply_platt(np.asarray(m.predict(x, verbose=0), dtype=np.float64), a, b, 1))
    np.testing.assert_allclose(np.asarray(keras.models.load_model(out / "model.keras", compile=False).predict(x, verbose=0)),
                               np.mean(want, axis=0), atol=1e-4)
    assert meta["out_of_fold"]["oof_auc"] == pytest.approx(refine.figures(y, oof, ("NORMAL", "PNEUMONIA"))["oof_auc"], abs=1e-6)


def test_best_without_refine_says_that_refine_exists_and_refuses_refined_rules(plain, tmp_path, capsys):
    url, _ = plain
    assert main(["best", "--storage", url, "--export", str(tmp_path / "n" / "model.keras"), "--bootstrap", "10"]) == 0
    assert "`lungsearch refine` refits the best trials" in capsys.readouterr().out
    assert main(["best", "--storage", url, "--export", str(tmp_path / "o" / "model.keras"), "--refined", "bag"]) == 2
    assert "run `lungsearch refine` first" in capsys.readouterr().err
    assert main(["best", "--storage", url, "--export", str(tmp_path / "p" / "model.keras"), "--refined", "select",
                 "--trial", "0"]) == 2
    assert "cannot be combined with --trial" in capsys.readouterr().err


def test_the_oof_auc_is_the_disease_classes_whatever_index_it_sorts_to(tmp_path):
    """Class order: in a Covid/Normal folder the disease is class 0; a finalist that finds it scores high, not 1 - AUC."""
    url, _ = _study(tmp_path, classes=("Covid", "Normal"), disease="Covid", trials=1)
    assert main(["refine", "--storage", url, "--top", "1", "--folds", "2"]) == 0
    study = _load(url)
    (figures,) = study.user_attrs["refine"]["results"].values()
    y = np.asarray(study.user_attrs["refine"]["labels"])
    number = study.user_attrs["refine"]["finalists"][0]
    oof = refine.oof_of(study, number, len(y), [(None, np.asarray(h)) for h in study.user_attrs["refine"]["held_out"]])
    from sklearn.metrics import roc_auc_score

    assert figures["oof_auc"] == pytest.approx(roc_auc_score(y == 0, oof[:, 0]), abs=1e-5)
    assert figures["oof_auc"] > 0.6  # the blob marks Covid: a model that learned anything ranks it first
    # fold calibration in this class order: the disease is class 0, so a and b act on class 0's probability
    out = tmp_path / "model"
    assert main(["best", "--storage", url, "--export", str(out / "model.keras"), "--bootstrap", "10"]) == 0
    meta = json.loads((out / "model.json").read_text())
    from lungsearch.evaluate.calibration import apply_platt, calibrate

    held = [np.asarray(h) for h in study.user_attrs["refine"]["held_out"]]
    calibrated, platt = calibrate(oof, y, held, positive=0)
    assert meta["refined"]["fold_calibration"]["platt"][str(number)] == [[pytest.approx(a, abs=1e-5), pytest.approx(b, abs=1e-5)]
                                                                        for a, b in platt]
    assert meta["out_of_fold"]["oof_auc"] == pytest.approx(roc_auc_score(y == 0, calibrated[:, 0]), abs=1e-5)
    folder = study.user_attrs["artifacts"]
    x = np.random.default_rng(1).integers(0, 255, (4, 24, 24, 1)).astype("uint8")
    each = [np.asarray(keras.models.load_model(os.path.join(folder, study.user_attrs[refine.unit_key(number, k)]["model"]),
                                               compile=False).predict(x, verbose=0)).astype(np.float64) for k in range(2)]
    mean = np.mean([apply_platt(p, a, b, 0) for p, (a, b) in zip(each, platt)], axis=0)
    np.testing.assert_allclose(np.asarray(keras.models.load_model(out / "model.keras", compile=False).predict(x, verbose=0)), mean, atol=1e-4)


def test_studies_and_report_show_what_refine_stored(refined, tmp_path, capsys):
    url, _ = refined
    assert main(["studies", "--storage", url]) == 0
    assert "2/2 x 3 folds, OOF AUC" in capsys.readouterr().out
    assert main(["report", "--storage", url, "--out", str(tmp_path / "r")]) == 0
    assert "refined: 2 of 2 finalists on 3 folds" in capsys.readouterr().out
    import pandas as pd

    table = pd.read_csv(tmp_path / "r" / "refine.csv")
    record = _load(url).user_attrs["refine"]
    assert sorted(table["trial"]) == sorted(record["finalists"]) and table["refined_in_full"].all()
    for row in table.itertuples():
        assert row.oof_auc == pytest.approx(record["results"][str(row.trial)]["oof_auc"])


def test_run_refine_refits_after_the_search_within_the_same_timeout(tmp_path, capsys):
    data = make_folder(tmp_path / "xray", per_class=16, size=24)
    url = f"sqlite:///{tmp_path / 's.db'}"
    assert main(["run", "--data", str(data), "--trials", "50", "--epochs", "1", "--image-size", "24", "--val-fraction", "0.25",
                 "--timeout", "20", "--refine", "--recycle", "0", "--storage", url, "--study", "tiny", "--quiet"]) == 0
    out = capsys.readouterr().out
    study = _load(url)
    assert study.user_attrs["config"]["timeout"] == 10  # the search stops starting trials at half of --timeout
    assert "refine: 0 of" in out and any(k.startswith(refine.UNIT_PREFIX) for k in study.user_attrs)
    assert len(study.trials) < 50
    assert "the search goes on" not in out  # refine refitted: the search has only its share


def test_the_oof_choice_of_rules_reads_only_out_of_fold_predictions(refined, monkeypatch):
    """bench.refine decides the export and threshold rules on OOF predictions, cross-fitted; the test split is never loaded."""
    from bench.refine import oof_choice
    from lungsearch import data as data_mod

    monkeypatch.setattr(data_mod, "load_test", lambda *a, **k: pytest.fail("the OOF choice read the test split"))
    out = oof_choice(_load(refined[0]), repeats=2)
    assert set(out["export_rules"]) == {"bag", "select", "average", "best_val"} and out["export_choice"] in out["export_rules"]
    assert out["fold_models"] == "platt" and out["fold_calibration"]["choice"] in ("platt", "off")  # calibrated as best does
    assert set(out["threshold_rules"]) == {"youden", "youden-mid", "half", "temperature"}
    assert all(0 <= r["mean_auc"] <= 1 for r in out["export_rules"].values())


def test_workers_share_the_fold_fits_and_each_is_fitted_once(plain, tmp_path, capsys):
    url = _copy(plain, tmp_path)
    assert main(["refine", "--storage", url, "--top", "2", "--folds", "3", "--workers", "2"]) == 0
    out = capsys.readouterr().out
    study = _load(url)
    assert len([k for k in study.user_attrs if k.startswith(refine.UNIT_PREFIX)]) == 6
    assert len(study.user_attrs["refine"]["results"]) == 2 and "refined 2 of 2 finalists" in out
    # the workers' lines do not reach this process's stdout (they are its children), so the units' count is the check;
    # a second refine finds nothing to do
    assert main(["refine", "--storage", url, "--top", "2", "--folds", "3", "--workers", "2"]) == 0
    assert "6 of 6 fold fits stored, 0 to go" in capsys.readouterr().out


def test_a_smaller_top_carries_on_with_the_finalists_begun_and_says_so(refined, capsys):
    """Stored fold fits are never dropped, so --top 1 on a study refined with --top 2 keeps both finalists: it says so."""
    url, _ = refined
    assert main(["refine", "--storage", url, "--top", "1", "--folds", "3"]) == 0
    out = capsys.readouterr().out
    assert "began 2 finalists" in out and "--top 1 adds none and drops none" in out and "6 of 6 fold fits stored, 0 to go" in out
    assert main(["refine", "--storage", url, "--top", "2", "--folds", "3"]) == 0
    assert "adds none" not in capsys.readouterr().out


def test_a_smaller_top_names_the_new_best_trial_it_adds(plain, tmp_path):
    """A trial better than the finalists an earlier refine began (a search that went on) is added, and named."""
    url = _copy(plain, tmp_path)
    lines = []
    refine.refine(_load(url), top=2, folds=3, fit=False, log=lines.append)  # begins both finalists, fits nothing
    study = _load(url)
    best = max((t for t in study.trials if t.value is not None), key=lambda t: t.value)
    params = dict(best.params)
    name, dist = next((n, d) for n, d in best.distributions.items() if isinstance(d, optuna.distributions.FloatDistribution))
    params[name] = dist.low if params[name] != dist.low else dist.high  # other params: not a repeat of a finalist
    study.add_trial(optuna.trial.create_trial(params=params, distributions=best.distributions, value=best.value + 1.0,
                                              user_attrs=best.user_attrs))
    lines.clear()
    refine.refine(_load(url), top=1, folds=3, fit=False, log=lines.append)
    number = len(study.trials) - 1
    assert any(f"--top 1 adds #{number} and drops none" in line for line in lines), lines
    assert _load(url).user_attrs["refine"]["finalists"][-1] == number


def test_workers_that_start_apart_split_the_whole_list_alike(plain, tmp_path):
    """Worker 2 starting after worker 1 has stored its fits still takes its own half (it once took half of what was left)."""
    url = _copy(plain, tmp_path)
    lines = []
    refine.refine(_load(url), top=2, folds=3, shard=(0, 2), log=lines.append)
    first = {k for k in _load(url).user_attrs if k.startswith(refine.UNIT_PREFIX)}
    assert first == {"refine:0:0", "refine:0:2", "refine:1:1"}
    refine.refine(_load(url), top=2, folds=3, shard=(1, 2), log=lines.append)
    units = {k for k in _load(url).user_attrs if k.startswith(refine.UNIT_PREFIX)}
    assert units - first == {"refine:0:1", "refine:1:0", "refine:1:2"}
    assert "results" not in (_load(url).user_attrs.get("refine") or {})  # workers leave the sums to their parent


def _fold_costs(url, folds=3):
    """Each finalist's estimated refit, best first: ``folds`` fold fits at (folds-1)/folds of its search time each."""
    done = sorted((t for t in _load(url).trials if t.value is not None), key=lambda t: (-t.value, t.number))
    return [folds * t.user_attrs["train_seconds"] * (folds - 1) / folds for t in done]


def test_a_timeout_takes_only_the_finalists_it_can_refit_in_full(plain, tmp_path, capsys):
    """By their search times, a --timeout fits one finalist of two: the other is not begun, so no half-refitted finalist."""
    url = _copy(plain, tmp_path)
    best, second = _fold_costs(url)[:2]
    assert main(["refine", "--storage", url, "--top", "2", "--folds", "3", "--timeout", str(best + 0.5 * second)]) == 0
    out = capsys.readouterr().out
    assert "fits about 1 of the 2 finalists at 3 folds" in out
    record = _load(url).user_attrs["refine"]
    assert len(record["finalists"]) == 1
    units = [k for k in _load(url).user_attrs if k.startswith(refine.UNIT_PREFIX)]
    assert units and all(k.startswith(f"{refine.UNIT_PREFIX}{record['finalists'][0]}:") for k in units)


def test_a_timeout_that_does_not_fit_the_best_finalist_begins_nothing_and_says_what_would(plain, tmp_path, capsys):
    """Refitting only a cheaper, weaker finalist would change what best exports, and beginning the best one overran
    run --refine's --timeout: neither; the study stays unrefined, and best exports as without refine."""
    url = _copy(plain, tmp_path)
    best = _fold_costs(url)[0]
    assert main(["refine", "--storage", url, "--top", "2", "--folds", "3", "--timeout", str(best / 2)]) == 0
    out = capsys.readouterr().out
    assert "left of --timeout do not fit the best finalist" in out and f"--timeout {best:.0f} or more" in out
    study = _load(url)
    assert "refine" not in study.user_attrs and not any(k.startswith(refine.UNIT_PREFIX) for k in study.user_attrs)
