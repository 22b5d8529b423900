"""Defaults < TOML file < flags, unknown keys rejected, and configs that round-trip."""

from __future__ import annotations

import pytest

from lungsearch.config import ConfigError, RunConfig, as_flags, resolve, write_toml


def test_layers_defaults_file_flags(tmp_path):
    path = tmp_path / "study.toml"
    path.write_text('trials = 50\nsampler = "cmaes"\nworkers = 2\nval-fraction = 0.2\n')
    config = resolve(str(path), trials=7, sampler=None)
    assert config.trials == 7  # the flag wins
    assert config.sampler == "cmaes" and config.workers == 2 and config.val_fraction == 0.2  # the file wins
    assert config.epochs == RunConfig().epochs and config.heartbeat == 30 and config.recycle == 10  # defaults


@pytest.mark.parametrize("text, message", [
    ("trails = 5\n", "unknown config key"),
    ("trials = \n", "not valid TOML"),
    ("workers = 0\n", "--workers"),
    ("trials = 0\n", "--trials"),
    ("batch_size = 0\n", "--batch-size must be at least 1"),
])
def test_bad_files_are_user_errors(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as info:
        resolve(str(path))
    assert info.value.user_error


def test_missing_file():
    with pytest.raises(ConfigError, match="does not exist"):
        resolve("/nonexistent/study.toml")


def test_written_toml_reads_back_to_the_same_config(tmp_path):
    config = RunConfig(data="/data/x ray", study='my "study"', trials=9, workers=3, class_weights=False,
                       val_fraction=0.25, timeout=60.5)
    write_toml(config, tmp_path / "c.toml")
    assert resolve(str(tmp_path / "c.toml")) == config


def test_flags_rebuild_the_config():
    from lungsearch.cli import build_parser
    from lungsearch.commands.run import config_from_args

    config = RunConfig(data="xray", trials=9, sampler="grid", workers=2, class_weights=False, heartbeat=5)
    args = build_parser().parse_args(["run", *as_flags(config)])
    assert config_from_args(args) == config
