"""bench.refine and bench.backbones: their tables and correlations come from the record, on records made up here."""

from __future__ import annotations

import pytest

from bench import backbones
from bench import refine as refine_bench


def _export(auc, acc):
    return {"test": {"roc_auc": {"value": auc, "ci95": [auc - 0.02, auc + 0.01]}, "accuracy": {"value": acc, "ci95": [acc - 0.03, acc + 0.03]}}}


def _run(finalists, **paired):
    return {"search_seconds": 900.0, "refine_seconds": 880.5, "trials": 12, "finalists": 5, "finalists_refined": len(finalists),
            "exports": {"top3": _export(0.961, 0.85), "bag": _export(0.972, 0.9)},
            "paired": {k.replace("_", "-"): {"difference": v, "ci95": [v - 0.01, v + 0.01], "p": 0.04} for k, v in paired.items()},
            "finalist_figures": {str(i): f for i, f in enumerate(finalists)}}


def _finalist(val, oof, loss, test):
    return {"val_auc": val, "oof_auc": oof, "oof_log_loss": loss, "test_auc_bagged": test}


def test_spearman_ranks_each_signal_against_the_finalists_test_auc_loss_reversed():
    run = _run([_finalist(0.99, 0.95, 0.30, 0.90), _finalist(0.98, 0.96, 0.20, 0.93), _finalist(0.97, 0.97, 0.10, 0.95)])
    rho = refine_bench.spearman([run])
    assert rho["oof_auc"]["median"] == pytest.approx(1.0) and rho["oof_log_loss"]["median"] == pytest.approx(1.0)
    assert rho["val_auc"]["median"] == pytest.approx(-1.0) and rho["val_auc"]["runs"] == 1
    assert refine_bench.spearman([_run([_finalist(0.9, 0.9, 0.1, 0.9)] * 2)])["oof_auc"]["runs"] == 0  # fewer than 3: no rho
    assert rho["fold_auc_mean"]["runs"] == 0  # finalists recorded without their fold AUCs
    folds = [dict(f, fold_auc=a) for f, a in zip(run["finalist_figures"].values(), ([0.99, 0.97], [0.95, 0.95], [0.90, 0.96]))]
    assert refine_bench.spearman([_run(folds)])["fold_auc_mean"]["median"] == pytest.approx(-1.0)  # means 0.98, 0.95, 0.93
    assert rho["oof_auc_calibrated"]["runs"] == 0  # recorded before it was kept
    calibrated = [dict(f, oof_auc_calibrated=c) for f, c in zip(run["finalist_figures"].values(), (0.97, 0.96, 0.95))]
    assert refine_bench.spearman([_run(calibrated)])["oof_auc_calibrated"]["median"] == pytest.approx(-1.0)
    tied = [dict(f, test_auc_bagged=1.0) for f in run["finalist_figures"].values()]
    assert refine_bench.spearman([_run(tied)])["oof_auc"]["runs"] == 0  # every finalist at test AUC 1.0: no rho, no warning


def test_the_refine_table_prints_the_recorded_figures():
    text = refine_bench.table({"sets": {"chest_xray": {"0": _run([], bag_top3=0.011)}}})
    row = next(line for line in text.splitlines() if line.startswith("| chest_xray"))
    assert "0.961 [0.941, 0.971], 0.850" in row and "0.972 [0.952, 0.982], 0.900" in row
    assert "+0.0110 [+0.0010, +0.0210], p 0.040" in row and "900.0 / 880.5" in row
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells.count("-") == 6  # no select, uncalibrated bag or average export, and so no test against them
    run = _run([], average_bag=-0.002)
    run["exports"]["average"] = _export(0.97, 0.88)
    row = next(line for line in refine_bench.table({"sets": {"covid19": {"1": run}}}).splitlines() if line.startswith("| covid19"))
    assert row.rstrip(" |").endswith("0.970 [0.950, 0.980], 0.880 | -0.0020 [-0.0120, +0.0080], p 0.040")


def test_the_backbones_table_names_the_winner_and_the_confirmation():
    cand = {"oof_auc": 0.99, "oof_auc_ci95": [0.98, 0.995], "oof_log_loss": 0.1, "fold_auc": [0.98, 0.99],
            "feature_seconds_per_1000": 6.8, "fine_tune_seconds_per_1000": 10.1}
    entry = {"candidates": {"lite0@128": cand, "lite0@224": {**cand, "oof_auc": 0.992, "vs_default": {"difference": 0.002, "ci95": [0.0001, 0.003], "p": 0.03}}},
             "winner": "lite0@224", "why": "highest OOF AUC",
             "confirm": {"set": "covid19", "sides": {"lite0@128": {"run_seconds": 200.0, "test_auc": 0.99, "test": {"roc_auc": {"ci95": [0.98, 1.0]}}, "test_accuracy": 0.95}},
                         "paired": {"difference": -0.001, "ci95": [-0.01, 0.008], "p": 0.8}}}
    text = backbones.table(entry)
    assert "+0.0020 [+0.0001, +0.0030], p 0.030" in text and "**lite0@224**" in text
    assert "| lite0@128 | 200.0 | 0.9900 [0.9800, 1.0000] | 0.950 |" in text and "-0.0010 [-0.0100, +0.0080], p 0.800" in text


def test_threshold_confirm_chooses_on_the_out_of_fold_predictions_and_scores_test_once():
    """Each rule's threshold comes from the OOF predictions (training images), never from the test split it is scored on."""
    import numpy as np

    y = np.array([0, 0, 0, 1, 1, 1, 1, 1])  # class 1 the disease (PNEUMONIA)
    p = np.array([0.1, 0.2, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99])
    oof = np.stack([1 - p, p], 1)
    y_test = np.array([0, 0, 1, 1])
    test = np.array([[0.35, 0.65], [0.9, 0.1], [0.32, 0.68], [0.05, 0.95]])
    out = refine_bench.threshold_confirm(y, oof, y_test, test, positive=1)
    assert set(out) == {"youden", "youden-mid", "half", "temperature"}
    assert out["youden"]["threshold"] == pytest.approx(0.7)  # J = 1 from 0.7 up to 0.6's edge; ties keep the higher
    assert out["youden"]["accuracy"] == 0.75 and out["youden"]["specificity"] == 1.0 and out["youden"]["sensitivity"] == 0.5
    assert out["half"]["threshold"] == 0.5 and out["half"]["accuracy"] == 0.75 and out["half"]["sensitivity"] == 1.0
    moved = refine_bench.threshold_confirm(y, oof, y_test, test[::-1], positive=1)  # the test split does not move a threshold
    assert {r: v["threshold"] for r, v in moved.items()} == {r: v["threshold"] for r, v in out.items()}
    flipped = refine_bench.threshold_confirm(1 - y, oof[:, ::-1], 1 - y_test, test[:, ::-1], positive=0)  # the other class order
    assert {r: v["accuracy"] for r, v in flipped.items()} == {r: v["accuracy"] for r, v in out.items()}


def test_again_runs_a_recorded_seed_anew_and_keeps_the_earlier_record_in_it(monkeypatch):
    """After a change of the code it measures, --again reruns a set's seed; the earlier run is not overwritten."""
    from bench import results

    old = dict(_run([], bag_top3=0.011), command="python -m bench.refine --sets chest_xray --seeds 2", date="2026-12-06")
    settings = {"budget": 1800, "refine_share": 0.5, "top": 5, "folds": 5, "epochs": 5}
    saved = {}
    monkeypatch.setattr(results, "load", lambda: {"refine": {**settings, "sets": {"chest_xray": {"2": old, "1": _run([])}}}})
    monkeypatch.setattr(results, "record", lambda key, value: saved.update({key: value}))

    def one_run(name, seed, work, args, entry, save):
        entry.update(_run([], bag_top3=0.02))
        save()

    monkeypatch.setattr(refine_bench, "one_run", one_run)
    refine_bench.main(["--sets", "chest_xray", "--seeds", "2", "--again"])
    run = saved["refine"]["sets"]["chest_xray"]["2"]
    assert run["earlier"] == [old] and run["paired"]["bag-top3"]["difference"] == 0.02
    assert "--again" in run["command"] and saved["refine"]["sets"]["chest_xray"]["1"] == _run([])  # seed 1 untouched
    saved.clear()
    refine_bench.main(["--sets", "chest_xray", "--seeds", "2"])  # without --again: recorded already, nothing run
    assert saved == {}


@pytest.mark.parametrize("top, form", [(5, "run --refine"), (2, "run, then refine")])
def test_a_run_at_run_refines_settings_is_the_users_command_and_splits_its_seconds_at_the_last_trial(tmp_path, monkeypatch, top, form):
    """bench.refine measures `run --refine` itself where it can (its search share stops a late trial); other settings
    take run, then refine with what is left."""
    import argparse

    import optuna

    commands = []

    class Stop(Exception):
        pass

    def lungsearch(*args):
        commands.append(args)
        if args[0] == "best":
            raise Stop
        if args[0] == "run":
            storage = args[args.index("--storage") + 1]
            study = optuna.create_study(storage=storage, study_name="s", direction="maximize", load_if_exists=True)
            study.add_trial(optuna.trial.create_trial(value=0.9, params={}, distributions={}))
        return ""

    monkeypatch.setattr(refine_bench, "lungsearch", lungsearch)
    monkeypatch.setattr(refine_bench, "data_folder", lambda name, work: str(tmp_path / name))
    monkeypatch.setattr(refine_bench, "oof_choice", lambda study, seed=0: None)
    args = argparse.Namespace(budget=1800, refine_share=0.5, top=top, folds=5, epochs=5)
    entry = {}
    with pytest.raises(Stop):
        refine_bench.one_run("chest_xray", 2, str(tmp_path), args, entry, lambda: None)
    assert entry["form"] == form and commands[-1][0] == "best"
    run = commands[0]
    if form == "run --refine":
        assert "--refine" in run and run[run.index("--timeout") + 1] == "1800" and len(commands) == 2
    else:
        assert "--refine" not in run and run[run.index("--timeout") + 1] == "900" and commands[1][0] == "refine"
    assert 0 <= entry["search_seconds"] and entry["search_seconds"] + entry["refine_seconds"] == pytest.approx(entry["total_seconds"], abs=0.2)


def test_each_run_records_its_test_labels_and_exports_probabilities_and_its_paired_tests_are_made_again_from_them(
        tmp_path, monkeypatch):
    """A figure is generated from its record: export_all keeps the test labels, class names and every export's test
    probabilities, and paired_from_record makes the recorded paired tests again from them, exactly; in either class
    order."""
    import functools
    import json
    import os
    import types

    import numpy as np

    from lungsearch.evaluate import compare
    from lungsearch.export import refined

    rng = np.random.default_rng(0)
    y = np.array([0, 1] * 8)

    def two_class(p1):
        p1 = np.clip(np.asarray(p1, dtype=np.float32), 0, 1)
        return np.stack([1 - p1, p1], axis=1)

    made = {rule: two_class(y * w + rng.uniform(0.0, 0.6, y.size)) for rule, w in zip(refine_bench.RULES, (0.5, 0.3, 0.1, 0.2, 0.0))}

    def fake_lungsearch(*argv):
        out = argv[argv.index("--out") + 1]
        rule = next(r for r, flags in refine_bench.FLAGS.items() if list(argv[-len(flags):]) == flags)
        os.makedirs(out, exist_ok=True)
        with open(os.path.join(out, "evaluation.json"), "w") as fh:
            json.dump({"test": {"metrics": {"roc_auc": {"value": 0.9, "ci95": [0.8, 0.95]}}}}, fh)
        with open(os.path.join(out, "model.json"), "w") as fh:
            json.dump({"decision": {"threshold": 0.5}, "trial": 0, "rule": rule}, fh)

    def fake_probs(model_path, folder, study):
        with open(os.path.join(os.path.dirname(model_path), "model.json")) as fh:
            return y, made[json.load(fh)["rule"]], class_names

    monkeypatch.setattr(refine_bench, "lungsearch", fake_lungsearch)
    monkeypatch.setattr(refine_bench, "test_probs", fake_probs)
    monkeypatch.setattr(compare, "paired_bootstrap_auc", functools.partial(compare.paired_bootstrap_auc, n=50))  # 6 pairs, 4 times
    monkeypatch.setattr(refine_bench, "finalist_test_auc", lambda *a: {})
    monkeypatch.setattr(refined, "plan", lambda study, rule, calibration: types.SimpleNamespace(y=y, oof=made["bag"]))
    study = types.SimpleNamespace(user_attrs={"refine": {"results": {"0": {}}}})
    for class_names in (("NORMAL", "PNEUMONIA"), ("Covid", "Normal")):  # the disease second, then first
        entry = {}
        refine_bench.export_all("covid19", 3, str(tmp_path), "folder", "sqlite://", study, entry, lambda: None)
        entry = json.loads(json.dumps(entry))  # as results.json holds it
        assert entry["test"]["class_names"] == list(class_names) and entry["test"]["y"] == y.tolist()
        assert set(entry["test"]["probabilities"]) == set(refine_bench.RULES)
        assert np.array_equal(np.asarray(entry["test"]["probabilities"]["select"], dtype=np.float32), made["select"])
        assert set(entry["paired"]) == {f"{a}-{b}" for a, b in refine_bench.PAIRS}
        assert entry["paired"]["bag-top3"]["difference"] != entry["paired"]["select-top3"]["difference"]
        assert refine_bench.paired_from_record(entry, seed=3) == entry["paired"]
        assert refine_bench.paired_from_record({"paired": {}}, seed=3) == {}  # a run recorded before the record held them
