"""`lungsearch run` around its trials: warm starts, resumes that must be comparable, and the summing up.

Warm starts: a new study's first trial is the space's known-good point; resumes
and --no-warm-start add none.  A study remembers its data by content: the same
folder by another path resumes, another folder of the same name is refused.

Also the class-order check end to end: a binary folder whose disease class
sorts first (Covid/Normal) and one whose disease class sorts second
(NORMAL/PNEUMONIA) give the search, the export's validation figures and the
test evaluation the same, right-way-up AUC.
"""

from __future__ import annotations

import json
import shutil

import optuna
import pytest

import spaces
from lungsearch.cli import main
from tests.conftest import make_folder

optuna.logging.set_verbosity(optuna.logging.WARNING)
HAND = spaces.get_space("cnn").warm_starts[0]
RUN = ["run", "--epochs", "1", "--image-size", "24", "--val-fraction", "0.3", "--quiet", "--study", "s"]


def _run(data, url, trials, *extra):
    return main(["run", "--data", str(data), "--trials", str(trials), "--epochs", "1", "--image-size", "24",
                 "--val-fraction", "0.3", "--storage", url, "--study", "s", "--recycle", "0", *extra])


def test_a_new_study_starts_from_the_hand_cnn_and_a_resume_adds_no_second(tmp_path, capsys):
    data = make_folder(tmp_path / "xray", per_class=10, size=24)
    url = f"sqlite:///{tmp_path / 's.db'}"
    assert _run(data, url, 1) == 0
    assert 'warm start: the first trial is "hand-cnn"' in capsys.readouterr().out
    study = optuna.load_study(study_name="s", storage=url)
    first = study.trials[0]
    assert first.user_attrs["warm_start"] == "hand-cnn"
    assert first.params == HAND["params"]
    assert _run(data, url, 2) == 0  # resumed: the sampler draws the second trial
    trials = optuna.load_study(study_name="s", storage=url).trials
    assert len(trials) == 2 and "warm_start" not in trials[1].user_attrs
    out = capsys.readouterr().out
    assert "warm start" not in out.split("study 's'")[0]  # nothing enqueued on resume
    assert main(["report", "--storage", url, "--study", "s", "--out", str(tmp_path / "r")]) == 0
    assert "warm start: hand-cnn" in capsys.readouterr().out


def test_no_warm_start_and_a_pinned_batch_size(tmp_path):
    data = make_folder(tmp_path / "xray", per_class=10, size=24)
    url = f"sqlite:///{tmp_path / 's.db'}"
    assert _run(data, url, 1, "--no-warm-start") == 0
    assert "warm_start" not in optuna.load_study(study_name="s", storage=url).trials[0].user_attrs
    url2 = f"sqlite:///{tmp_path / 's2.db'}"
    assert _run(data, url2, 1, "--batch-size", "64") == 0
    first = optuna.load_study(study_name="s", storage=url2).trials[0]
    assert first.user_attrs["warm_start"] == "hand-cnn" and first.params["batch_size"] == 64  # the run's pin wins


def test_a_user_space_with_a_bad_warm_start_is_one_line(tmp_path, capsys):
    space = tmp_path / "mine.py"
    space.write_text(
        "from spaces import get_space\n"
        "_cnn = get_space('cnn')\n"
        "build, fit_options, suggest = _cnn.build, _cnn.fit_options, _cnn.suggest\n"
        "WARM_STARTS = [{'name': 'typo', 'params': {**_cnn.warm_starts[0]['params'], 'learning_rate': 3.0}}]\n"
    )
    data = make_folder(tmp_path / "xray", per_class=6, size=24)
    url = f"sqlite:///{tmp_path / 's.db'}"
    assert _run(data, url, 1, "--space", str(space)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "warm start 'typo'" in err[0] and "learning_rate=3.0" in err[0]
    assert not optuna.get_all_study_summaries(url)  # nothing stored


@pytest.mark.parametrize("classes, disease", [(("NORMAL", "PNEUMONIA"), "PNEUMONIA"), (("Covid", "Normal"), "Covid")])
def test_auc_is_right_way_up_in_search_export_and_test_for_both_class_orders(tmp_path, capsys, classes, disease):
    data = make_folder(tmp_path / "xray", classes=classes, per_class=24, size=24, disease=disease)
    url = f"sqlite:///{tmp_path / 's.db'}"
    assert main(["run", "--data", str(data), "--trials", "1", "--epochs", "4", "--image-size", "24", "--val-fraction", "0.3",
                 "--storage", url, "--study", "s", "--recycle", "0"]) == 0
    trial = optuna.load_study(study_name="s", storage=url).trials[0]
    dest = tmp_path / "out" / "model.keras"
    assert main(["best", "--storage", url, "--study", "s", "--export", str(dest), "--bootstrap", "50"]) == 0
    meta = json.loads((tmp_path / "out" / "model.json").read_text())
    ev = json.loads((tmp_path / "out" / "evaluation.json").read_text())
    assert meta["class_names"][meta["decision"]["positive"]] == disease
    # the export's validation AUC is the search's own figure, not 1 - it
    assert ev["validation"]["metrics"]["roc_auc"]["value"] == pytest.approx(trial.user_attrs["val_auc"], abs=1e-6)
    # the blob marks the disease class, and the hand CNN learns it: an inverted AUC would sit far below 0.5
    assert ev["test"]["metrics"]["roc_auc"]["value"] > 0.75


@pytest.mark.parametrize("reason, again", [("interrupted (Ctrl-C or SIGTERM)", True), ("ValueError: a bug", False)])
def test_a_warm_start_stopped_by_ctrl_c_runs_again_on_resume(tmp_path, capsys, reason, again):
    """The study as Ctrl-C left it: the warm start FAIL with its reason; the printed resume command runs it after all."""
    from search.loop import REASON_ATTR

    data = make_folder(tmp_path / "xray", per_class=10, size=24)
    url = f"sqlite:///{tmp_path / 's.db'}"
    study = optuna.create_study(storage=url, study_name="s", direction="maximize")
    study.enqueue_trial(HAND["params"], user_attrs={"warm_start": HAND["name"]})
    trial = study.ask()
    trial.set_user_attr(REASON_ATTR, reason)
    study.tell(trial, state=optuna.trial.TrialState.FAIL)
    assert _run(data, url, 1) == 0
    out = capsys.readouterr().out
    assert ("running again 'hand-cnn', interrupted in an earlier run" in out) is again
    finished = [t for t in optuna.load_study(study_name="s", storage=url).trials if t.state != optuna.trial.TrialState.FAIL]
    assert len(finished) == 1
    assert (finished[0].user_attrs.get("warm_start") == "hand-cnn") is again
    if again:
        assert finished[0].params == HAND["params"]


@pytest.fixture(scope="module")
def base_study(tmp_path_factory):
    """A one-trial study made from <root>/a with ``--data base``, once for the module: (storage url, root).

    The tests below resume it without adding a trial or are refused, so they can share it."""
    root = tmp_path_factory.mktemp("resume")
    make_folder(root / "a" / "base", per_class=8, size=24)
    make_folder(root / "b" / "base", per_class=8, size=24, seed=1)  # same name, same counts, other images
    url = f"sqlite:///{root / 's.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root / "a")
        assert main([*RUN, "--data", "base", "--trials", "1", "--storage", url]) == 0
    return url, root


@pytest.fixture
def made(base_study, monkeypatch):
    """The module's study, from <root>/a as it was made: (storage url, root)."""
    monkeypatch.chdir(base_study[1] / "a")
    return base_study


@pytest.mark.parametrize("given", ["base/", "ABS", "../a/base"])
def test_the_same_folder_by_another_path_resumes(made, capsys, given):
    url, tmp_path = made
    capsys.readouterr()
    data = str(tmp_path / "a" / "base") if given == "ABS" else given
    assert main([*RUN, "--data", data, "--trials", "1", "--storage", url]) == 0
    assert "already has 1 finished trials" in capsys.readouterr().out


def test_a_copy_of_the_folder_elsewhere_resumes(made, capsys):
    url, tmp_path = made
    shutil.copytree(tmp_path / "a" / "base", tmp_path / "copy")
    assert main([*RUN, "--data", str(tmp_path / "copy"), "--trials", "1", "--storage", url]) == 0


def test_another_folder_of_the_same_name_is_refused_and_nothing_is_stored(made, monkeypatch, capsys):
    url, tmp_path = made
    monkeypatch.chdir(tmp_path / "b")
    before = len(optuna.load_study(study_name="s", storage=url).trials)
    assert main([*RUN, "--data", "base", "--trials", "3", "--storage", url]) == 2
    err = capsys.readouterr().err
    assert "is another folder" in err and "new --study" in err and len(err.strip().splitlines()) == 1
    assert len(optuna.load_study(study_name="s", storage=url).trials) == before


def test_the_same_folder_with_changed_images_is_refused(made, capsys):
    url, tmp_path = made
    victim = next((tmp_path / "a" / "base" / "train" / "NORMAL").iterdir())
    saved = victim.read_bytes()
    victim.unlink()
    try:
        assert main([*RUN, "--data", "base", "--trials", "3", "--storage", url]) == 2
    finally:
        victim.write_bytes(saved)  # the folder as the study knows it, for the tests that share it
    err = capsys.readouterr().err
    assert "whose images changed" in err and "train 16 then, 15 now" in err


def test_a_timeout_before_any_trial_finished_says_so_not_that_trials_failed(tmp_path, capsys):
    data = make_folder(tmp_path / "xray", per_class=16, size=24)
    url = f"sqlite:///{tmp_path / 's.db'}"
    assert main(["run", "--data", str(data), "--trials", "30", "--epochs", "1", "--image-size", "24", "--timeout", "0.01",
                 "--storage", url, "--study", "tiny", "--quiet"]) == 0
    captured = capsys.readouterr()
    assert "ran out before any trial finished" in captured.err and "pruned or failed" not in captured.out

