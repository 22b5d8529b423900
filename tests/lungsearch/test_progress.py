"""What `run` prints while trials train: start lines, epoch lines (or a bar), finished lines with elapsed and ETA."""

from __future__ import annotations

import io
import re
from types import SimpleNamespace

import numpy as np
import optuna
import pytest

import search
from lungsearch import train
from lungsearch.data import Arrays, SearchData
from lungsearch.progress import Progress, clock, key_params

optuna.logging.set_verbosity(optuna.logging.WARNING)


class _Writes(io.StringIO):
    """A stream that remembers each write call, to check that every line is written whole."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def write(self, text):
        self.calls.append(text)
        return super().write(text)


class _Space:
    name, source = "fake", ""

    def build(self, trial, *, input_shape, num_classes, **_):
        import keras

        trial.suggest_int("filters_b0", 4, 8)
        trial.suggest_int("filters_b1", 4, 8)
        trial.suggest_float("learning_rate", 1e-3, 1e-2, log=True)
        inputs = keras.Input(shape=input_shape)
        return keras.Model(inputs, keras.layers.Dense(num_classes, activation="softmax")(keras.layers.Flatten()(inputs)))

    def fit_options(self, trial):
        return {"batch_size": 4}


def _fit(model, *, on_epoch, batch_size):
    for epoch, auc in enumerate([0.6, 0.8]):
        on_epoch(epoch, {"loss": 0.5 - epoch / 10, "val_auc": auc, "val_accuracy": auc, "val_loss": 0.4})
    return SimpleNamespace(history={}, epochs=2, final_epoch=1)


def _run(progress: Progress, trials: int = 2) -> optuna.Study:
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(0))
    objective = search.Objective(_Space(), input_shape=(4, 4, 1), num_classes=2, fit=_fit, watcher=progress)
    search.run_trials(study, objective, total=trials, callbacks=[progress])
    return study


def test_key_params_groups_blocks_and_keeps_a_plain_parameter_of_the_same_name():
    text = key_params({"conv_blocks": 2, "filters_b0": 32, "filters_b1": 64, "dropout": 0.5, "dropout_b0": 0.0,
                       "dropout_b1": 0.125, "learning_rate": 0.00123, "batch_norm": True})
    assert text == "conv_blocks=2 filters=32/64 dropout=0.5 learning_rate=0.00123 dropout_b=0/0.125 batch_norm=true"
    many = key_params({f"p{i}": i for i in range(12)}, limit=8)
    assert many.endswith("(+4 more)") and many.count("=") == 8


def test_clock():
    assert [clock(s) for s in (4.4, 65, 3725)] == ["4s", "1m05s", "1h02m"]


def test_start_epoch_and_finished_lines_each_written_whole_in_a_pipe():
    stream = _Writes()
    _run(Progress("val_auc", total=2, epochs=2, stream=stream))
    lines = stream.getvalue().splitlines()
    assert re.fullmatch(r"trial 0 started: filters=\d/\d learning_rate=\S+ \(\d+ params\); elapsed \d+s, ETA after the first trial", lines[0])
    assert re.fullmatch(r"  trial 0 epoch 1/2  val_auc=0\.6000  loss=0\.5000  \d+\.\ds", lines[1])
    assert lines[2].startswith("  trial 0 epoch 2/2  val_auc=0.8000")
    assert re.match(r"\[1/2\] trial   0  COMPLETE  val_auc=0\.8000 .* \| elapsed \d+s, ETA \d+s$", lines[3]), lines[3]
    assert lines[4].startswith("trial 1 started:") and "ETA" in lines[4]
    assert lines[-1].startswith("[2/2] trial   1") and "ETA" not in lines[-1]  # done: nothing left to estimate
    assert len(lines) == 8
    # one write per line, whole: lines of several workers sharing a terminal cannot cut into each other
    assert all(call.endswith("\n") and call.count("\n") == 1 for call in stream.calls)


def test_quiet_keeps_only_the_finished_lines_and_workers_prefix_theirs():
    stream = io.StringIO()
    _run(Progress("val_auc", total=2, epochs=2, stream=stream, quiet=True))
    lines = stream.getvalue().splitlines()
    assert [line[:5] for line in lines] == ["[1/2]", "[2/2]"]
    stream = io.StringIO()
    progress = Progress("val_auc", total=2, epochs=2, stream=stream, worker="2/3", workers=3)
    assert not progress.bar  # several processes' bars would overwrite each other
    _run(progress)
    assert all(line.startswith("w2/3 ") for line in stream.getvalue().splitlines())


def test_eta_is_remaining_trials_times_the_recent_mean_over_workers():
    import datetime

    study = optuna.create_study()
    start = datetime.datetime(2026, 1, 1)
    for seconds in (10, 30):
        study.add_trial(optuna.trial.FrozenTrial(
            number=0, trial_id=0, state=optuna.trial.TrialState.COMPLETE, value=0.5, datetime_start=start,
            datetime_complete=start + datetime.timedelta(seconds=seconds), params={}, distributions={}, user_attrs={},
            system_attrs={}, intermediate_values={}))
    assert Progress("v", total=6).eta(study) == pytest.approx(4 * 20)
    assert Progress("v", total=6, workers=2).eta(study) == pytest.approx(2 * 20)
    assert Progress("v", total=2).eta(study) == 0.0
    assert Progress("v", total=3).eta(optuna.create_study()) is None  # no trial finished yet: nothing to go by


def test_a_bar_on_a_terminal_is_closed_before_each_line():
    stream = _Writes()
    progress = Progress("val_auc", total=1, epochs=2, stream=stream, bar=True)
    progress._trial = 0
    for step in range(3):
        progress.batch(0, step, 3)
    assert progress._tqdm is not None and "trial 0 epoch 1/2" in stream.getvalue()
    progress.epoch_ended(SimpleNamespace(number=0), 0, {"val_auc": 0.7, "loss": 0.3}, 1.5)
    assert progress._tqdm is None
    assert stream.calls[-1] == "  trial 0 epoch 1/2  val_auc=0.7000  loss=0.3000  1.5s\n"


def test_fit_calls_the_batch_hook_before_every_training_batch():
    import keras

    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (20, 8, 8, 1)).astype("uint8")
    y = np.array([0, 1] * 10)
    data = SearchData(("NORMAL", "PNEUMONIA"), train=Arrays(x[:12], y[:12]), val=Arrays(x[12:], y[12:]))
    inputs = keras.Input(shape=(8, 8, 1))
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(keras.layers.Flatten()(inputs)))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    calls = []
    train.fit(model, data, epochs=2, batch_size=4, on_batch=lambda e, s, n: calls.append((e, s, n)))
    assert calls == [(0, 0, 3), (0, 1, 3), (0, 2, 3), (1, 0, 3), (1, 1, 3), (1, 2, 3)]


def test_a_transfer_trial_says_which_weights_its_backbone_started_from():
    stream = io.StringIO()
    study = optuna.create_study()
    trial = study.ask()
    trial.set_user_attr("backbone_weights", "imagenet (efficientnet-lite0-57934424.pth)")
    Progress("val_auc", total=1, epochs=1, stream=stream).trial_started(trial, param_count=10)
    assert "backbone weights: imagenet (efficientnet-lite0-57934424.pth)" in stream.getvalue()


def test_a_run_whose_trials_are_all_pruned_says_why_and_report_lists_the_reasons(tmp_path, capsys):
    """--image-size 8: every cnn trial is pruned before it is built; each line, the closing warning and trials.csv say why."""
    import csv

    from lungsearch.cli import main
    from tests.conftest import make_folder

    data = make_folder(tmp_path / "xray", per_class=16, size=24)
    url = f"sqlite:///{tmp_path / 's.db'}"
    assert main(["run", "--data", str(data), "--trials", "2", "--epochs", "1", "--image-size", "8", "--quiet",
                 "--val-fraction", "0.3", "--storage", url]) == 0
    captured = capsys.readouterr()
    assert captured.out.count("PRUNED    (not built: ") == 2
    assert "warning: no trial completed; 2 of 2 not built" in captured.err and "give a larger one" in captured.err
    assert main(["report", "--storage", url, "--out", str(tmp_path / "rep")]) == 0
    with open(tmp_path / "rep" / "trials.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["reason"].split(":")[0] for r in rows] == ["not built", "not built"]
