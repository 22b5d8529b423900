"""bench.feature_cache's tables come from the record: the quick start's times and the FLOPs split, on records made up here."""

from bench import feature_cache


def test_the_quickstart_table_prints_minutes_and_the_exports_figures():
    run = {"run_seconds": 540.0, "best_seconds": 66.0, "complete": 9, "pruned": 1,
           "export": {"test_auc": 0.9671, "test_accuracy": 0.85, "test": {"roc_auc": {"ci95": [0.953, 0.979]}}}}
    text = feature_cache.table({"sets": {"chest_xray": {"on": run}}})
    assert "| chest_xray | on | 9.0 min | 1.1 min | 9 / 1 | 0.967 [0.953, 0.979] | 0.850 |" in text


def test_the_flops_table_prints_each_cut():
    rows = [{"trainable_blocks": 2, "frozen_mflops": 158.9, "rest_mflops": 91.9, "rest_share": 0.367, "speedup_estimate": 1.58}]
    assert "| 2 | 158.9 | 91.9 | 36.7% | 1.58x |" in feature_cache.table({"rows": rows})
