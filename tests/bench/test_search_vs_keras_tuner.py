"""bench.search_vs_keras_tuner: the curve figures, the summary over seeds, that keras-tuner trains with the same class
weights and plateau callbacks as lungsearch (a fake model records its fit), and one tiny lungsearch side through
`lungsearch run`, read back from its study."""

from __future__ import annotations

import pickle
import time
import types

import numpy as np
import optuna
import pytest

from bench import search_vs_keras_tuner as kt_bench
from lungsearch.data import Arrays, SearchData


def test_mean_best_so_far_is_the_area_under_the_curve_over_the_budget():
    # 0.5 for 10 s, 0.9 for 40 s, 0.95 for the last 50 s of 100
    assert kt_bench.mean_best_so_far([(10, 0.9), (50, 0.95)], 100) == pytest.approx(0.885)
    assert kt_bench.mean_best_so_far([], 100) == 0.5
    assert kt_bench.mean_best_so_far([(10, 0.9)], 0) is None


def test_time_to_each_target_or_none():
    assert kt_bench.times_to([(10, 0.9), (50, 0.995)], (0.9, 0.99, 0.999)) == {"0.9": 10, "0.99": 50, "0.999": None}
    assert kt_bench.targets_for("chest_xray") == (0.99, 0.995, 0.997)
    assert kt_bench.targets_for("covid19") == kt_bench.OTHER_TARGETS


def _side(test_auc, best, curve, accuracy=0.8):
    return {"best": best, "curve": curve, "trials_finished": 5, "mean_best_so_far": 0.9,
            "time_to": kt_bench.times_to(curve, (0.95, 0.99)),
            "pick": {"test_auc": test_auc, "test_accuracy": accuracy}}


def test_summary_over_seeds_medians_wins_and_time_ratio():
    seeds = [{"seed": s, "sets": {"covid19": {"sides": {
        "lungsearch": _side(ls, 0.99, [(10, 0.95), (40, 0.99)]),
        "hyperband": _side(hb, 0.99, [(20, 0.95), (80, 0.99)])}}}} for s, (ls, hb) in enumerate([(0.93, 0.91), (0.90, 0.92), (0.95, 0.94)])]
    out = kt_bench.summarise_set("covid19", seeds)
    assert out["sides"]["lungsearch"]["test_auc"] == {"median": 0.93, "min": 0.9, "max": 0.95, "n": 3}
    assert out["sides"]["hyperband"]["test_auc"]["median"] == 0.92
    assert out["sides"]["lungsearch"]["best_test_auc_of_sides"] == 2 and out["sides"]["hyperband"]["best_test_auc_of_sides"] == 1
    assert out["time_ratios"] == [0.5, 0.5, 0.5] and out["time_ratio"]["median"] == 0.5
    assert out["sides"]["hyperband"]["time_to"]["0.99"] == {"reached": 3, "seconds": {"median": 80, "min": 80, "max": 80, "n": 3}}
    assert out["goal_met"] is True


def test_summary_of_a_side_without_a_pick_and_no_goal_without_a_peer():
    seeds = [{"seed": 0, "sets": {"covid19": {"sides": {"lungsearch": {**_side(None, None, []), "pick": None}}}}}]
    out = kt_bench.summarise_set("covid19", seeds)
    assert out["sides"]["lungsearch"]["test_auc"] is None and "goal_met" not in out


class _FakeModel:
    def fit(self, *args, **kwargs):
        self.kwargs = kwargs
        return "history"


def test_keras_tuner_trains_with_lungsearchs_class_weights_and_plateau_callbacks():
    import keras
    import keras_tuner as kt

    import spaces
    from lungsearch import train

    x = np.zeros((8, 64, 64, 1), dtype=np.uint8)
    y = np.array([0, 1, 1, 1, 1, 1, 0, 1])
    data = SearchData(["NORMAL", "PNEUMONIA"], Arrays(x, y), Arrays(x[:4], y[:4]), {})
    model = kt_bench.hypermodel(spaces.get_space("cnn"), data, monitor="val_auc")
    hp = kt.HyperParameters()
    fake, measure, checkpoint = _FakeModel(), keras.callbacks.Callback(), keras.callbacks.Callback()
    assert model.fit(hp, fake, x, y, epochs=3, callbacks=[measure, checkpoint]) == "history"
    kwargs = fake.kwargs
    assert kwargs["class_weight"] == train.class_weights(y, 2) and kwargs["class_weight"][0] > kwargs["class_weight"][1]
    kinds = [type(c).__mro__[1] for c in kwargs["callbacks"]]
    # measure first (it writes val_auc into the logs), then the plateau callbacks, then keras-tuner's own
    assert kwargs["callbacks"][0] is measure and kwargs["callbacks"][-1] is checkpoint
    assert kinds[1:3] == [keras.callbacks.ReduceLROnPlateau, keras.callbacks.EarlyStopping]
    assert kwargs["callbacks"][2].monitor == "val_auc" and kwargs["callbacks"][2].restore_best_weights
    assert kwargs["batch_size"] in (16, 32, 64, 128) and kwargs["epochs"] == 3


def _fake_bench(monkeypatch, tmp_path, calls: list, fail_at: int | None = None):
    """main() with no data and no training: each side a made-up result; call ``fail_at`` raises, as a run cut short."""
    import bench.harness
    import bench.results
    import lungsearch.data

    x = np.zeros((4, 8, 8, 1), dtype=np.uint8)
    data = SearchData(["a", "b"], Arrays(x, np.array([0, 1, 0, 1])), Arrays(x[:2], np.array([0, 1])), {})
    monkeypatch.setattr(bench.results, "RESULTS", str(tmp_path / "results.json"))
    monkeypatch.setattr(bench.harness, "DATA_ROOT", str(tmp_path))
    monkeypatch.setattr(kt_bench, "data_folder", lambda name: str(tmp_path))
    monkeypatch.setattr(kt_bench, "load_arrays", lambda *a, **k: data)
    monkeypatch.setattr(lungsearch.data, "load_test", lambda *a, **k: data.val)
    monkeypatch.setattr(kt_bench, "calibrate", lambda *a, **k: 1.0)
    clock = [0.0]  # each side takes its whole budget on this clock
    fake_time = types.SimpleNamespace(monotonic=lambda: clock[0], perf_counter=time.perf_counter)
    monkeypatch.setattr(kt_bench, "time", fake_time)
    monkeypatch.setattr(bench.results, "time", fake_time)

    def side(name, budget, seed):
        calls.append((seed, name))
        clock[0] += budget
        if fail_at is not None and len(calls) == fail_at:
            raise RuntimeError("the machine went away")
        return {"tuner": name, "trials_finished": 3, "best": 0.9, "curve": [[10.0, 0.9]], "pick_trial": None}

    monkeypatch.setattr(kt_bench, "run_search", lambda source, *, budget, seed, **kw: side("lungsearch", budget, seed))
    monkeypatch.setattr(kt_bench, "search_record", lambda record, budget: record)
    monkeypatch.setattr(kt_bench, "feature_cache_use", lambda record: {})
    monkeypatch.setattr(kt_bench, "kept_model", lambda study, number: None)
    monkeypatch.setattr(kt_bench, "run_keras_tuner", lambda kind, *a, budget, seed, **kw: side(kind, budget, seed))
    # the made-up sides live in this process, given what a child process would be given: their arguments pickled
    monkeypatch.setattr(kt_bench, "in_child", lambda fn, *a, **k: fn(*pickle.loads(pickle.dumps(a)), **pickle.loads(pickle.dumps(k))))


FLAGS = ["--sets", "covid19", "--seeds", "2", "--tuners", "lungsearch,hyperband"]


def test_resume_keeps_the_finished_units_and_reruns_a_broken_one_whole(tmp_path, monkeypatch):
    import json

    calls: list = []
    _fake_bench(monkeypatch, tmp_path, calls, fail_at=4)  # seed 0 whole, seed 1 one side, then its second fails
    with pytest.raises(RuntimeError):
        kt_bench.main(FLAGS)
    stored = json.loads((tmp_path / "results.json").read_text())["search_vs_keras_tuner_reduced"]
    assert [e["seed"] for e in stored["seeds"]] == [0, 1] and not stored["all_run"]
    assert list(stored["seeds"][1]["sets"]["covid19"]["sides"]) == ["hyperband"]  # the side it finished
    assert 10 < stored["seeds"][1]["sets"]["covid19"]["sides"]["hyperband"]["peak_rss_mib"] < 1e6  # MiB, not KiB
    first_date = stored["seeds"][0]["sets"]["covid19"]["date"]

    calls.clear()
    _fake_bench(monkeypatch, tmp_path, calls)
    figures = kt_bench.main(FLAGS + ["--resume"])
    assert calls == [(1, "hyperband"), (1, "lungsearch")]  # seed 1 again, whole, in its rotated order; seed 0 kept
    assert figures["all_run"] and [e["seed"] for e in figures["seeds"]] == [0, 1]
    assert figures["seeds"][0]["sets"]["covid19"]["date"] == first_date
    assert figures["sets"]["covid19"]["sides"]["lungsearch"]["seeds"] == 2

    calls.clear()
    assert kt_bench.main(FLAGS + ["--resume"])["all_run"] and calls == []  # nothing left to run
    with pytest.raises(SystemExit, match=r"has budget_seconds 1800(\.0)?, this run 600\.0"):
        kt_bench.main(FLAGS + ["--resume", "--budget", "600"])


def test_hours_stops_before_a_unit_that_would_not_fit(tmp_path, monkeypatch, capsys):
    calls: list = []
    _fake_bench(monkeypatch, tmp_path, calls)
    figures = kt_bench.main(FLAGS + ["--hours", "1.5"])  # a unit is 2 sides of 30 minutes (and 2 minutes each): one fits
    assert calls == [(0, "lungsearch"), (0, "hyperband")] and not figures["all_run"]
    assert [e["seed"] for e in figures["seeds"]] == [0]
    assert "stopped before seed 1 covid19" in capsys.readouterr().out


def test_the_lungsearch_side_is_lungsearch_run_read_back_from_its_study(tmp_path):
    """A tiny lungsearch side end to end: the executable searches for a few seconds, the curve and the pick come from
    the study's storage (each epoch timed by the objective), and the pick's kept model is scored on test."""
    from tests.conftest import make_folder

    from bench.harness import load_arrays
    from lungsearch.data import load_test

    folder = str(make_folder(tmp_path / "xray", per_class=16, size=32))
    data = load_arrays(folder, 32, None, 0)
    test = load_test(folder, image_size=32, color_mode="grayscale", class_names=tuple(data.class_names), seed=0)
    # the two warm starts, inside a budget no loaded machine's start-up eats (run's --timeout counts from its start)
    s = kt_bench.run_side("lungsearch", "cnn", data, test, budget=600, epochs=1, seed=0, source=folder,
                          image_size=32, trials=2)
    assert s["tuner"] == "lungsearch tpe+median" and len(s["warm_starts"]) == 2 and s["trials_finished"] == 2
    assert s["curve"] and all(0 < t <= 600 for t, _ in s["curve"]) and s["best"] == s["curve"][-1][1]
    assert s["pick_trial"] is not None and 0 <= s["pick"]["test_auc"] <= 1 and s["peak_rss_mib"] > 10


# --------------------------------------------------------------------------- a transfer space (--space)

FINE_TUNE = {"trainable_blocks": 0, "head_batch_norm": False, "head_dropout": 0.0, "head_units": 32, "optimizer": "adam",
             "learning_rate": 1e-3, "fine_tune": True, "fine_tune_lr_factor": 0.1, "batch_size": 8}


def _fine_tune_hp():
    import keras_tuner as kt

    hp = kt.HyperParameters()
    for name, value in FINE_TUNE.items():
        hp.Fixed(name, value)
    return hp


def _tiny_transfer_space():
    """The shared transfer space (spaces.transfer: its parameters, head, freezing and fine-tune phase) on a two-block
    backbone of a few hundred weights, so a test trains both phases in seconds."""
    from spaces import transfer
    from spaces.registry import Space

    def load(shape, weights, *, cache_dir=None):
        import keras

        pixels = keras.Input(shape)
        x = keras.layers.Conv2D(4, 3, name="block1a_conv")(pixels)
        x = keras.layers.BatchNormalization(name="block1a_bn")(x)
        x = keras.layers.Conv2D(4, 3, name="block2a_conv")(x)
        return keras.Model(pixels, x, name="tiny_backbone"), "pretrained (a test's)", None

    backbone = transfer.Backbone("tiny", "Tiny", r"^block(\d)[a-z]_", "lite", load=load)

    def build(trial, *, input_shape, num_classes, **facts):
        return transfer.build_transfer(backbone, trial, input_shape=input_shape, num_classes=num_classes, **facts)

    return Space(name="tiny", description="", build=build, fit_options=transfer.fit_options)


def _tiny_data(n=16, side=32):
    rng = np.random.default_rng(0)
    y = np.array([0, 1] * (n // 2))
    x = np.clip(rng.normal(90, 20, (n, side, side, 1)) + 80 * y[:, None, None, None], 0, 255).astype(np.uint8)
    return SearchData(["NORMAL", "PNEUMONIA"], Arrays(x, y), Arrays(x[:8], y[:8]), {})


def test_keras_tuner_trains_a_fine_tuning_trial_in_two_phases_as_lungsearch_does():
    """Head on the frozen backbone up to the split, then every backbone layer but batch norm trainable at the second
    phase's rate (learning_rate * fine_tune_lr_factor), in one fit as keras-tuner calls it."""
    import keras

    data = _tiny_data()
    model_of = kt_bench.hypermodel(_tiny_transfer_space(), data, monitor="val_auc", epochs=4)
    hp = _fine_tune_hp()
    model = model_of.build(hp)
    backbone = model.get_layer("tiny_backbone")
    convs = [layer for layer in backbone.layers if isinstance(layer, keras.layers.Conv2D)]
    seen = []

    class Watch(keras.callbacks.Callback):  # where keras-tuner's measuring callback sits: first
        def on_epoch_begin(self, epoch, logs=None):
            seen.append((epoch, all(c.trainable for c in convs), round(float(self.model.optimizer.learning_rate), 8)))

    history = model_of.fit(hp, model, data.train.x, data.train.y, epochs=4, callbacks=[Watch()], verbose=0)
    assert seen == [(0, False, 1e-3), (1, False, 1e-3), (2, True, 1e-4), (3, True, 1e-4)]
    assert float(model.optimizer.learning_rate) == pytest.approx(FINE_TUNE["learning_rate"] * FINE_TUNE["fine_tune_lr_factor"])
    assert not backbone.get_layer("block1a_bn").trainable  # batch norm stays as the space set it
    assert history.epoch == [0, 1, 2, 3] and len(history.history["loss"]) == 4  # one history: keras-tuner scores its best epoch


class _Fits:
    """A model that records each fit's (initial_epoch, epochs) and trains nothing."""

    def __init__(self):
        self.calls = []

    def fit(self, *args, epochs, initial_epoch=0, **kwargs):
        self.calls.append((initial_epoch, epochs))
        history = types.SimpleNamespace(history={"loss": [0.0] * (epochs - initial_epoch)}, epoch=list(range(initial_epoch, epochs)))
        return history


@pytest.mark.parametrize("epochs", [2, 3, 4, 5, 10])
def test_train_fit_and_the_keras_tuner_hypermodel_split_the_epochs_alike(monkeypatch, epochs):
    from lungsearch import train
    from spaces import transfer

    unfrozen = []
    monkeypatch.setattr(train, "unfreeze_backbones", lambda model, rate: unfrozen.append((model, rate)))
    data = _tiny_data()
    ours, theirs = _Fits(), _Fits()
    options = transfer.fit_options(optuna.trial.FixedTrial(FINE_TUNE))
    train.fit(ours, data, epochs=epochs, **options)
    kt_bench.hypermodel(_tiny_transfer_space(), data, monitor="val_auc", epochs=epochs).fit(
        _fine_tune_hp(), theirs, data.train.x, data.train.y, epochs=epochs, callbacks=[None])
    split = train.phase_split(epochs, options["second_phase"])
    assert ours.calls == theirs.calls == [(0, split), (split, epochs)]
    assert [(m, pytest.approx(r)) for m, r in unfrozen] == [(ours, 1e-4), (theirs, 1e-4)]


def test_hyperbands_rounds_unfreeze_at_the_caps_split():
    """Hyperband trains a trial in rounds, rebuilding it frozen each time: a round before the split trains the first
    phase only, a round across it both, one after it the second only: the epochs of a whole run, in pieces."""
    from lungsearch import train

    model_of = kt_bench.hypermodel(_tiny_transfer_space(), _tiny_data(), monitor="val_auc", epochs=10)
    rounds = {}
    for initial, last in ((0, 2), (2, 7), (7, 10)):
        model = rounds[(initial, last)] = _Fits()
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(train, "unfreeze_backbones", lambda m, rate: m.calls.append("unfreeze"))
            model_of.fit(_fine_tune_hp(), model, None, None, epochs=last, initial_epoch=initial, callbacks=[None])
    assert [m.calls for m in rounds.values()] == [[(0, 2)], [(2, 5), "unfreeze", (5, 7)], ["unfreeze", (7, 10)]]


def test_space_flag_picks_the_space_and_its_image_size_and_an_unknown_one_is_one_line(tmp_path, monkeypatch, capsys):
    import json

    calls: list = []
    _fake_bench(monkeypatch, tmp_path, calls)
    probs = np.array([[0.8, 0.2], [0.3, 0.7]])
    exported = {"test_auc": 1.0, "test_accuracy": 1.0, "members": [0, 1, 2]}
    seen = {}

    def search(source, *, budget, seed, space, color, image_size, **kw):
        seen.update(space=space, color=color, image_size=image_size)
        return {"tuner": "lungsearch", "trials_finished": 3, "best": 0.9, "curve": [[10.0, 0.9]], "pick_trial": 0}

    class Model:
        def predict(self, x, **kw):
            return probs[::-1]

    monkeypatch.setattr(kt_bench, "run_search", search)
    monkeypatch.setattr(kt_bench, "exported_pick", lambda storage, study, source, test, out: (exported, probs))
    monkeypatch.setattr(kt_bench, "run_keras_tuner", lambda kind, *a, budget, seed, **kw: {
        "tuner": kind, "trials_finished": 3, "best": 0.9, "curve": [[10.0, 0.9]], "pick_trial": "0", "_model": Model()})
    monkeypatch.setattr(kt_bench, "score", lambda model, data, test, p_test=None: {"test_auc": 0.0, "test_accuracy": 0.0})
    figures = kt_bench.main(["--space", "efficientnet-lite0", "--sets", "covid19", "--seeds", "1"])
    assert seen == {"space": "efficientnet-lite0", "color": "grayscale", "image_size": 128}  # run's own for the space
    stored = json.loads((tmp_path / "results.json").read_text())
    assert set(stored) == {"search_vs_keras_tuner_efficientnet-lite0_reduced"}  # cnn's key untouched
    assert figures["space"] == "efficientnet-lite0" and figures["image_size"] == 128
    unit = figures["seeds"][0]["sets"]["covid19"]
    assert unit["sides"]["lungsearch"]["pick"] == exported
    for side in ("lungsearch", "hyperband", "random"):
        assert {"command", "date", "seed", "data"} <= set(unit["sides"][side]) and unit["sides"][side]["data"] == "covid19"
        assert "_test_probs" not in unit["sides"][side]
    assert set(unit["paired"]) == {"lungsearch-hyperband", "lungsearch-random"}
    assert unit["paired"]["lungsearch-random"]["difference"] == 1.0 and unit["paired"]["lungsearch-random"]["method"] == "paired bootstrap"
    assert figures["sets"]["covid19"]["paired"]["lungsearch-hyperband"]["seeds"] == 1

    capsys.readouterr()
    with pytest.raises(SystemExit) as stop:
        kt_bench.main(["--space", "resnet"])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and err.count("\n") == 1 and "unknown space 'resnet'" in err and "efficientnet-lite0" in err


def test_refine_flag_runs_run_refine_and_records_under_its_own_key(tmp_path, monkeypatch, capsys):
    """--refine: lungsearch's side is `run --refine` (refine's refits inside the side's budget) scored by best's
    default export after it; its record goes under its own key, so the form without it (and its --resume) is
    untouched, and the cnn space (scored by its kept model, not an export) is refused in one line."""
    import json

    calls: list = []
    _fake_bench(monkeypatch, tmp_path, calls)
    (tmp_path / "results.json").write_text(json.dumps({"search_vs_keras_tuner_efficientnet-lite0": {"seeds": []}}))
    probs = np.array([[0.8, 0.2], [0.3, 0.7]])
    seen = {}
    study = types.SimpleNamespace(user_attrs={"refine": {"finalists": [3, 1, 7], "results": {"3": {}, "1": {}}}})

    def search(source, *, budget, seed, refine=False, **kw):
        seen["refine"] = refine
        return study

    monkeypatch.setattr(kt_bench, "run_search", search)
    monkeypatch.setattr(kt_bench, "search_record", lambda s, budget: {
        "tuner": "lungsearch", "trials_finished": 3, "best": 0.9, "curve": [[10.0, 0.9]], "pick_trial": 3})
    monkeypatch.setattr(kt_bench, "exported_pick", lambda storage, s, source, test, out: (
        {"test_auc": 1.0, "members": [3], "refined": "bag"}, probs))
    monkeypatch.setattr(kt_bench, "run_keras_tuner", lambda kind, *a, budget, seed, **kw: {
        "tuner": kind, "trials_finished": 3, "best": 0.9, "curve": [[10.0, 0.9]], "pick_trial": "0", "_model": None})
    figures = kt_bench.main(["--space", "efficientnet-lite0", "--refine", "--sets", "covid19", "--seeds", "1"])
    assert seen == {"refine": True}
    stored = json.loads((tmp_path / "results.json").read_text())
    assert set(stored) == {"search_vs_keras_tuner_efficientnet-lite0", "search_vs_keras_tuner_efficientnet-lite0_refine_reduced"}
    assert stored["search_vs_keras_tuner_efficientnet-lite0"] == {"seeds": []}  # the run form's record untouched
    assert figures["lungsearch_form"] == "run --refine"
    ours = figures["seeds"][0]["sets"]["covid19"]["sides"]["lungsearch"]
    assert ours["form"] == "run --refine" and ours["refine"] == {"finalists": [3, 1, 7], "refitted": [1, 3]}
    assert ours["pick"]["refined"] == "bag" and ours["run_seconds"] >= 0

    capsys.readouterr()
    with pytest.raises(SystemExit) as stop:
        kt_bench.main(["--refine", "--sets", "covid19"])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and err.count("\n") == 1 and "--refine" in err and "efficientnet-lite0" in err


def test_each_unit_records_its_test_labels_and_picks_probabilities_and_its_paired_tests_are_made_again_from_them(
        tmp_path, monkeypatch):
    """A figure is generated from its record: each (seed, set) keeps the test labels, class names and every pick's
    test probabilities, and paired_from_record makes the recorded paired tests again from them, exactly."""
    import json

    import lungsearch.data
    import lungsearch.train

    calls: list = []
    _fake_bench(monkeypatch, tmp_path, calls)
    y = np.array([0, 1] * 6)
    monkeypatch.setattr(lungsearch.data, "load_test", lambda *a, **k: Arrays(np.zeros((12, 8, 8, 1), dtype=np.uint8), y))

    def two_class(p1):
        p1 = np.asarray(p1, dtype=np.float32)
        return np.stack([1 - p1, p1], axis=1)

    rng = np.random.default_rng(0)
    ours = two_class(np.clip(y * 0.5 + rng.uniform(0.0, 0.6, 12), 0, 1))  # mostly right
    theirs = {"hyperband": two_class(np.clip(y * 0.2 + rng.uniform(0.0, 0.6, 12), 0, 1)),  # less so
              "random": two_class(rng.uniform(0.0, 1.0, 12))}  # chance
    study = types.SimpleNamespace(user_attrs={})
    monkeypatch.setattr(kt_bench, "run_search", lambda source, *, budget, seed, **kw: study)
    monkeypatch.setattr(kt_bench, "search_record", lambda s, budget: {
        "tuner": "lungsearch", "trials_finished": 3, "best": 0.9, "curve": [[10.0, 0.9]], "pick_trial": 3})
    monkeypatch.setattr(kt_bench, "exported_pick", lambda storage, s, source, test, out: ({"test_auc": 1.0}, ours))
    monkeypatch.setattr(kt_bench, "run_keras_tuner", lambda kind, *a, budget, seed, **kw: {
        "tuner": kind, "trials_finished": 3, "best": 0.9, "curve": [[10.0, 0.9]], "pick_trial": "0", "_model": kind})
    monkeypatch.setattr(lungsearch.train, "predict_proba", lambda model, test: theirs[model])
    monkeypatch.setattr(kt_bench, "score", lambda model, data, test, p_test=None: {"test_auc": 0.5})
    kt_bench.main(["--space", "efficientnet-lite0", "--refine", "--sets", "covid19", "--seeds", "1", "--first-seed", "3"])

    stored = json.loads((tmp_path / "results.json").read_text())["search_vs_keras_tuner_efficientnet-lite0_refine_reduced"]
    unit = stored["seeds"][0]["sets"]["covid19"]
    assert unit["test"]["class_names"] == ["a", "b"] and unit["test"]["y"] == y.tolist()
    assert set(unit["test"]["probabilities"]) == {"lungsearch", "hyperband", "random"}
    assert np.array_equal(np.asarray(unit["test"]["probabilities"]["hyperband"], dtype=np.float32), theirs["hyperband"])
    assert set(unit["paired"]) == {"lungsearch-hyperband", "lungsearch-random"}
    assert unit["paired"]["lungsearch-random"]["difference"] != unit["paired"]["lungsearch-hyperband"]["difference"]
    assert kt_bench.paired_from_record(unit, seed=3) == unit["paired"]
    assert kt_bench.paired_from_record({"paired": {}}, seed=3) == {}  # a unit recorded before the record held them
