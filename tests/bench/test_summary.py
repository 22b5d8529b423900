"""bench.summary: the figure tables generated from the record, and the check that keeps README.md and
bench/RESULTS.md equal to them (no training, no TensorFlow)."""

import json

from bench import summary
from bench.refine import table as refine_table

PAIRED = {"auc_a": 0.99437, "auc_b": 0.99283, "ci95": [0.0001, 0.0031], "difference": 0.00154,
          "method": "paired bootstrap", "p": 0.036, "resamples": 1000}
RECORD = {
    "backbones": {"command": "python -m bench.backbones", "date": "2026-12-06T10:59:42+00:00", "folds": 5, "set": "chest_xray",
                  "winner": "lite0@224", "candidates": {"lite0@224": {"vs_default": PAIRED}}},
    "cache": {"command": "python -m bench.cache", "date": "2026-11-22T19:19:01+00:00", "speedup": 31.8, "worker_speedup": 36.6},
    "pruning@2026-11-23": {"command": "python -m bench.pruning", "date": "2026-11-23T02:19:31+00:00"},
    "pruning": {"command": "python -m bench.pruning --resume", "date": "2026-12-04T17:34:04+00:00",
                "trials_per_hour_ratio": {"median": 1.333, "min": 1.136, "max": 1.833, "n": 3}},
}


def files(tmp_path, record=RECORD):
    """A project folder with the record and the two files, each with its markers inside other text."""
    (tmp_path / "bench").mkdir()
    (tmp_path / "bench" / "results.json").write_text(json.dumps(record))
    (tmp_path / "README.md").write_text("# x\n\n<!-- summary:quickstart -->\nstale figure 0.903\n<!-- /summary:quickstart -->\n\nkept\n")
    (tmp_path / "bench" / "RESULTS.md").write_text("# Benchmark results\n\n<!-- summary:results-summary -->\n"
                                                   "<!-- /summary:results-summary -->\n\n<!-- summary:goals -->\n"
                                                   "<!-- /summary:goals -->\ntail\n\n## rest\n\n<!-- summary:refine-runs -->\n"
                                                   "<!-- /summary:refine-runs -->\n")
    return tmp_path


def test_a_compared_row_shows_its_paired_test_and_an_absent_key_says_not_run():
    text = summary.results_summary(RECORD)
    row = next(line for line in text.splitlines() if "backbones.candidates" in line)
    assert "lite0@224 0.9944 vs lite0@128 0.9928: paired +0.0015 [+0.0001, +0.0031], p 0.036" in row
    assert "`python -m bench.backbones`" in row and "2026-12-06" in row
    assert "| `refine` | - | not run |" in text  # the full-size refine bench, expected but not recorded yet
    assert "Superseded by a later run of the same bench (their sections below): `pruning@2026-11-23`." in text
    assert "not run" in summary.quickstart({}) and "not measured" in summary.goals({})


def test_goal_status_comes_from_the_record():
    goals = summary.goals(RECORD)
    assert "| cache speed-up 20x | **met** |" in goals and "31.8x" in goals
    assert "| harness overhead 1.03 | not measured |" in goals


def _refine_run(auc, acc, seconds):
    test = {"roc_auc": {"value": auc, "ci95": [auc - 0.01, auc + 0.01]}, "accuracy": {"value": acc, "ci95": [acc - 0.03, acc + 0.03]}}
    return {"command": "python -m bench.refine --sets chest_xray --seeds 0", "date": "2026-12-06T20:00:00+00:00",
            "search_seconds": 900.0, "refine_seconds": seconds - 900.0, "total_seconds": seconds, "finalists_refined": 1,
            "exports": {"bag": {"test": test}, "top3": {"test": test}},
            "paired": {"bag-top3": {"auc_a": auc, "auc_b": auc - 0.004, "difference": 0.004, "ci95": [-0.001, 0.01], "p": 0.1}}}


def test_refine_rows_say_what_it_costs_and_buys_and_its_goal_holds_every_run_to_30_minutes():
    fast = {"refine": {"top": 5, "folds": 5, "sets": {"chest_xray": {"0": _refine_run(0.976, 0.91, 1700.0)},
                                                     "covid19": {"0": _refine_run(0.995, 0.95, 1500.0)}}}}
    rows = [r for r in summary.quickstart_rows(fast, "chest_xray") if "refine" in r[0]]
    assert "--top 5 --folds 5, 1 finalist(s) refitted), 15 + 13 min" in rows[0][0] and rows[0][1] == "0.976 [0.966, 0.986]"
    assert "bag - top 3: paired +0.004 [-0.001, +0.010], p 0.100" in rows[1][0]
    goal, met, _ = summary.refine_goal(fast)
    assert met is True
    slow = json.loads(json.dumps(fast))
    slow["refine"]["sets"]["chest_xray"]["0"]["total_seconds"] = 1900.0  # the figures, but over the 30 minutes
    assert summary.refine_goal(slow)[1] is False
    starved = json.loads(json.dumps(fast))  # refine refitted no finalist in the time left: best exports the 3 best averaged
    del starved["refine"]["sets"]["chest_xray"]["0"]["exports"]["bag"]
    rows = [r for r in summary.quickstart_rows(starved, "chest_xray") if "refine" in r[0]]
    assert len(rows) == 1 and "refitted no finalist" in rows[0][0] and rows[0][-1].endswith("exports.top3.test`")
    assert "exports.top3.test" in summary.refine_goal(starved)[2][0].key
    reduced = {"refine_reduced": {"top": 2, "folds": 3, "sets": {"chest_xray": {"0": _refine_run(0.969, 0.82, 2100.0)}}}}
    goal, met, rows = summary.refine_goal(reduced)  # the reduced key stands where the full one has no run; covid19 not run
    assert met is False and "refine_reduced.sets.chest_xray.0.exports.bag.test" in rows[0].key and rows[1].figure == "not run"


def test_the_refine_runs_block_is_the_tables_bench_refine_prints():
    record = {"refine": {"sets": {"chest_xray": {"0": _refine_run(0.961, 0.85, 1790.0)}}}}
    text = summary.refine_tables(record)
    row = next(line for line in text.splitlines() if line.startswith("| chest_xray | 0 |"))
    assert "900.0 / 890.0" in row and "0.961 [0.951, 0.971], 0.850" in row and "+0.0040 [-0.0010, +0.0100], p 0.100" in row
    assert text.startswith(refine_table(record["refine"])) and "do not edit by hand" in text
    assert summary.refine_tables({}).startswith("Not run")


def test_check_fails_on_a_changed_figure_and_passes_once_written(tmp_path, capsys):
    root = files(tmp_path)
    assert summary.main(["--check"], root=str(root)) == 1  # the blocks are still empty
    assert summary.main([], root=str(root)) == 0
    assert summary.main(["--check"], root=str(root)) == 0
    readme = (root / "README.md").read_text()
    assert readme.startswith("# x\n\n<!-- summary:quickstart -->\n") and readme.endswith("\nkept\n")
    results = (root / "bench" / "RESULTS.md").read_text()
    assert results.startswith("# Benchmark results\n\n<!-- summary:results-summary -->\n") and "tail\n\n## rest\n\n<!-- summary:refine-runs -->\nNot run" in results
    assert "stale figure" not in readme

    changed = json.loads(json.dumps(RECORD))
    changed["cache"]["speedup"] = 12.0
    (root / "bench" / "results.json").write_text(json.dumps(changed))
    capsys.readouterr()
    assert summary.main(["--check"], root=str(root)) == 1
    diff = capsys.readouterr().out
    assert "-| cache speed-up 20x | **met**" in diff and "+| cache speed-up 20x | **not met**" in diff and "12.0x" in diff
    assert summary.main([], root=str(root)) == 0 and summary.main(["--check"], root=str(root)) == 0


def test_a_missing_marker_is_a_one_line_error(tmp_path, capsys):
    root = files(tmp_path)
    (root / "bench" / "RESULTS.md").write_text("# Benchmark results\n")
    assert summary.main(["--check"], root=str(root)) == 1
    assert "bench/RESULTS.md: no <!-- summary:results-summary --> ... <!-- /summary:results-summary --> block" in capsys.readouterr().err


def test_the_repository_readme_and_results_match_the_record():
    """Every generated table in README.md and bench/RESULTS.md says what bench/results.json holds; after a new
    record, `python -m bench.summary` rewrites them."""
    assert summary.main(["--check"]) == 0


def test_a_tiebreak_run_shows_both_orders_of_its_tied_finalists_from_the_record():
    order = {"spearman_with_oof_auc": 0.6, "mean_oof_auc": 0.98123, "best_oof_auc": 0.99}
    run = {"command": "python -m bench.tiebreak", "date": "2026-12-07T09:00:00+00:00", "tied": 9, "best_val_auc": 1.0,
           "val_loss": order, "number": dict(order, spearman_with_oof_auc=-0.1, mean_oof_auc=0.97)}
    text = summary.results_summary({"tiebreak": {"sets": {"covid19": {"0": run}}}})
    row = next(line for line in text.splitlines() if "tiebreak.sets.covid19.0" in line)
    assert "9 refined finalists tied at validation AUC 1.0000" in row
    assert "val_loss: rho 0.600, first 5 mean OOF AUC 0.9812, best 0.9900; number: rho -0.100, first 5 mean OOF AUC 0.9700" in row
    assert "`python -m bench.tiebreak`" in row and "2026-12-07" in row
    assert "not run" in next(line for line in summary.results_summary({"tiebreak": {"sets": {}}}).splitlines() if "tiebreak" in line)
