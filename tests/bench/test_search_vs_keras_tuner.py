"""bench.search_vs_keras_tuner: the order of the sides, the curve figures, the summary over seeds, and that keras-tuner
trains with the same class weights and plateau callbacks as lungsearch (a fake model records its fit; no search)."""

from __future__ import annotations

import time
import types

import numpy as np
import pytest

from bench import search_vs_keras_tuner as kt_bench
from lungsearch.data import Arrays, SearchData


def test_each_side_runs_first_once_in_three_seeds():
    orders = [kt_bench.rotated(["lungsearch", "hyperband", "random"], i) for i in range(3)]
    assert orders == [["lungsearch", "hyperband", "random"], ["hyperband", "random", "lungsearch"],
                      ["random", "lungsearch", "hyperband"]]
    assert kt_bench.rotated(["a", "b"], 3) == ["b", "a"]


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


def test_calibration_times_the_second_epoch_not_the_cold_first(monkeypatch):
    ticks = iter([0.0, 10.0, 10.0, 12.5])  # epoch 1: 10 s of start-up and work; epoch 2: 2.5 s
    monkeypatch.setattr(kt_bench, "time", types.SimpleNamespace(perf_counter=lambda: next(ticks)))
    x = np.random.default_rng(0).integers(0, 255, (8, 16, 16, 1), dtype=np.uint8)
    data = SearchData(["a", "b"], Arrays(x, np.array([0, 1] * 4)), Arrays(x[:2], np.array([0, 1])), {})
    assert kt_bench.calibrate(data) == 2.5


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
    import bench.overhead
    import bench.results
    import bench.vs_hand
    import lungsearch.data

    x = np.zeros((4, 8, 8, 1), dtype=np.uint8)
    data = SearchData(["a", "b"], Arrays(x, np.array([0, 1, 0, 1])), Arrays(x[:2], np.array([0, 1])), {})
    monkeypatch.setattr(bench.results, "RESULTS", str(tmp_path / "results.json"))
    monkeypatch.setattr(bench.vs_hand, "SHARED", str(tmp_path))
    monkeypatch.setattr(bench.overhead, "load", lambda *a, **k: data)
    monkeypatch.setattr(lungsearch.data, "load_test", lambda *a, **k: data.val)
    monkeypatch.setattr(kt_bench, "calibrate", lambda *a, **k: 1.0)
    clock = [0.0]  # each side takes its whole budget on this clock
    fake_time = types.SimpleNamespace(monotonic=lambda: clock[0], perf_counter=time.perf_counter)
    monkeypatch.setattr(kt_bench, "time", fake_time)
    monkeypatch.setattr(bench.results, "time", fake_time)

    def side(kind):
        def run(*args, seed, budget, **kw):
            name = kind if kind == "lungsearch" else args[0]
            calls.append((seed, name))
            clock[0] += budget
            if fail_at is not None and len(calls) == fail_at:
                raise RuntimeError("the machine went away")
            return {"tuner": name, "trials_finished": 3, "best": 0.9, "curve": [[10.0, 0.9]], "_model": None}
        return run

    monkeypatch.setattr(kt_bench, "run_lungsearch", side("lungsearch"))
    monkeypatch.setattr(kt_bench, "run_keras_tuner", side("keras-tuner"))
    monkeypatch.setattr(kt_bench, "in_child", lambda fn, *a, **k: fn(*a, **k))  # the made-up sides live in this process


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


def test_a_side_runs_in_a_fresh_process_and_its_error_comes_back():
    import os

    assert kt_bench.in_child(os.getpid) != os.getpid()
    with pytest.raises(ValueError, match="invalid literal"):
        kt_bench.in_child(int, "not a number")


def test_a_recycled_lungsearch_side_goes_on_with_its_study_and_clock(tmp_path):
    """Three processes' worth of one side, run here: each of the first two stops after one trial (any memory is past 0
    MiB), the third finds the budget spent; the warm starts are enqueued once and the pick comes from the whole study."""
    import optuna

    import spaces

    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (8, 64, 64, 1), dtype=np.uint8)
    y = np.array([0, 1] * 4)
    data = SearchData(["a", "b"], Arrays(x, y), Arrays(x[:4], y[:4]), {})
    space, common = spaces.get_space("cnn"), dict(budget=600, epochs=1, seed=0, folder=str(tmp_path), keep=True)
    first = kt_bench.run_lungsearch(space, data, stop_above_mib=0, **common)
    assert first["recycled"] and len(first["clock"]["points"]) == 1 and len(first["clock"]["warm_starts"]) == 2
    second = kt_bench.run_lungsearch(space, data, stop_above_mib=0, clock=first["clock"], **common)
    points = second["clock"]["points"]
    assert len(points) == 2 and points[0] == first["clock"]["points"][0] and points[1][0] > points[0][0]
    spent = dict(second["clock"], start=second["clock"]["start"] - 600)  # the budget runs out between processes
    last = kt_bench.run_lungsearch(space, data, clock=spent, **common)
    study = optuna.load_study(study_name="lungsearch", storage=f"sqlite:///{tmp_path}/lungsearch-median.db")
    names = [t.user_attrs.get("warm_start") for t in study.trials]
    assert len(study.trials) == 2 and names[0] and names[1] and names[0] != names[1]  # the two warm starts, once each
    assert last["trials_finished"] == 2 and last["warm_starts"] == first["clock"]["warm_starts"]
    assert last["pick_trial"] in (0, 1) and last["_model"] is not None


def test_run_recycled_passes_the_clock_on_until_a_process_ends_the_side(monkeypatch):
    seen = []

    def search(*args, clock, stop_above_mib, **kwargs):
        seen.append((clock, stop_above_mib))
        if len(seen) < 3:
            return {"recycled": True, "clock": {"start": 1.0, "points": [(len(seen), 0.9)], "warm_starts": []}}
        return {"tuner": "lungsearch", "trials_finished": 3, "_model": None}

    monkeypatch.setattr(kt_bench, "run_lungsearch", search)
    monkeypatch.setattr(kt_bench, "in_child", lambda fn, *a, **k: fn(*a, **k))
    s = kt_bench.run_recycled(None, None, None, budget=60, epochs=1, seed=0, above_mib=100)
    assert [c and c["points"] for c, _ in seen] == [None, [(1, 0.9)], [(2, 0.9)]] and {m for _, m in seen} == {100}
    assert s["processes"] == 3 and s["pick"] is None and s["trials_finished"] == 3 and s["peak_rss_mib"] > 10
