"""What evaluation files claim: an interval where the bootstrap collapses, which accuracy is which, the kept epoch."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import optuna
import pytest

from lungsearch import evaluate, export, train
from lungsearch.evaluate import plots as evaluate_plots

NAMES = ("NORMAL", "PNEUMONIA")


def test_wilson_interval_matches_the_textbook_values():
    assert evaluate.wilson_interval(0, 10) == pytest.approx([0.0, 0.2775], abs=1e-4)
    assert evaluate.wilson_interval(10, 10) == pytest.approx([0.7225, 1.0], abs=1e-4)
    assert evaluate.wilson_interval(5, 10) == pytest.approx([0.2366, 0.7634], abs=1e-4)


def _everything_positive():
    """10 NORMAL and 20 PNEUMONIA images, all called PNEUMONIA: specificity 0/10, sensitivity 20/20."""
    y = np.array([0] * 10 + [1] * 20)
    p = np.linspace(0.6, 0.95, 30)
    return y, np.stack([1 - p, p], axis=1)


def test_a_proportion_of_0_or_n_gets_a_wilson_interval_and_says_so():
    y, probs = _everything_positive()
    ev = evaluate.evaluate(y, probs, NAMES, threshold=0.5, positive=1, n_bootstrap=50)
    m = ev["metrics"]
    assert m["specificity"]["value"] == 0.0 and m["specificity"]["ci_method"] == "wilson"
    assert m["specificity"]["ci95"] == pytest.approx([0.0, 0.2775], abs=1e-4)  # the bootstrap said 0.000-0.000
    assert m["sensitivity"]["ci_method"] == "wilson" and m["sensitivity"]["ci95"][0] < 1.0
    assert m["accuracy"]["ci_method"] == "bootstrap"  # 20/30: the bootstrap has spread
    assert m["roc_auc"]["ci_method"] == "bootstrap"
    assert "specificity 0.000 [0.000, 0.278] (Wilson)" in evaluate.summary_line(ev)


def test_markdown_says_which_interval_and_which_validation_accuracy():
    y, probs = _everything_positive()
    test = evaluate.evaluate(y, probs, NAMES, threshold=0.5, positive=1, n_bootstrap=50)
    text = evaluate.markdown({"trial": 0, "study": "s", "class_names": list(NAMES), "test": test, "validation": test,
                              "decision": {"threshold": 0.5, "positive": 1, "rule": "max Youden's J on validation"}})
    assert "Wilson score intervals (marked W) for" in text and "| specificity | 0.0000 | 0.0000 - 0.2775 (W) |" in text
    assert "| metric | test | 95% CI | validation (at this threshold) |" in text
    assert "val_acc is the search's, at argmax" in text


def test_training_curves_show_the_objective_and_mark_the_kept_epoch(tmp_path, monkeypatch):
    figures = []
    monkeypatch.setattr(evaluate_plots, "_save", lambda fig, path: figures.append(fig) or path)  # where training_curves_png looks it up
    history = {"loss": [0.7, 0.5, 0.4], "val_loss": [0.6, 0.5, 0.55], "accuracy": [0.6, 0.7, 0.8],
               "val_accuracy": [0.6, 0.75, 0.7], "val_auc": [0.7, 0.9, 0.85]}
    assert evaluate.training_curves_png(history, str(tmp_path / "c.png"), trial=3, objective="val_auc", kept_epoch=2)
    axes = figures[0].axes
    assert [ax.get_ylabel() for ax in axes] == ["loss", "accuracy", "auc"]
    assert axes[2].get_title() == "val_auc: the objective"
    for ax in axes:
        assert any(list(line.get_xdata()) == [2, 2] and line.get_label() == "kept: epoch 2" for line in ax.lines)
    assert "weights of epoch 2" in figures[0]._suptitle.get_text()


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
