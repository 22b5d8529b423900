"""`lungsearch spaces`, and `run` with a user space file end to end, bad space files and weights files."""

from __future__ import annotations

import json
import os
from types import SimpleNamespace

import optuna
import pytest

from lungsearch.cli import main
from tests.conftest import make_folder

USER_SPACE = '''
"""A tiny user space: one conv layer."""
NAME = "tiny"
IMAGE_SIZE = 24


def suggest(trial):
    return {"filters": trial.suggest_int("filters", 2, 4), "lr": trial.suggest_float("lr", 1e-3, 1e-2, log=True)}


def fit_options(trial):
    return {"batch_size": 8}


def build(trial, *, input_shape, num_classes, **_):
    import keras
    p = suggest(trial)
    inputs = keras.Input(shape=input_shape)
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Conv2D(p["filters"], 3, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(num_classes, activation="softmax")(x))
    model.compile(keras.optimizers.Adam(p["lr"]), "sparse_categorical_crossentropy")
    return model
'''


@pytest.fixture
def run(capsys):
    """``lungsearch ARGS`` in this process, as (returncode, stdout, stderr): one TensorFlow start for the whole
    file instead of one per call (tests/test_cli_e2e.py drives the real executable)."""
    def call(*args):
        code = main(list(args))
        out, err = capsys.readouterr()
        return SimpleNamespace(returncode=code, stdout=out, stderr=err)

    return call


def test_spaces_lists_every_space_with_parameters(run):
    proc = run("spaces")
    assert proc.returncode == 0, proc.stderr
    heads = [line.split()[0] for line in proc.stdout.splitlines() if not line.startswith(" ")]
    assert heads == ["dense", "cnn", "mobilenet", "densenet121", "vgg19", "efficientnet", "efficientnet-lite0", "efficientnet-lite1",
                     "efficientnet-lite2"]
    assert "(224 px grayscale)" in proc.stdout and "trainable_blocks     int 0..3" in proc.stdout
    described = json.loads(run("spaces", "cnn", "--json").stdout)
    assert described["cnn"]["parameters"]["conv_blocks"] == "int 1..5" and described["cnn"]["image_size"] == 64


def test_user_space_file_runs_a_one_trial_study(tmp_path, run):
    data = make_folder(tmp_path / "xray", per_class=12, size=24)
    space = tmp_path / "my_space.py"
    space.write_text(USER_SPACE)
    db = tmp_path / "s.db"
    proc = run("run", "--data", str(data), "--space", str(space), "--trials", "1", "--epochs", "1",
                "--image-size", "24", "--storage", f"sqlite:///{db}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert run("spaces", str(space)).stdout.splitlines()[1].split() == ["filters", "int", "2..4"]
    study = optuna.load_study(study_name="my_space-xray", storage=f"sqlite:///{db}")
    trial = study.trials[0]
    assert trial.state == optuna.trial.TrialState.COMPLETE
    assert set(trial.params) == {"filters", "lr"} and trial.user_attrs["param_count"] > 0
    assert study.user_attrs["space"]["source"] == str(space)


def test_a_resumed_study_does_not_replay_the_first_trials(tmp_path, run):
    """A second run (or a recycled worker) seeded as the first would draw the first trials' parameters again."""
    data = make_folder(tmp_path / "xray", per_class=12, size=24)
    space = tmp_path / "my_space.py"
    space.write_text(USER_SPACE)
    url = f"sqlite:///{tmp_path / 's.db'}"
    for total in ("2", "4"):
        proc = run("run", "--data", str(data), "--space", str(space), "--trials", total, "--epochs", "1",
                    "--image-size", "24", "--sampler", "random", "--storage", url)
        assert proc.returncode == 0, proc.stderr[-2000:]
    lrs = [t.params["lr"] for t in optuna.load_study(study_name="my_space-xray", storage=url).trials]
    assert len(lrs) == 4 and len(set(lrs)) == 4


@pytest.mark.parametrize("content, problem", [
    (None, "does not exist"),
    ("NAME = 'x'\n", "defines no build"),
    ("def build(trial, *, input_shape, num_classes, **_):\n    raise RuntimeError('my bug')\n",
     "raised while building: RuntimeError: my bug"),
    ("import nonexistent_module_xyz\n", "failed to import: ModuleNotFoundError"),
    # a model a trial could not fit: found by the one build before anything is stored, not by three FAIL trials
    ("def build(trial, *, input_shape, num_classes, **_):\n    trial.suggest_int('n', 1, 2)\n", "build() returned None"),
    (USER_SPACE.replace('    model.compile(keras.optimizers.Adam(p["lr"]), "sparse_categorical_crossentropy")\n', ""), "not compiled"),
    (USER_SPACE.replace("Dense(num_classes,", "Dense(num_classes + 1,"), "a model with 3 outputs for 2 classes"),
])
def test_bad_space_file_is_one_line_and_exit_2(tmp_path, content, problem, run):
    data = make_folder(tmp_path / "xray", per_class=12, size=24)
    space = tmp_path / "bad_space.py"
    if content is not None:
        space.write_text(content)
    db = tmp_path / "s.db"
    proc = run("run", "--data", str(data), "--space", str(space), "--trials", "1", "--epochs", "1",
                "--image-size", "24", "--storage", f"sqlite:///{db}")
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lungsearch: error: ") and "Traceback" not in proc.stderr
    assert str(space) in lines[0] or os.path.basename(space) in lines[0]
    assert problem in lines[0]
    if db.exists():  # nothing half-made: no study was created
        assert optuna.get_all_study_summaries(f"sqlite:///{db}") == []


def test_missing_weights_file_is_one_line_and_exit_2(tmp_path, run):
    data = make_folder(tmp_path / "xray", per_class=12, size=24)
    proc = run("run", "--data", str(data), "--space", "mobilenet", "--weights", str(tmp_path / "none.h5"),
                "--trials", "1", "--storage", f"sqlite:///{tmp_path / 's.db'}")
    assert proc.returncode == 2 and proc.stderr.startswith("lungsearch: error: weights file")


def test_run_says_once_when_a_backbone_needs_the_network_for_its_weights(tmp_path, run):
    empty = tmp_path / "empty"  # fails right after the note: no class folders
    empty.mkdir()
    proc = run("run", "--data", str(empty), "--space", "vgg19", "--storage", f"sqlite:///{tmp_path / 's.db'}")
    assert proc.returncode == 2
    notes = [line for line in proc.stderr.splitlines() if line.startswith("note: ")]
    assert len(notes) == 1 and notes[0].startswith("note: vgg19: ImageNet weights need the network")
    assert "--weights PATH" in notes[0] and "--space efficientnet-lite0" in notes[0]
    for flags in (["--space", "vgg19", "--weights", "random"], ["--space", "efficientnet-lite0"]):  # no note: nothing to fetch
        proc = run("run", "--data", str(empty), *flags, "--storage", f"sqlite:///{tmp_path / 's.db'}")
        assert proc.returncode == 2 and "note:" not in proc.stderr


class _RunsACommand:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_weights_file_that_would_run_code_is_refused_in_one_line(tmp_path, run):
    import pickle

    data = make_folder(tmp_path / "xray", per_class=12, size=32)
    marker = tmp_path / "ran"
    evil = tmp_path / "evil.pth"
    evil.write_bytes(pickle.dumps(_RunsACommand(marker), protocol=2))
    db = tmp_path / "s.db"
    proc = run("run", "--data", str(data), "--space", "efficientnet-lite0", "--weights", str(evil), "--image-size", "32",
                "--trials", "1", "--epochs", "1", "--storage", f"sqlite:///{db}")
    assert proc.returncode == 2, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("lungsearch: error:")]  # TensorFlow logs aside
    assert len(errors) == 1 and errors[0].startswith("lungsearch: error: refused to read") and "system" in errors[0]
    assert "Traceback" not in proc.stderr and not marker.exists()
    assert all(s.n_trials == 0 for s in optuna.get_all_study_summaries(f"sqlite:///{db}")) if db.exists() else True
