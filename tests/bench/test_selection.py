"""The selection benchmark's pure parts on arrays made up here: signals, the Spearman table, picks, corruption."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bench import selection


def _probs(p1):
    p1 = np.asarray(p1, dtype=float)
    return np.stack([1 - p1, p1], axis=1)


def _row(trial, auc, loss, test_auc, **extra):
    base = {"trial": trial, "val_auc": auc, "val_log_loss": loss, "val_brier": loss / 2, "val_balanced_accuracy": auc,
            "corrupt_auc": auc - 0.1, "corrupt_log_loss": loss * 2, "test_auc": test_auc, "test_balanced_accuracy": test_auc - 0.1}
    return {**base, **extra}


def test_signals_match_hand_figures():
    y = np.array([0, 0, 1, 1])
    p = _probs([0.2, 0.6, 0.4, 0.9])
    s = selection.signals(y, p, p, positive=1)
    assert s["val_auc"] == pytest.approx(3 / 4)  # pairs: 0.4 < 0.6 is the one inverted pair of 4
    assert s["val_log_loss"] == pytest.approx(-np.mean(np.log([0.8, 0.4, 0.4, 0.9])))
    assert s["val_brier"] == pytest.approx(np.mean(2 * np.array([0.2, 0.6, 0.6, 0.1]) ** 2))  # both columns' errors
    # Youden on validation: 0.9 (sens 1/2, spec 1) ties 0.4 (sens 1, spec 1/2); the higher wins -> balanced accuracy 3/4
    assert s["val_balanced_accuracy"] == pytest.approx(3 / 4)
    assert s["corrupt_auc"] == s["val_auc"] and s["corrupt_log_loss"] == s["val_log_loss"]


def test_disease_class_at_index_zero_gives_the_same_signals():
    y1 = np.array([0, 0, 1, 1])
    p1 = np.array([0.2, 0.6, 0.4, 0.9])
    a = selection.signals(y1, _probs(p1), _probs(p1), positive=1)
    b = selection.signals(1 - y1, _probs(p1)[:, ::-1], _probs(p1)[:, ::-1], positive=0)  # Covid/Normal order
    assert a == pytest.approx(b)


def test_three_classes_use_argmax():
    y = np.array([0, 1, 2, 2])
    p = np.array([[.7, .2, .1], [.2, .5, .3], [.1, .3, .6], [.5, .2, .3]])
    s = selection.signals(y, p, p, positive=None)
    assert s["val_balanced_accuracy"] == pytest.approx((1 + 1 + 0.5) / 3)


def test_spearman_table_orients_losses_so_higher_is_better():
    # test AUC rises with val AUC and falls with val log-loss: both signals correlate +1
    rows = [_row(i, 0.9 + i / 100, 1.0 - i / 10, 0.8 + i / 100) for i in range(5)]
    table = selection.spearman_table(rows)
    assert table["val_auc"]["test_auc"] == pytest.approx(1.0)
    assert table["val_log_loss"]["test_auc"] == pytest.approx(1.0)
    assert table["corrupt_log_loss"]["test_balanced_accuracy"] == pytest.approx(1.0)
    assert table["val_auc_tiebreak"]["test_auc"] == pytest.approx(1.0)


def test_spearman_is_none_where_undefined():
    rows = [_row(0, 0.99, 0.1, 0.9), _row(1, 0.98, 0.2, 0.8)]
    assert selection.spearman_table(rows)["val_auc"]["test_auc"] is None  # two trials
    flat = [_row(i, 0.99, 0.1 * i + 0.1, 0.9 - i / 100) for i in range(4)]
    table = selection.spearman_table(flat)
    assert table["val_auc"]["test_auc"] is None  # a constant signal ranks nothing
    assert table["val_log_loss"]["test_auc"] == pytest.approx(1.0)


def test_tiebreak_ranks_by_rounded_auc_then_lower_log_loss():
    rows = [_row(0, 0.9981, 0.30, 0.90), _row(1, 0.9979, 0.10, 0.95), _row(2, 0.9960, 0.01, 0.97)]
    # rounded AUC: 0.998, 0.998, 0.996 -> trials 0 and 1 tie at the top; trial 1 has the lower log-loss
    assert selection.pick(rows, "val_auc")["trial"] == 0
    assert selection.pick(rows, "val_auc_tiebreak")["trial"] == 1
    assert selection.pick(rows, "val_log_loss")["trial"] == 2
    assert list(selection.oriented(rows, "val_auc_tiebreak")) == [2.0, 3.0, 1.0]


def test_picks_break_ties_by_the_earlier_trial_and_carry_test_figures():
    rows = [_row(3, 0.99, 0.2, 0.91), _row(1, 0.99, 0.2, 0.93), _row(2, 0.95, 0.5, 0.99)]
    p = selection.picks(rows)
    assert p["val_auc"] == {"trial": 1, "test_auc": 0.93, "test_balanced_accuracy": pytest.approx(0.83)}
    assert p["val_brier"]["trial"] == 1


def test_aggregate_counts_the_signals_whose_pick_had_the_best_test_auc():
    run_a = selection.summarise_run([_row(0, 0.99, 0.5, 0.90), _row(1, 0.98, 0.1, 0.95), _row(2, 0.97, 0.3, 0.80)])
    run_b = selection.summarise_run([_row(0, 0.99, 0.1, 0.96), _row(1, 0.98, 0.5, 0.90), _row(2, 0.97, 0.3, 0.80)])
    agg = selection.aggregate([run_a, run_b])
    assert agg["runs"] == 2
    assert agg["pick_best_test_auc"]["val_log_loss"] == 2  # picks trial 1 in a (0.95) and trial 0 in b (0.96)
    assert agg["pick_best_test_auc"]["val_auc"] == 1  # trial 0 both times: best only in b
    assert run_a["test_auc_best_trial"] == 0.95 and run_a["test_auc_median_trial"] == 0.90
    rho_a = run_a["spearman"]["val_auc"]["test_auc"]
    rho_b = run_b["spearman"]["val_auc"]["test_auc"]
    assert agg["median_spearman"]["val_auc"]["test_auc"] == pytest.approx((rho_a + rho_b) / 2)
    json.dumps(agg)  # recordable


def test_rule_figures_apply_each_validation_threshold_to_test():
    y_val = np.array([0, 0, 0, 1, 1, 1])
    p_val = _probs([0.1, 0.3, 0.6, 0.5, 0.7, 0.9])
    y_test = np.array([0, 0, 1, 1])
    p_test = _probs([0.55, 0.66, 0.68, 0.8])
    r = selection.rule_figures(y_val, p_val, y_test, p_test, positive=1, prevalence=0.5)
    assert set(r) == {"youden", "youden-mid", "half", "temperature"}
    # youden 0.7: only 0.8 positive -> sens 1/2, spec 1; midpoint 0.65: 0.66, 0.68, 0.8 -> sens 1, spec 1/2
    assert r["youden"]["threshold"] == pytest.approx(0.7) and r["youden"]["sensitivity"] == 0.5 and r["youden"]["specificity"] == 1.0
    assert r["youden-mid"]["threshold"] == pytest.approx(0.65) and r["youden-mid"]["accuracy"] == 0.75
    assert r["half"]["specificity"] == 0.0 and r["half"]["balanced_accuracy"] == 0.5
    assert r["temperature"]["threshold"] == pytest.approx(0.5)  # prevalence 0.5: 0.5 at any temperature
    summary = selection.rules_summary([{"rules": r}, {"rules": r}])
    assert summary["youden"]["balanced_accuracy"] == 0.75


def test_corruption_is_deterministic_for_a_seed_and_changes_the_images():
    rng = np.random.default_rng(0)
    gray = rng.integers(0, 256, (5, 16, 16, 1), dtype=np.uint8)
    a, b = selection.corrupt(gray, seed=7), selection.corrupt(gray, seed=7)
    assert a.dtype == np.uint8 and a.shape == gray.shape
    assert np.array_equal(a, b)
    assert not np.array_equal(a, selection.corrupt(gray, seed=8))
    assert not np.array_equal(a, gray)
    rgb = rng.integers(0, 256, (2, 16, 16, 3), dtype=np.uint8)
    assert selection.corrupt(rgb).shape == rgb.shape


def test_recorded_after_each_run_with_the_aggregate(tmp_path, monkeypatch):
    import argparse

    import bench.results

    monkeypatch.setattr(bench.results, "RESULTS", str(tmp_path / "results.json"))
    r = selection.rule_figures(np.array([0, 1, 1]), _probs([0.2, 0.6, 0.9]), np.array([0, 1]), _probs([0.3, 0.7]), 1, 0.6)
    rows = [_row(i, 0.9 + i / 100, 0.5 - i / 10, 0.8 + i / 50, rules=r, params={"lr": 1e-3}) for i in range(3)]
    results = {"covid_normal": {"0": {**selection.summarise_run(rows), "per_trial": rows}}}
    args = argparse.Namespace(budget=60.0, seeds=1, first_seed=2, space="efficientnet-lite0", epochs=3)
    selection.save("selection_reduced", args, results)
    stored = json.loads((tmp_path / "results.json").read_text())["selection_reduced"]
    assert stored["reduced"] is True and "command" in stored and "machine" in stored
    assert (stored["first_seed"], stored["space"]) == (2, "efficientnet-lite0")
    assert stored["aggregate"]["runs"] == 1 and stored["aggregate"]["pick_best_test_auc"]["val_auc"] == 1
    assert stored["sets"]["covid_normal"]["0"]["picks"]["val_auc"]["rules"]["youden"]["accuracy"] == 1.0


def test_report_prints_every_signal_and_the_picks_threshold_rules(capsys):
    r = selection.rule_figures(np.array([0, 1, 1]), _probs([0.2, 0.6, 0.9]), np.array([0, 1]), _probs([0.3, 0.7]), 1, 0.6)
    rows = [_row(i, 0.9 + i / 100, 0.5 - i / 10, 0.8 + i / 50, rules=r) for i in range(3)]
    selection.report("covid_normal", 0, selection.summarise_run(rows))
    out = capsys.readouterr().out
    assert all(s in out for s in selection.SIGNALS)
    assert "on the val_auc pick (trial 2)" in out and "threshold temperature" in out


def test_shift_rules_choose_youden_on_the_corrupted_copy_and_on_both():
    y_val = np.array([0, 0, 0, 1, 1, 1])
    p_val = _probs([0.1, 0.2, 0.3, 0.6, 0.7, 0.9])
    p_cor = _probs([0.4, 0.5, 0.75, 0.8, 0.85, 0.95])  # the corrupted normals look more like disease
    y_test, p_test = np.array([0, 0, 1, 1]), _probs([0.5, 0.72, 0.78, 0.9])
    r = selection.rule_figures(y_val, p_val, y_test, p_test, positive=1, prevalence=0.5, p_corrupt=p_cor)
    assert set(selection.SHIFT_RULES) < set(r)
    assert r["youden"]["threshold"] == pytest.approx(0.6) and r["youden"]["specificity"] == 0.5
    assert r["youden-corrupt"]["threshold"] == pytest.approx(0.8) and r["youden-corrupt"]["specificity"] == 1.0
    assert r["youden-corrupt"]["sensitivity"] == 0.5
    # pooled: J = 1 - 1/6 at 0.6 (only the corrupted normal at 0.75 above it), 4/6 - 0 at 0.8
    assert r["youden-pooled"]["threshold"] == pytest.approx(0.6)
    assert set(selection.rule_figures(y_val, p_val, y_test, p_test, 1, 0.5)) == {"youden", "youden-mid", "half", "temperature"}


@pytest.mark.parametrize("positive", [1, 0])
def test_ensembles_average_the_top_k_by_the_objective(positive):
    def probs(scores):  # scores of the disease class, at index `positive`
        p = _probs(scores)
        return p if positive == 1 else p[:, ::-1]

    flip = (lambda y: y) if positive == 1 else (lambda y: 1 - y)
    y_val, y_test = flip(np.array([0, 0, 1, 1])), flip(np.array([0, 1, 0, 1]))
    labels = {"y_val": y_val, "y_test": y_test, "positive": positive, "prevalence": 0.5}
    rows = [{"trial": 0, "objective": 0.9, "_probs": (probs([0.1, 0.2, 0.8, 0.9]),) * 2 + (probs([0.2, 0.6, 0.4, 0.8]),)},
            {"trial": 1, "objective": 0.95, "_probs": (probs([0.2, 0.1, 0.9, 0.7]),) * 2 + (probs([0.1, 0.3, 0.5, 0.9]),)},
            {"trial": 2, "objective": 0.95, "_probs": (probs([0.3, 0.3, 0.6, 0.9]),) * 2 + (probs([0.4, 0.5, 0.45, 0.6]),)}]
    out = selection.ensembles(rows, labels)
    assert set(out) == {"1", "3"}  # K = 5 needs five trials
    assert out["1"]["trials"] == [1] and out["3"]["trials"] == [1, 2, 0]  # ties: the earlier trial first
    assert out["1"]["test_auc"] == pytest.approx(0.75)  # trial 1: 0.5 vs 0.3 is the one pair out of order
    # averaged test scores 0.233, 0.467 (disease), 0.45, 0.767 (disease): every disease image above every normal
    assert out["3"]["test_auc"] == pytest.approx(1.0)
    assert set(out["3"]["rules"]) >= {"youden", *selection.SHIFT_RULES}
