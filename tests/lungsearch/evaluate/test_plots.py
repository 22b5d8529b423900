"""The PNGs of an evaluation: training curves that show the objective and mark the kept epoch."""

from __future__ import annotations

from lungsearch import evaluate
from lungsearch.evaluate import plots as evaluate_plots


def test_training_curves_show_the_objective_and_mark_the_kept_epoch(tmp_path, monkeypatch):
    figures = []
    monkeypatch.setattr(evaluate_plots, "save_figure", lambda fig, path: figures.append(fig) or path)  # where training_curves_png looks it up
    history = {"loss": [0.7, 0.5, 0.4], "val_loss": [0.6, 0.5, 0.55], "accuracy": [0.6, 0.7, 0.8],
               "val_accuracy": [0.6, 0.75, 0.7], "val_auc": [0.7, 0.9, 0.85]}
    assert evaluate.training_curves_png(history, str(tmp_path / "c.png"), trial=3, objective="val_auc", kept_epoch=2)
    axes = figures[0].axes
    assert [ax.get_ylabel() for ax in axes] == ["loss", "accuracy", "auc"]
    assert axes[2].get_title() == "val_auc: the objective"
    for ax in axes:
        assert any(list(line.get_xdata()) == [2, 2] and line.get_label() == "kept: epoch 2" for line in ax.lines)
    assert "weights of epoch 2" in figures[0].get_suptitle()
