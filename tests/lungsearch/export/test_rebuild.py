"""A trial retrained for an export is trained as the search trained it: the same kept epoch, the same facts."""

from __future__ import annotations

from types import SimpleNamespace

import optuna

from lungsearch import export, train

NAMES = ("NORMAL", "PNEUMONIA")


def test_retrain_restores_the_best_epoch_of_the_search_objective(monkeypatch):
    import spaces

    seen = {}

    def fit(model, data, **kwargs):
        seen.update(kwargs)
        return SimpleNamespace(history={}, final=0)

    monkeypatch.setattr(train, "fit", fit)
    study = optuna.create_study()
    study.set_user_attr("config", {"metric": "val_auc", "epochs": 1})
    study.set_user_attr("space", {"name": "cnn", "source": "cnn"})
    trial = SimpleNamespace(number=0, params=spaces.get_space("cnn").warm_starts[0]["params"], user_attrs={})
    export.retrain(study, trial, SimpleNamespace(input_shape=(24, 24, 1), class_names=NAMES))
    assert seen["monitor"] == "val_auc"  # as the search fit it: the kept epoch is the best val_auc, not val_loss


def test_retrain_builds_with_the_facts_the_search_used(monkeypatch):
    import dataclasses

    import spaces

    built = {}
    space = spaces.get_space("cnn")

    def build(trial, **facts):
        built.update(facts)
        return space.build(trial, input_shape=facts["input_shape"], num_classes=facts["num_classes"])

    monkeypatch.setattr(train, "fit", lambda model, data, **kw: SimpleNamespace(history={}, final=0))
    monkeypatch.setattr(spaces, "get_space", lambda ref: dataclasses.replace(space, build=build))
    study = optuna.create_study()
    study.set_user_attr("config", {"metric": "val_auc", "epochs": 1, "weights": "random", "hflip": True, "cache_dir": "/c"})
    study.set_user_attr("space", {"name": "cnn", "source": "cnn"})
    trial = SimpleNamespace(number=0, params=space.warm_starts[0]["params"], user_attrs={})
    export.retrain(study, trial, SimpleNamespace(input_shape=(24, 24, 1), class_names=NAMES))
    assert (built["weights"], built["hflip"], built["cache_dir"]) == ("random", True, "/c")  # --weights random retrains from random
