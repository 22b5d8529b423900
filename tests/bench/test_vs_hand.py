"""bench.vs_hand's bookkeeping (no training): another space's sides are recorded apart and judged by the same goals."""

from bench import vs_hand


def test_quick_flags_name_the_space_and_trials():
    assert vs_hand.quick_flags() == ["--space", "cnn", "--trials", "20", "--epochs", "5", "--image-size", "64"]
    assert vs_hand.quick_flags("efficientnet-lite0", 10, 96) == ["--space", "efficientnet-lite0", "--trials", "10", "--epochs", "5", "--image-size", "96"]
    assert vs_hand.side_name("quick", "cnn") == "quick"
    assert vs_hand.side_name("default", "efficientnet-lite0") == "default@efficientnet-lite0"


ONE_RUN = {"command": "python -m bench.vs_hand", "date": "2026-12-02T03:00:00+00:00"}


def test_summary_judges_every_space_against_the_hand_cnn():
    entry = {"hand": {"auc_median": 0.94, "auc_best": 0.95, **ONE_RUN}, "quick": {"test_auc": 0.90, **ONE_RUN},
             "default": {"test_auc": 0.96, **ONE_RUN}, "quick@efficientnet-lite0": {"test_auc": 0.945, **ONE_RUN},
             "default@efficientnet-lite0": {"test_auc": 0.949, **ONE_RUN}}
    out = vs_hand.summary(entry)
    assert out["quick_beats_hand_median"] is False and out["search_beats_hand_best"] is True
    assert out["spaces"] == {"efficientnet-lite0": {"quick_auc": 0.945, "quick_beats_hand_median": True,
                                                    "default_auc": 0.949, "default_beats_hand_best": False}}


def test_summary_compares_only_sides_of_one_invocation():
    """A search from one run against a hand CNN from another (or of unknown provenance) meets no goal: None."""
    later = {"command": "python -m bench.vs_hand --sets covid19", "date": "2026-12-02T06:00:00+00:00"}
    entry = {"hand": {"auc_median": 0.92, "auc_best": 0.93, **later}, "default": {"test_auc": 0.96, **ONE_RUN},
             "quick": {"test_auc": 0.95, **later, "provenance": "unknown"},
             "quick@efficientnet-lite0": {"test_auc": 0.99, **ONE_RUN, "date": "2026-12-02T08:00:00+00:00"}}
    out = vs_hand.summary(entry)
    assert out["search_beats_hand_best"] is None and out["quick_beats_hand_median"] is None
    assert out["spaces"]["efficientnet-lite0"]["quick_beats_hand_median"] is None
    assert vs_hand.like(later, dict(later, date="2026-12-02T20:00:00+00:00"))
    assert not vs_hand.like(later, dict(later, date="2026-12-04T06:00:00+00:00"))


def test_summary_without_hand_figures_leaves_goals_open():
    out = vs_hand.summary({"quick@efficientnet-lite0": {"test_auc": 0.9}})
    assert out["spaces"]["efficientnet-lite0"]["quick_beats_hand_median"] is None


def test_each_side_keeps_its_own_date_when_a_later_run_adds_another(tmp_path, monkeypatch):
    from bench import harness, results

    monkeypatch.setattr(results, "RESULTS", str(tmp_path / "results.json"))
    monkeypatch.setattr(harness, "DATA_ROOT", str(tmp_path))
    monkeypatch.setattr(vs_hand, "data_folder", lambda name, work: str(tmp_path))
    monkeypatch.setattr(vs_hand, "side_hand", lambda folder, work, seeds: {"auc_median": 0.94, "auc_best": 0.95})
    monkeypatch.setattr(vs_hand, "side_search", lambda folder, work, name, flags, on_off=False: {"test_auc": 0.9})
    monkeypatch.setattr(results, "now", lambda: "2026-12-01T00:00:00+00:00")
    vs_hand.main(["--sets", "covid19", "--sides", "hand"])
    monkeypatch.setattr(results, "now", lambda: "2026-12-02T00:00:00+00:00")
    vs_hand.main(["--sets", "covid19", "--sides", "quick"])
    stored = results.load()["vs_hand"]  # default budget and seeds: the full-size key
    sides = stored["sets"]["covid19"]
    assert sides["hand"]["date"] == "2026-12-01T00:00:00+00:00" and sides["hand"]["auc_median"] == 0.94
    assert sides["quick"]["date"] == "2026-12-02T00:00:00+00:00" and stored["date"] == "2026-12-02T00:00:00+00:00"
    assert "command" in sides["hand"] and "machine" in sides["hand"] and "data" in sides["hand"]
