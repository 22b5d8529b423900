"""bench.harness: rotation, spreads, the data root and its one-line errors, calibration, child processes, and a
lungsearch study's record read from its storage (trials made up here; no training)."""

from __future__ import annotations

import datetime
import os
import types

import numpy as np
import pytest

from bench import harness
from lungsearch.data import Arrays, SearchData


def test_each_side_runs_first_once_in_as_many_seeds():
    orders = [harness.rotated(["lungsearch", "hyperband", "random"], i) for i in range(3)]
    assert orders == [["lungsearch", "hyperband", "random"], ["hyperband", "random", "lungsearch"],
                      ["random", "lungsearch", "hyperband"]]
    assert harness.rotated(["a", "b"], 3) == ["b", "a"]


def test_spread_of_the_values_that_are_there():
    assert harness.spread([0.9, None, 0.95, 0.91]) == {"median": 0.91, "min": 0.9, "max": 0.95, "n": 3}
    assert harness.spread([None]) is None and harness.spread([]) is None


def test_a_missing_data_root_or_set_is_one_line_saying_where(tmp_path, monkeypatch):
    monkeypatch.setattr(harness, "DATA_ROOT", str(tmp_path / "nowhere"))
    with pytest.raises(SystemExit) as missing:
        harness.data_folder("chest_xray")
    message = str(missing.value)
    assert "\n" not in message and f"the real data sets are not at {tmp_path / 'nowhere'}" in message
    (tmp_path / "data" / "covid19").mkdir(parents=True)
    monkeypatch.setattr(harness, "DATA_ROOT", str(tmp_path / "data"))
    assert harness.data_folder("covid19") == str(tmp_path / "data" / "covid19")
    with pytest.raises(SystemExit, match=r"data set 'chest_xray' is not in .*data \(it holds covid19\)"):
        harness.data_folder("chest_xray")


def test_covid_normal_is_made_of_links_to_covid19(tmp_path, monkeypatch):
    for split in ("train", "test"):
        for cls in ("Covid", "Normal", "Viral"):
            (tmp_path / "data" / "covid19" / split / cls).mkdir(parents=True)
    monkeypatch.setattr(harness, "DATA_ROOT", str(tmp_path / "data"))
    root = harness.data_folder("covid_normal", str(tmp_path / "work"))
    assert sorted(os.listdir(os.path.join(root, "train"))) == ["Covid", "Normal"]
    assert os.path.realpath(os.path.join(root, "test", "Covid")) == str(tmp_path / "data" / "covid19" / "test" / "Covid")


def test_parse_sets_refuses_an_unknown_set_and_a_missing_root(tmp_path, monkeypatch):
    import argparse

    ap = argparse.ArgumentParser(prog="bench.x")
    monkeypatch.setattr(harness, "DATA_ROOT", str(tmp_path))
    assert harness.parse_sets(ap, "covid19, chest_xray", ("chest_xray", "covid19")) == ["covid19", "chest_xray"]
    with pytest.raises(SystemExit):
        harness.parse_sets(ap, "mnist", ("chest_xray", "covid19"))
    monkeypatch.setattr(harness, "DATA_ROOT", str(tmp_path / "nowhere"))
    with pytest.raises(SystemExit):
        harness.parse_sets(ap, "covid19", ("covid19",))


def test_a_train_limit_is_a_folder_of_links_to_a_share_of_each_class(tmp_path):
    from tests.conftest import make_folder

    source = make_folder(tmp_path / "xray", per_class=10)
    assert harness.limited_folder(str(source), None, str(tmp_path / "work")) == str(source)
    assert harness.limited_folder("demo", 6, str(tmp_path / "work")) == "demo"
    root = harness.limited_folder(str(source), 6, str(tmp_path / "work"))
    for cls in ("NORMAL", "PNEUMONIA"):
        names = os.listdir(os.path.join(root, "train", cls))
        assert len(names) == 3 and all(os.path.islink(os.path.join(root, "train", cls, n)) for n in names)
    assert sorted(os.listdir(os.path.join(root, "test"))) == ["NORMAL", "PNEUMONIA"]


def test_calibration_times_the_second_epoch_not_the_cold_first(monkeypatch):
    ticks = iter([0.0, 10.0, 10.0, 12.5])  # epoch 1: 10 s of start-up and work; epoch 2: 2.5 s
    monkeypatch.setattr(harness, "time", types.SimpleNamespace(perf_counter=lambda: next(ticks)))
    x = np.random.default_rng(0).integers(0, 255, (8, 16, 16, 1), dtype=np.uint8)
    data = SearchData(["a", "b"], Arrays(x, np.array([0, 1] * 4)), Arrays(x[:2], np.array([0, 1])), {})
    assert harness.calibrate(data) == 2.5


def test_a_child_process_is_fresh_and_its_error_comes_back():
    assert harness.in_child(os.getpid) != os.getpid()
    with pytest.raises(ValueError, match="invalid literal"):
        harness.in_child(int, "not a number")
    assert 10 < harness.peak_rss_mib() < 1e6  # MiB, not KiB


def _trial(number, state, start, times=(), aucs=(), end=None, value=None, **attrs):
    t0 = datetime.datetime(2026, 12, 6, 12, 0, 0)
    return types.SimpleNamespace(
        number=number, state=types.SimpleNamespace(name=state), value=value, params={"n": number},
        datetime_start=None if start is None else t0 + datetime.timedelta(seconds=start),
        datetime_complete=None if end is None else t0 + datetime.timedelta(seconds=end),
        user_attrs={"history": {"val_auc": list(aucs)}, "epoch_times": list(times), **attrs})


def test_the_record_of_a_study_counts_only_what_ended_within_the_budget():
    trials = [_trial(0, "COMPLETE", 0, (10, 20), (0.8, 0.9), end=21, value=0.9, warm_start="hand"),
              _trial(1, "PRUNED", 22, (10,), (0.7,), end=33),
              _trial(2, "COMPLETE", 34, (10, 20, 30, 80), (0.85, 0.95, 0.96, 0.99), end=115, value=0.99),  # ends past 100 s
              _trial(3, "FAIL", 40, (5,), (float("nan"),), end=46),
              _trial(4, "WAITING", None)]
    study = types.SimpleNamespace(trials=trials, user_attrs={"config": {"sampler": "tpe", "pruner": "median"}})
    out = harness.search_record(study, 100)
    assert out["curve"] == [(10, 0.8), (20, 0.9), (54, 0.95), (64, 0.96)] and out["best"] == 0.96
    assert (out["trials_finished"], out["complete"], out["pruned"]) == (2, 1, 1)
    assert out["pick_trial"] == 0 and out["selected_best"] == 0.9 and out["pick_params"] == {"n": 0}
    assert out["seconds"] == 100 and out["warm_starts"] == ["hand"] and out["tuner"] == "lungsearch tpe+median"
    assert harness.search_record(types.SimpleNamespace(trials=[], user_attrs={}), 100)["curve"] == []
