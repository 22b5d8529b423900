"""bench.accuracy's hand CNN figures: read from bench.vs_hand's stored run, named, never typed in (no training)."""

from __future__ import annotations

import copy

from bench import accuracy

STORED = {"vs_hand": {"date": "2026-12-02T03:11:55+00:00", "command": "python -m bench.vs_hand", "reduced": False,
                      "sets": {"chest_xray": {"hand": {"seeds": [{"seed": 0}, {"seed": 1}, {"seed": 2}], "auc_median": 0.94,
                                                       "auc_best": 0.954, "auc_min": 0.92, "accuracy_median": 0.795}},
                               "covid19": {"hand": {"seeds": [{"seed": 0}], "auc_median": 0.916, "auc_best": 0.939,
                                                    "accuracy_median": 0.7}}}},
          "vs_hand_reduced": {"sets": {"chest_xray": {"hand": {"auc_median": 0.5, "auc_best": 0.5, "accuracy_median": 0.5}}}}}


def test_the_hand_side_named_with_its_own_date_and_command():
    stored = copy.deepcopy(STORED)
    stored["vs_hand"]["sets"]["chest_xray"]["hand"].update(date="2026-12-01T20:00:00+00:00",
                                                           command="python -m bench.vs_hand --sides hand")
    hand = accuracy.hand_cnn(stored, "../shared/data/chest_xray/")
    assert hand == {"measured": True, "source": "bench.vs_hand, 2026-12-01T20:00:00+00:00, python -m bench.vs_hand --sides hand",
                    "seeds": 3, "auc_median": 0.94, "auc_best": 0.954, "accuracy_median": 0.795}


def test_an_undated_hand_side_is_not_given_the_key_s_last_command():
    # the key's stamp is its last run's, which may have run other sides on other data sets
    hand = accuracy.hand_cnn(STORED, "../shared/data/chest_xray/")
    assert hand["source"] == "bench.vs_hand (key vs_hand), the hand side of a run on or before 2026-12-02T03:11:55+00:00"
    assert "python -m" not in hand["source"]


def test_not_measured_without_a_stored_run_or_off_chest_xray():
    for stored, data in [({}, "/data/chest_xray"), ({"vs_hand_reduced": STORED["vs_hand_reduced"]}, "chest_xray"),
                         ({"vs_hand": {"sets": {"chest_xray": {"quick": {}}}}}, "chest_xray"), (STORED, "../shared/data/covid_normal")]:
        hand = accuracy.hand_cnn(stored, data)
        assert hand["measured"] is False and hand["why"] and not {"auc_median", "accuracy_median"} & set(hand)


def test_no_typed_hand_figure_left():
    assert not hasattr(accuracy, "HAND_CNN")
    assert "Kermany et al., Cell 2018" in accuracy.KERMANY_SOURCE


def test_each_variant_keeps_its_own_key():
    assert accuracy.variant_key(None, None, "../shared/data/chest_xray") == "accuracy_cpu"
    assert accuracy.variant_key("cnn", None) == "accuracy_cpu"
    assert accuracy.variant_key("efficientnet-lite0", None, "/x/chest_xray/") == "accuracy_cpu@efficientnet-lite0"
    assert accuracy.variant_key("efficientnet-lite0", 160, "../shared/data/covid19") == "accuracy_cpu@efficientnet-lite0@160px@covid19"


def test_hand_figures_of_the_same_data_set():
    assert accuracy.hand_cnn(STORED, "../shared/data/covid19")["auc_median"] == 0.916


def test_a_search_too_short_for_the_ensemble_still_records_its_pick(tmp_path, monkeypatch):
    import json

    import optuna

    from bench import results

    monkeypatch.setattr(results, "RESULTS", str(tmp_path / "results.json"))
    metric = {"value": 0.8, "ci95": [0.7, 0.9]}

    def fake_lungsearch(*args):  # `run` finishes 2 trials; `best --ensemble 3` refuses, as it does
        if args[0] == "run":
            storage = args[args.index("--storage") + 1]
            study = optuna.create_study(storage=storage, study_name="cnn-chest_xray", direction="maximize")
            for value in (0.9, 0.8):
                study.enqueue_trial({})
                study.optimize(lambda t: value, n_trials=1)
            return
        if args[args.index("--ensemble") + 1] == "3":
            raise accuracy.LungsearchFailed(args, 2, "lungsearch: error: --ensemble 3 needs 3 completed trials; "
                                                     "study 'cnn-chest_xray' has 2\n\n")
        with open(f"{args[args.index('--out') + 1]}/evaluation.json", "w") as fh:
            json.dump({"trial": 0, "test": {"metrics": {"accuracy": metric, "roc_auc": metric}}}, fh)

    monkeypatch.setattr(accuracy, "lungsearch", fake_lungsearch)
    figures = accuracy.main(["--data", str(tmp_path / "chest_xray"), "--image-size", "128", "--ensemble", "3"])
    assert figures["pick"] == 0 and figures["test_auc"] == 0.8 and figures["trials_completed"] == 2
    assert figures["ensemble"] == {"k": 3, "made": False,
                                   "why": "lungsearch: error: --ensemble 3 needs 3 completed trials; study 'cnn-chest_xray' has 2"}
    assert results.load()["accuracy_cpu@128px"]["test_auc"] == 0.8
