"""The pruning benchmark's figures over seeds, from side results made up here (no training)."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from bench import pruning
from lungsearch.data import Arrays, SearchData


def _args(**over):
    base = dict(data="demo", image_size=64, budget=1800.0, epochs=10, train_limit=None, pruners="none,median,sha", seeds=3,
                first_seed=0, no_record=True, reduced=False)
    return argparse.Namespace(**{**base, **over})


def _data():
    x = np.zeros((4, 8, 8, 1), dtype=np.float32)
    return SearchData(["a", "b"], Arrays(x, np.array([0, 1, 0, 1])), Arrays(x[:2], np.array([0, 1])), {})


def _side(per_hour: float, best: float | None) -> dict:
    return {"trials_per_hour": per_hour, "best": best, "trials_finished": int(per_hour / 2)}


def _seed(seed: int, runs: dict) -> dict:
    return {"seed": seed, "order": list(runs), "calibration_seconds": {p: 1.0 for p in runs}, "runs": runs}


def test_median_and_spread_of_the_default_against_none_over_seeds():
    seeds = [_seed(0, {"none": _side(10.0, 0.990), "median": _side(35.0, 0.987)}),
             _seed(1, {"median": _side(20.0, 0.991), "none": _side(10.0, 0.990)}),
             _seed(2, {"none": _side(10.0, 0.990), "median": _side(40.0, 0.980)})]
    figures = pruning.summarise(_args(), _data(), seeds)
    assert figures["default_pruner"] == "median"
    assert [s["trials_per_hour_ratio"] for s in figures["seeds"]] == [3.5, 2.0, 4.0]
    assert figures["trials_per_hour_ratio"] == {"median": 3.5, "min": 2.0, "max": 4.0, "n": 3}
    assert figures["best_auc_delta"] == {"median": -0.003, "min": -0.01, "max": 0.001, "n": 3}
    assert figures["goal_met"] is True
    assert figures["per_pruner"]["none"]["trials_per_hour"]["median"] == 10.0 and figures["per_pruner"]["sha"]["best"] is None
    assert figures["all_run"] is False and figures["reduced"] is False


def test_goal_missed_when_the_default_loses_auc():
    seeds = [_seed(0, {"none": _side(10.0, 0.990), "median": _side(40.0, 0.980)})]
    figures = pruning.summarise(_args(budget=300.0, reduced=True), _data(), seeds)
    assert figures["goal_met"] is False and figures["reduced"] is True


def test_no_ratio_before_both_sides_ran():
    figures = pruning.summarise(_args(), _data(), [_seed(0, {"none": _side(10.0, 0.99)})])
    assert "trials_per_hour_ratio" not in figures and "goal_met" not in figures


def test_recorded_after_each_pruner(tmp_path, monkeypatch):
    import bench.results

    monkeypatch.setattr(bench.results, "RESULTS", str(tmp_path / "results.json"))
    pruning.summarise(_args(no_record=False), _data(), [_seed(0, {"none": _side(10.0, 0.99)})])
    stored = json.loads((tmp_path / "results.json").read_text())["pruning"]
    assert [s["seed"] for s in stored["seeds"]] == [0] and "command" in stored and "machine" in stored


def test_resume_keeps_whole_seeds_and_reruns_a_broken_one_and_hours_stops_before_one(tmp_path, monkeypatch, capsys):
    """main() with made-up searches: seed 0 whole, seed 1 cut short; --resume runs seed 1 again, whole."""
    import types

    import bench.results

    calls, clock = [], [0.0]
    fake_time = types.SimpleNamespace(monotonic=lambda: clock[0])
    monkeypatch.setattr(bench.results, "RESULTS", str(tmp_path / "results.json"))
    monkeypatch.setattr(bench.results, "time", fake_time)
    monkeypatch.setattr(pruning, "time", fake_time)
    monkeypatch.setattr(pruning, "load_arrays", lambda *a, **k: _data())
    monkeypatch.setattr(pruning, "calibrate", lambda *a, **k: 1.0)
    monkeypatch.setattr(pruning, "search_record", lambda record, budget: record)  # run_search's made-up result as it is

    def search(source, *, budget, seed, pruner, fail_at=None, **kw):
        calls.append((seed, pruner))
        clock[0] += budget
        if len(calls) == fail_at:
            raise RuntimeError("the machine went away")
        return {"trials_finished": 4, "pruned": 1, "best": 0.9, "selected_best": 0.9}

    flags = ["--data", "demo", "--pruners", "none,median", "--seeds", "2"]
    monkeypatch.setattr(pruning, "run_search", lambda *a, **k: search(*a, fail_at=4, **k))
    with pytest.raises(RuntimeError):
        pruning.main(flags)
    stored = json.loads((tmp_path / "results.json").read_text())["pruning_reduced"]
    assert [(e["seed"], sorted(e["runs"])) for e in stored["seeds"]] == [(0, ["median", "none"]), (1, ["median"])]

    calls.clear()
    monkeypatch.setattr(pruning, "run_search", search)
    assert pruning.main(flags + ["--resume", "--hours", "0.5"])["all_run"] is False  # a seed is 2 x 31 minutes
    assert calls == [] and "stopped before seed 1" in capsys.readouterr().out
    figures = pruning.main(flags + ["--resume"])
    assert calls == [(1, "median"), (1, "none")] and figures["all_run"]
    assert figures["seeds"][0]["date"] == stored["seeds"][0]["date"] and figures["trials_per_hour_ratio"]["n"] == 2
    with pytest.raises(SystemExit, match="has pruners"):
        pruning.main(flags[:2] + ["--pruners", "none,sha", "--seeds", "2", "--resume"])
