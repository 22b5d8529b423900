"""bench.tiebreak: which refined finalists tie, and how each order of them meets their out-of-fold AUC, on a study made here."""

from __future__ import annotations

import optuna
import pytest

from bench import tiebreak


def _study(rows):
    """A study whose trials have (validation AUC, validation log-loss) and, where given, a refine result (OOF AUC)."""
    study = optuna.create_study(direction="maximize")
    results = {}
    for number, (val_auc, val_loss, oof) in enumerate(rows):
        study.add_trial(optuna.trial.create_trial(value=val_auc, user_attrs={"val_loss": val_loss}))
        if oof is not None:
            results[str(number)] = {"oof_auc": oof, "oof_log_loss": 1.0 - oof}
    study.set_user_attr("refine", {"results": results})
    return study


def test_only_refined_finalists_at_the_best_validation_auc_are_compared():
    study = _study([(1.0, 0.30, 0.95), (0.99, 0.01, 0.999), (1.0, 0.10, 0.97), (1.0, 0.05, None), (1.0, 0.20, 0.96)])
    rows = tiebreak.tied_rows(study)
    assert [r["number"] for r in rows] == [0, 2, 4]  # #1 is below 1.0; #3 tied but not refined
    assert rows[1] == {"number": 2, "val_auc": 1.0, "val_loss": 0.10, "oof_auc": 0.97, "oof_log_loss": pytest.approx(0.03)}


def test_each_order_puts_its_own_first_and_is_ranked_against_oof_auc():
    rows = [{"number": n, "val_auc": 1.0, "val_loss": loss, "oof_auc": oof, "oof_log_loss": 0.0}
            for n, loss, oof in [(0, 0.30, 0.95), (1, 0.20, 0.96), (2, 0.10, 0.97), (3, 0.40, 0.94)]]
    out = tiebreak.compare(rows, finalists=2)
    assert out["tied"] == 4
    assert out["val_loss"]["finalists"] == [2, 1] and out["val_loss"]["spearman_with_oof_auc"] == pytest.approx(1.0)
    assert out["val_loss"]["mean_oof_auc"] == pytest.approx(0.965) and out["val_loss"]["best_oof_auc"] == pytest.approx(0.97)
    assert out["number"]["finalists"] == [0, 1] and out["number"]["best_oof_auc"] == pytest.approx(0.96)
    assert out["number"]["spearman_with_oof_auc"] == pytest.approx(0.2)  # earlier first: ranks 4,3,2,1 against 2,3,4,1
    assert tiebreak.compare(rows[:2])["val_loss"]["spearman_with_oof_auc"] is None  # fewer than 3: no rho
