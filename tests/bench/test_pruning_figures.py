"""The pruning benchmark's figures over seeds, from side results made up here (no training)."""

from __future__ import annotations

import argparse
import json

import numpy as np

from bench import pruning
from lungsearch.data import Arrays, SearchData


def _args(**over):
    base = dict(data="demo", image_size=64, budget=1800.0, epochs=10, pruners="none,median,sha", seeds=3, no_record=True,
                reduced=False)
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
