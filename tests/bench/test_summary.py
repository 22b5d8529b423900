"""bench.summary: the figure tables generated from the record, and the check that keeps README.md and
bench/RESULTS.md equal to them (no training, no TensorFlow)."""

import json

from bench import summary

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
                                                   "<!-- /summary:goals -->\ntail\n\n## rest\n")
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


def test_check_fails_on_a_changed_figure_and_passes_once_written(tmp_path, capsys):
    root = files(tmp_path)
    assert summary.main(["--check"], root=str(root)) == 1  # the blocks are still empty
    assert summary.main([], root=str(root)) == 0
    assert summary.main(["--check"], root=str(root)) == 0
    readme = (root / "README.md").read_text()
    assert readme.startswith("# x\n\n<!-- summary:quickstart -->\n") and readme.endswith("\nkept\n")
    results = (root / "bench" / "RESULTS.md").read_text()
    assert results.startswith("# Benchmark results\n\n<!-- summary:results-summary -->\n") and results.endswith("tail\n\n## rest\n")
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
