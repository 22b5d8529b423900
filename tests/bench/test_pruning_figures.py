"""The pruning benchmark's figures, from side results made up here (no training)."""

from __future__ import annotations

import argparse
import json

import numpy as np

from bench import pruning
from lungsearch.data import Arrays, SearchData


def _args(**over):
    base = dict(data="demo", image_size=64, budget=1800.0, epochs=10, pruners="none,median,sha", no_record=True, reduced=False)
    return argparse.Namespace(**{**base, **over})


def _data():
    x = np.zeros((4, 8, 8, 1), dtype=np.float32)
    return SearchData(["a", "b"], Arrays(x, np.array([0, 1, 0, 1])), Arrays(x[:2], np.array([0, 1])), {})


def _side(per_hour: float, best: float | None) -> dict:
    return {"trials_per_hour": per_hour, "best": best, "trials_finished": int(per_hour / 2)}


def test_ratio_and_delta_of_the_default_against_none():
    figures = pruning.summarise(_args(), _data(), {"none": _side(10.0, 0.990), "median": _side(35.0, 0.987)})
    assert figures["default_pruner"] == "median"
    assert figures["trials_per_hour_ratio"] == 3.5
    assert figures["best_auc_delta"] == -0.003
    assert figures["goal_met"] is True
    assert figures["pruners_run"] == ["none", "median"] and figures["all_pruners_run"] is False
    assert figures["reduced"] is False


def test_goal_missed_when_the_default_loses_auc():
    figures = pruning.summarise(_args(budget=300.0, reduced=True), _data(), {"none": _side(10.0, 0.990), "median": _side(40.0, 0.980)})
    assert figures["goal_met"] is False and figures["reduced"] is True


def test_no_ratio_before_both_sides_ran():
    figures = pruning.summarise(_args(), _data(), {"none": _side(10.0, 0.99)})
    assert "trials_per_hour_ratio" not in figures and "goal_met" not in figures


def test_recorded_after_each_pruner(tmp_path, monkeypatch):
    import bench.results

    monkeypatch.setattr(bench.results, "RESULTS", str(tmp_path / "results.json"))
    pruning.summarise(_args(no_record=False), _data(), {"none": _side(10.0, 0.99)})
    stored = json.loads((tmp_path / "results.json").read_text())["pruning"]
    assert stored["pruners_run"] == ["none"] and "command" in stored and "machine" in stored
