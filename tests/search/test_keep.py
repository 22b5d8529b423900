"""The model keeper: the top-k trials by the objective and the accuracy/time front keep their models; the rest go."""

from __future__ import annotations

import optuna

from search.keep import ModelKeeper

optuna.logging.set_verbosity(optuna.logging.WARNING)


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
