"""Drive the real ``lungsearch`` executable end to end, as a user would."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import make_folder

LUNGSEARCH = [sys.executable, "-m", "lungsearch"]


def cli(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([*LUNGSEARCH, *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"lungsearch {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def trial_lines(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if line.startswith("[")]


@pytest.mark.slow
def test_run_report_best_predict(tmp_path: Path) -> None:
    data = make_folder(tmp_path / "xray", per_class=16, size=32)
    storage = f"sqlite:///{tmp_path / 'studies.db'}"
    out = cli("run", "--data", str(data), "--trials", "2", "--epochs", "1", "--image-size", "32",
              "--storage", storage, "--study", "e2e", cwd=tmp_path)
    assert len(trial_lines(out.stdout)) == 2, out.stdout
    assert "best trial #" in out.stdout

    db = sqlite3.connect(tmp_path / "studies.db")
    states = [s for (s,) in db.execute("select state from trials")]
    assert len(states) == 2 and set(states) <= {"COMPLETE", "PRUNED"}
    attrs = {k for (k,) in db.execute("select distinct key from trial_user_attributes")}
    assert {"train_seconds", "epochs", "param_count", "val_accuracy", "val_auc", "val_loss", "history"} <= attrs
    db.close()

    cli("report", "--storage", storage, "--study", "e2e", "--out", str(tmp_path / "rep"), cwd=tmp_path)
    trials = (tmp_path / "rep" / "trials.csv").read_text()
    useful = sum(1 for row in trials.splitlines()[1:] if ",COMPLETE," in row and row.endswith(",False"))  # not degenerate
    # header + at least one point, unless every trial of this tiny search answers like a constant (off the front)
    assert (tmp_path / "rep" / "pareto.csv").read_text().count("\n") >= (2 if useful else 1)
    assert (tmp_path / "rep" / "pareto.png").stat().st_size > 1000

    model = tmp_path / "export" / "model.keras"
    cli("best", "--storage", storage, "--study", "e2e", "--export", str(model), "--bootstrap", "50", cwd=tmp_path)
    meta = json.loads(model.with_suffix(".json").read_text())
    assert meta["class_names"] == ["NORMAL", "PNEUMONIA"]
    assert meta["image_size"] == 32 and meta["color_mode"] == "grayscale"
    assert set(meta["params"]) >= {"conv_blocks", "learning_rate", "optimizer", "batch_size"}
    # best has loaded model.keras in a fresh process that imports only Keras and compared its predictions on raw
    # pixels with those it measured (lungsearch.export.model.check_loads, tested in tests/lungsearch/export/test_model.py):
    # exit 0 above says they agreed.
