"""`lungsearch run`: settings typed and checked before a study exists (one line, exit 2, nothing stored; issue 39,
items 3 and 9), the data a study records, and the sampler's seed."""

from __future__ import annotations

import shutil
import warnings

import optuna
import pytest

from lungsearch.cli import main
from tests.conftest import make_bad_folder, make_folder


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_folder(tmp_path_factory.mktemp("settings") / "xray", per_class=4)


@pytest.mark.parametrize("line, words", [
    ('metric = "f1"', "metric = 'f1' is not one of val_auc, val_accuracy"),
    ('trials = "many"', "trials = 'many' is not a whole number"),
    ("trials = 1.7", "trials = 1.7 is not a whole number"),
    ("space = 7", "space = 7 is not a string"),
    ('seed = "x"', "seed = 'x' is not a whole number"),
    ('sampler = "bayes"', "is not one of tpe, random"),
    ('hflip = "yes"', "hflip = 'yes' is not true or false"),
    ("val_fraction = 0.5", "--val-fraction must be between 0 and 0.5"),
    ('group_pattern = "(unclosed"', "is not a regular expression"),
    ('group_pattern = "person"', "has no group"),
])
def test_a_config_value_of_the_wrong_type_is_one_line_and_stores_nothing(folder, tmp_path, capsys, line, words):
    config = tmp_path / "c.toml"
    config.write_text(line + "\n")
    db = tmp_path / "s.db"
    assert main(["run", "--data", str(folder), "--config", str(config), "--storage", f"sqlite:///{db}"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("lungsearch: error: ") and words in err, err
    assert not db.exists()  # nothing stored: a later run with a good setting starts clean


def test_after_a_bad_metric_the_same_study_runs_with_a_good_one(folder, tmp_path, capsys):
    config = tmp_path / "c.toml"
    config.write_text('metric = "f1"\n')
    url = f"sqlite:///{tmp_path / 's.db'}"
    args = ["run", "--data", str(folder), "--storage", url, "--study", "s", "--trials", "1", "--epochs", "1",
            "--image-size", "24", "--quiet", "--val-fraction", "0.4"]
    assert main([*args, "--config", str(config)]) == 2
    assert main(args) == 0
    assert optuna.load_study(study_name="s", storage=url).user_attrs["config"]["metric"] == "val_auc"


@pytest.mark.parametrize("timeout", ["0", "-5"])
def test_a_timeout_of_zero_or_less_is_refused(folder, tmp_path, capsys, timeout):
    assert main(["run", "--data", str(folder), "--timeout", timeout, "--storage", f"sqlite:///{tmp_path / 's.db'}"]) == 2
    assert "--timeout must be more than 0 seconds" in capsys.readouterr().err


@pytest.mark.slow
def test_run_records_the_data_it_used(tmp_path, capsys):
    root = tmp_path / "xray"
    bad = make_bad_folder(root)
    shutil.copy(sorted((root / "test" / "NORMAL").iterdir())[0], root / "train" / "NORMAL" / "zz_leak.png")
    storage = f"sqlite:///{tmp_path / 's.db'}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rc = main(["run", "--data", str(root), "--trials", "1", "--epochs", "1", "--image-size", "16", "--storage", storage,
                   "--study", "s", "--cache-dir", str(tmp_path / "c"), "--dedupe", "--group-pattern", r"person(\d+)_",
                   "--val-fraction", "0.3", "--batch-size", "8"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "4 unreadable files skipped" in out and "1 duplicates dropped" in out and "(overlap 0)" in out
    study = optuna.load_study(study_name="s", storage=storage)
    attrs = study.user_attrs
    assert sorted(s.split(" (")[0] for s in attrs["skipped_files"]) == sorted(str(p) for p in bad.values())
    assert attrs["group_pattern"] == r"person(\d+)_" and attrs["config"]["dedupe"] is True
    assert attrs["config"]["cache_dir"] == str(tmp_path / "c")
    assert [p.rsplit("/", 1)[-1] for p in attrs["data"]["deduped"]] == ["zz_leak.png"]
    assert attrs["data"]["group_overlap"] == 0 and attrs["data"]["cache_hit"] is False

    # resuming with another group pattern would change what validation means: refused
    rc = main(["run", "--data", str(root), "--trials", "2", "--storage", storage, "--study", "s",
               "--cache-dir", str(tmp_path / "c"), "--dedupe", "--image-size", "16"])
    assert rc == 2 and "group_pattern" in capsys.readouterr().err


def test_sampler_seed_is_the_given_seed_only_for_a_new_study():
    from lungsearch.commands.run import sampler_seed

    assert sampler_seed(7) == 7
    resumed = {sampler_seed(7, n) for n in (1, 2, 10, 11)}
    assert len(resumed) == 4 and 7 not in resumed


@pytest.mark.parametrize("how", ["run", "run --refine", "worker of run --refine", "worker of run"])
def test_only_run_refine_stops_a_trial_still_training_when_the_search_share_ends(tmp_path, monkeypatch, how):
    """Optuna's --timeout stops starting trials; under --refine the search's share also stops the trial training then
    (stop_at: the deadline), so refine has the rest. A worker is told by the supervisor's environment."""
    import time

    from lungsearch import refine, trial
    from lungsearch.commands import run as run_cmd  # DEADLINE_ENV, STOP_ENV: public there

    seen = []
    real = trial.objective

    def objective(*args, stop_at=None, **kwargs):
        seen.append(stop_at)
        return real(*args, stop_at=stop_at, **kwargs)

    monkeypatch.setattr(trial, "objective", objective)
    monkeypatch.setattr(refine, "refine", lambda study, timeout=None: {})  # only the search's half is looked at here
    folder = make_folder(tmp_path / "xray", per_class=8, size=24)
    args = ["run", "--data", str(folder), "--trials", "1", "--epochs", "1", "--image-size", "24", "--timeout", "60", "--val-fraction", "0.25",
            "--recycle", "0", "--storage", f"sqlite:///{tmp_path / 's.db'}", "--study", "s", "--quiet"]
    deadline = time.time() + 30
    if how.startswith("worker"):
        monkeypatch.setenv(run_cmd.DEADLINE_ENV, repr(deadline))
        if how.endswith("--refine"):
            monkeypatch.setenv(run_cmd.STOP_ENV, "1")
        args.append("--worker")
    elif how.endswith("--refine"):
        args.append("--refine")
    started = time.time()
    assert main(args) == 0
    if how == "run --refine":  # the search's share: half of --timeout, counted from when the trials begin
        assert started + 30 - 1 < seen[0] < time.time() + 30
    elif how == "worker of run --refine":
        assert seen == [deadline]
    else:
        assert seen == [None]


def test_run_refine_gives_the_rest_of_its_timeout_back_to_the_search_where_refine_refits_nothing(tmp_path, monkeypatch, capsys):
    """Where refine begins nothing (the best finalist's fold fits do not fit what is left: a slow machine ended a
    30-minute run --refine at 15 minutes), the search goes on to the end of --timeout, its late trial stopped there."""
    import datetime

    from lungsearch import refine
    from lungsearch.commands import run as run_cmd

    monkeypatch.setattr(refine, "refine", lambda study, timeout=None: {})  # as when not even the best finalist fits
    monkeypatch.setattr(run_cmd, "SEARCH_AGAIN_SECONDS", 1.0)
    folder = make_folder(tmp_path / "xray", per_class=8, size=24)
    url = f"sqlite:///{tmp_path / 's.db'}"
    began = datetime.datetime.now()
    assert main(["run", "--data", str(folder), "--trials", "200", "--epochs", "1", "--image-size", "24", "--timeout", "12",
                 "--val-fraction", "0.25", "--recycle", "0", "--storage", url, "--study", "s", "--quiet", "--refine"]) == 0
    out = capsys.readouterr().out
    assert "run --refine: the search goes on for the" in out
    lines = out.splitlines()
    done = [i for i, line in enumerate(lines) if line.startswith("done:")]
    nexts = [i for i, line in enumerate(lines) if line.startswith("next:")]
    assert len(done) == 2 and len(nexts) == 2 and min(nexts) > max(done), out  # each stretch's tally, the commands once
    trials = optuna.load_study(study_name="s", storage=url).trials
    share_end = began + datetime.timedelta(seconds=6)
    assert any(t.datetime_start > share_end for t in trials)  # trials begun after the search's share
    assert len(trials) < 200


@pytest.mark.parametrize("refine_flag", [False, True])
def test_run_closes_with_its_next_commands_once_and_under_refine_after_refine(tmp_path, monkeypatch, capsys, refine_flag):
    """`next:` says what to do when the run is over: under --refine after refine's closing line, not between the search
    and refine (where `best` would still be waiting on the refits)."""
    from lungsearch import refine

    record = {"finalists": [0], "results": {"0": {"oof_auc": 0.9}}}
    monkeypatch.setattr(refine, "refine", lambda study, timeout=None: record)
    folder = make_folder(tmp_path / "xray", per_class=8, size=24)
    args = ["run", "--data", str(folder), "--trials", "2", "--epochs", "1", "--image-size", "24", "--val-fraction", "0.25",
            "--recycle", "0", "--storage", f"sqlite:///{tmp_path / 's.db'}", "--study", "s", "--quiet"]
    assert main(args + (["--refine"] if refine_flag else [])) == 0
    lines = capsys.readouterr().out.splitlines()
    kinds = [line.split(":")[0] if line.startswith(("done:", "next:")) else "refined" for line in lines
             if line.startswith(("done:", "next:", "refined "))]
    assert kinds == ["done"] + (["refined"] if refine_flag else []) + ["next", "next"], lines


def test_ctrl_c_in_the_refine_of_run_refine_says_how_to_carry_on(tmp_path, monkeypatch, capsys):
    """The `next:` lines wait for refine; a Ctrl-C there still gets them, with `lungsearch refine` to carry on first."""
    from lungsearch import refine

    def interrupted(study, timeout=None):
        raise KeyboardInterrupt

    monkeypatch.setattr(refine, "refine", interrupted)
    folder = make_folder(tmp_path / "xray", per_class=8, size=24)
    where = ["--storage", f"sqlite:///{tmp_path / 's.db'}", "--study", "s"]
    assert main(["run", "--data", str(folder), "--trials", "1", "--epochs", "1", "--image-size", "24", "--val-fraction", "0.25",
                 "--recycle", "0", *where, "--quiet", "--refine"]) == 130
    err = capsys.readouterr().err
    assert "interrupted" in err
    assert [line.split()[1:3] for line in err.splitlines() if line.startswith("next:")] == [
        ["lungsearch", "refine"], ["lungsearch", "report"], ["lungsearch", "best"]]
    assert f"next: lungsearch refine {' '.join(where)}" in err


def test_the_search_hands_sigterm_back_before_refine(tmp_path, monkeypatch):
    """The search turns SIGTERM into a Ctrl-C for its trials; refine, after it in `run --refine`, gets the handler there
    was before (a KeyboardInterrupt raised inside a garbage-collection callback is dropped, and refine went on)."""
    import signal

    from lungsearch import refine

    seen = []
    monkeypatch.setattr(refine, "refine", lambda study, timeout=None: seen.append(signal.getsignal(signal.SIGTERM)) or {})
    before = signal.getsignal(signal.SIGTERM)
    folder = make_folder(tmp_path / "xray", per_class=8, size=24)
    assert main(["run", "--data", str(folder), "--trials", "1", "--epochs", "1", "--image-size", "24", "--val-fraction", "0.25",
                 "--recycle", "0", "--storage", f"sqlite:///{tmp_path / 's.db'}", "--study", "s", "--quiet", "--refine"]) == 0
    assert seen == [before] and signal.getsignal(signal.SIGTERM) is before


@pytest.mark.parametrize("signum", ["SIGTERM", "SIGINT"])
def test_a_signal_whose_keyboardinterrupt_python_drops_still_ends_the_running_trial(tmp_path, monkeypatch, signum):
    """Python drops a KeyboardInterrupt raised inside a garbage-collection callback; the search notes the signal as well,
    so the trial still ends at its next batch (FAIL, exit 130) rather than the search going on as if nothing came."""
    import os
    import signal
    import time

    import keras
    import optuna

    sig = getattr(signal, signum)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # a test runner may handle Ctrl-C its own way
    fit = keras.Model.fit

    def fit_after_a_dropped_interrupt(self, *args, **kwargs):
        try:
            os.kill(os.getpid(), sig)
            time.sleep(1.0)  # the handler runs here and its KeyboardInterrupt is swallowed, as in a gc callback
        except KeyboardInterrupt:
            pass
        return fit(self, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "fit", fit_after_a_dropped_interrupt)
    folder = make_folder(tmp_path / "xray", per_class=8, size=24)
    url = f"sqlite:///{tmp_path / 's.db'}"
    try:
        code = main(["run", "--data", str(folder), "--trials", "2", "--epochs", "2", "--image-size", "24",
                     "--val-fraction", "0.25", "--recycle", "0", "--storage", url, "--study", "s", "--quiet"])
    finally:
        signal.signal(signal.SIGINT, previous)
    assert code == 130
    trials = optuna.load_study(study_name="s", storage=url).trials
    ran = [t for t in trials if t.state != optuna.trial.TrialState.WAITING]  # queued warm starts stay queued
    assert [t.state for t in ran] == [optuna.trial.TrialState.FAIL] and not ran[0].user_attrs.get("epochs")


def test_the_supervisor_tells_the_workers_of_run_refine_to_stop_their_trials_at_the_deadline(monkeypatch, tmp_path):
    import search
    from lungsearch.commands import run
    from lungsearch.config import RunConfig

    given = []

    def supervise(command, workers, *, keep_going, extra_env):
        given.append(extra_env)
        return 1

    monkeypatch.setattr(search.workers, "supervise", supervise)
    config = RunConfig(storage=f"sqlite:///{tmp_path / 's.db'}", study="s", workers=2, timeout=60.0)
    for stop in (True, False):
        assert run.supervise(config, None, stop_trials=stop) == 1
    assert given[0][run.STOP_ENV] == "1" and run.DEADLINE_ENV in given[0]
    assert run.STOP_ENV not in given[1]
