"""Every `next:` hint that `run` and `best` print runs as printed, from where it was printed."""

from __future__ import annotations

import shlex

import optuna
import pytest

from lungsearch.cli import main
from tests.conftest import make_folder


def _hints(out: str, prefix: str = "next: ") -> list[list[str]]:
    """The printed hints as argv lists for lungsearch.cli.main (the leading 'lungsearch' dropped)."""
    argvs = [shlex.split(line[len(prefix):]) for line in out.splitlines() if line.startswith(prefix)]
    assert argvs and all(a[0] == "lungsearch" for a in argvs), out
    return [a[1:] for a in argvs]


@pytest.mark.slow
def test_hints_of_run_and_best_run_when_pasted(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # the hints are pasted where they were printed; no studies.db is here
    data = make_folder(tmp_path / "xray", per_class=16, size=24)
    run = ["run", "--data", "xray", "--trials", "2", "--epochs", "1", "--image-size", "24", "--val-fraction", "0.3",
           "--storage", "sqlite:///other.db", "--study", "elsewhere"]
    assert main(run) == 0
    out = capsys.readouterr().out
    hints = _hints(out)
    assert [h[0] for h in hints] == ["report", "best"]
    for hint in hints:
        assert hint[hint.index("--storage") + 1] == "sqlite:///other.db" and hint[hint.index("--study") + 1] == "elsewhere"

    assert main(hints[0]) == 0  # report
    assert main([*hints[1], "--bootstrap", "20"]) == 0  # best (fewer resamples, for speed)
    out = capsys.readouterr().out
    (predict,) = _hints(out)
    assert predict[0] == "predict" and predict[predict.index("--model") + 1] == "model.keras"
    assert str(data / "test" / "PNEUMONIA") in predict[1]
    assert main(predict) == 0
    assert "wrote 1 Grad-CAM overlays to gradcam" in capsys.readouterr().out

    # --trials already reached: said so, nothing trained, and the printed command runs more
    assert main(run) == 0
    out = capsys.readouterr().out
    assert "already has 2 finished trials" in out and "nothing to run" in out and "started" not in out
    more = [shlex.split(line)[1:] for line in out.splitlines() if line.startswith("  lungsearch run ")]
    assert len(more) == 1 and more[0][more[0].index("--trials") + 1] == "4"
    assert [h[0] for h in _hints(out)] == ["report", "best"]
    assert main(more[0]) == 0
    study = optuna.load_study(study_name="elsewhere", storage="sqlite:///other.db")
    assert len(study.trials) == 4
    assert study.metric_names == ["val_auc"]  # stored at creation, so optuna-dashboard names the objective
