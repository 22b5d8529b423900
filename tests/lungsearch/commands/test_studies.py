"""`lungsearch studies`: every study of a storage with its trials by state, best value and time."""

from __future__ import annotations

import warnings

import optuna
from optuna.trial import TrialState, create_trial
from optuna.distributions import FloatDistribution

from lungsearch.cli import main


def _study(storage, name, values, states, space="cnn"):
    study = optuna.create_study(storage=storage, study_name=name, direction="maximize")
    study.set_user_attr("space", {"name": space, "source": space})
    study.set_user_attr("config", {"metric": "val_auc"})
    for value, state in zip(values, states):
        study.add_trial(create_trial(
            state=state, value=value if state == TrialState.COMPLETE else None,
            params={"x": 0.5}, distributions={"x": FloatDistribution(0, 1)}, user_attrs={"train_seconds": 30.0},
        ))


def test_lists_every_study(tmp_path, capsys):
    url = f"sqlite:///{tmp_path}/s.db"
    _study(url, "cnn-xray", [0.8, 0.9, None, None], [TrialState.COMPLETE, TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL])
    _study(url, "tiny-covid", [None], [TrialState.FAIL], space="tiny")
    assert main(["studies", "--storage", url]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["study", "space", "complete", "pruned", "fail", "running", "waiting", "best", "train", "time", "refined"]
    assert lines[1].split() == ["cnn-xray", "cnn", "2", "1", "1", "0", "0", "val_auc=0.9000", "(#1)", "2m00s", "-"]
    assert lines[2].split() == ["tiny-covid", "tiny", "0", "0", "1", "0", "0", "-", "0m30s", "-"]


def test_json_and_empty_and_missing(tmp_path, capsys):
    url = f"sqlite:///{tmp_path}/s.db"
    optuna.create_study(storage=url, study_name="empty")
    assert main(["studies", "--storage", url, "--json"]) == 0
    assert '"study": "empty"' in capsys.readouterr().out
    assert main(["studies", "--storage", f"sqlite:///{tmp_path}/none.db"]) == 2
    assert "no study database" in capsys.readouterr().err


def test_the_metric_name_stored_with_the_study_names_the_best_value(tmp_path, capsys):
    url = f"sqlite:///{tmp_path}/s.db"
    study = optuna.create_study(storage=url, study_name="named", direction="maximize")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # chosen on purpose, as `run` does
        study.set_metric_names(["val_accuracy"])  # what `run` stores; optuna-dashboard shows it instead of "Objective 0"
    study.add_trial(create_trial(state=TrialState.COMPLETE, value=0.75, params={"x": 0.5},
                                 distributions={"x": FloatDistribution(0, 1)}))
    assert main(["studies", "--storage", url]) == 0
    assert "val_accuracy=0.7500 (#0)" in capsys.readouterr().out
