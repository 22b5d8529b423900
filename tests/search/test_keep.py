"""The model keeper: the top-k trials by the objective and the accuracy/time front keep their models; the rest go.

report and best say "model kept" only where the file is on disk, and say plainly when a database came without its models.
"""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import optuna
import pytest

from lungsearch import report
from lungsearch.cli import main
from search.keep import ModelKeeper, model_file, models_missing, why_no_model

optuna.logging.set_verbosity(optuna.logging.WARNING)
EXAMPLE = Path(__file__).resolve().parents[2] / "studies.db.example"


class _Model:
    def save(self, path):
        with open(path, "wb") as fh:
            fh.write(b"model")


def _study_with(keeper, values):
    """Trials whose value is their accuracy; the best is also the fastest, so it alone is the front."""
    study = optuna.create_study(direction="maximize")
    for value in values:
        trial = study.ask()
        trial.set_user_attr("val_accuracy", value)
        trial.set_user_attr("train_seconds", 100.0 if value < max(values) else 1.0)
        if keeper.worth_keeping(study, value, value, trial.user_attrs["train_seconds"]):
            keeper.save(trial, _Model())
        study.tell(trial, value)
        keeper(study, study.trials[-1])
    return study


def test_the_top_three_keep_their_models_and_the_rest_are_deleted(tmp_path):
    keeper = ModelKeeper(str(tmp_path / "models"), keep_top=3)
    study = _study_with(keeper, [0.5, 0.9, 0.8, 0.7, 0.6])
    kept = [t.number for t in study.trials if keeper.has_model(t)]
    assert kept == [1, 2, 3]  # 0.9, 0.8, 0.7; 0.5 went when it fell out, 0.6 was never saved
    assert "model_artifact" not in study.trials[4].user_attrs


def test_keep_top_one_is_the_best_and_the_front_only(tmp_path):
    keeper = ModelKeeper(str(tmp_path / "models"), keep_top=1)
    study = _study_with(keeper, [0.5, 0.9, 0.8])
    assert [t.number for t in study.trials if keeper.has_model(t)] == [1]


@pytest.fixture
def example(tmp_path):
    """A copy of the shipped example study: results only, its models' folder is not on this machine."""
    shutil.copy(EXAMPLE, tmp_path / "studies.db.example")
    return f"sqlite:///{tmp_path / 'studies.db.example'}"


def _study(url):
    return optuna.load_study(study_name="efficientnet-lite0-chest_xray", storage=url)  # as bench.example_study makes it


def test_the_example_database_has_no_model_and_report_says_so(example, tmp_path):
    study = _study(example)
    assert models_missing(study) and not any(model_file(study, t) for t in study.trials)
    stream = io.StringIO()
    report.write_report(study, str(tmp_path / "rep"), stream=stream, storage=example)
    text = stream.getvalue()
    assert "model kept" not in text
    assert "this database came without its models" in text and "--retrain" in text and f"--storage {example}" in text
    assert not report.trials_frame(study)["kept_model"].any()


def test_best_says_the_database_came_without_models_not_that_the_best_trial_was_not_kept(example, tmp_path, capsys):
    assert main(["best", "--storage", example, "--export", str(tmp_path / "m.keras")]) == 2
    err = capsys.readouterr().err
    assert "trial 3" in err and "came without its models" in err and "--retrain" in err
    assert "only best and Pareto-front" not in err and len(err.strip().splitlines()) == 1


def test_a_model_deleted_by_the_keeper_is_not_reported_as_kept(tmp_path):
    folder = tmp_path / "models"
    folder.mkdir()
    study = optuna.create_study(direction="maximize")
    study.set_user_attr("artifacts", str(folder))
    for number, value in enumerate((0.9, 0.8, 0.7)):
        study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.COMPLETE, value=value,
                                                  user_attrs={"model_artifact": f"m{number}"} if number < 2 else {}))
    (folder / "m0").write_bytes(b"model")  # trial 1's file was deleted when trial 0 dominated it
    best, deleted, never = study.trials
    assert model_file(study, best) == str(folder / "m0") and model_file(study, deleted) is None
    assert report.trials_frame(study)["kept_model"].tolist() == [True, False, False]
    assert "no longer kept" in why_no_model(study, deleted) and "was not kept" in why_no_model(study, never)
    assert not models_missing(study)
