"""Every named sampler and pruner builds, seeded, and the CLI offers exactly these names."""

from __future__ import annotations

import optuna
import pytest

from lungsearch.commands.run import PRUNER_NAMES, SAMPLER_NAMES
from search.choices import PRUNERS, SAMPLERS, ChoiceError, make_pruner, make_sampler


def test_cli_names_match_the_tables():
    from lungsearch.config import CHOICES
    from search import METRICS

    assert set(SAMPLERS) == set(SAMPLER_NAMES) and set(PRUNERS) == set(PRUNER_NAMES)
    assert set(METRICS) == set(CHOICES["metric"])


@pytest.mark.parametrize("name", [n for n in SAMPLERS if n != "grid"])
def test_samplers_are_reproducible_from_the_seed(name):
    def params(seed):
        study = optuna.create_study(sampler=make_sampler(name, seed))
        study.optimize(lambda t: t.suggest_float("x", 0, 1) + t.suggest_int("n", 1, 9), n_trials=6)
        return [t.params for t in study.trials]

    assert params(3) == params(3)
    assert params(3) != params(4)


def test_grid_enumerates_a_discrete_space_or_an_explicit_grid():
    study = optuna.create_study(sampler=make_sampler("grid", 0))
    study.optimize(lambda t: t.suggest_int("n", 1, 3) + 0.1 * t.suggest_categorical("c", [0, 1]), n_trials=6)
    assert sorted((t.params["n"], t.params["c"]) for t in study.trials) == [(n, c) for n in (1, 2, 3) for c in (0, 1)]
    explicit = optuna.create_study(sampler=make_sampler("grid", 0, grid={"x": [0.1, 0.5]}))
    explicit.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    assert sorted(t.params["x"] for t in explicit.trials) == [0.1, 0.5]


def test_pinned_params_and_pruners():
    study = optuna.create_study(sampler=make_sampler("tpe", 0, {"n": 4}))
    study.optimize(lambda t: t.suggest_int("n", 1, 9), n_trials=2)
    assert {t.params["n"] for t in study.trials} == {4}
    for name in PRUNERS:
        assert isinstance(make_pruner(name, 0), optuna.pruners.BasePruner)


def test_unknown_names_are_user_errors():
    with pytest.raises(ChoiceError, match="choose one of tpe"):
        make_sampler("bayes", 0)
    with pytest.raises(ChoiceError, match="choose one of median"):
        make_pruner("asha", 0)
