"""Storage URLs: SQLite in WAL mode with heartbeats, journal files, clear errors."""

from __future__ import annotations

import sqlite3

import optuna
import pytest

import search
from search.optuna_private import heartbeat_enabled
from search.storage import StorageError


def test_sqlite_is_opened_in_wal_mode_with_heartbeats(tmp_path):
    storage = search.open_storage(f"sqlite:///{tmp_path}/s.db", heartbeat=7)
    optuna.create_study(storage=storage, study_name="s")
    assert sqlite3.connect(tmp_path / "s.db").execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert heartbeat_enabled(storage) and storage.get_heartbeat_interval() == 7
    assert not heartbeat_enabled(search.open_storage(f"sqlite:///{tmp_path}/s.db", heartbeat=None))


def test_journal_file_url(tmp_path):
    storage = search.open_storage(f"journal:///{tmp_path}/studies.log")
    optuna.create_study(storage=storage, study_name="j").optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    again = search.load_study(search.open_storage(f"journal:///{tmp_path}/studies.log", must_exist=True), "j")
    assert len(again.trials) == 2
    assert search.default_artifact_dir(f"journal:///{tmp_path}/studies.log") == f"{tmp_path}/studies.artifacts"


@pytest.mark.parametrize("url, message", [
    ("studies.db", "not a URL"),
    ("sqlite:///{tmp}/missing/s.db", "does not exist"),
    ("journal:///{tmp}/missing/s.log", "does not exist"),
    ("nosuchdb://x", "cannot open storage"),
])
def test_bad_urls_are_user_errors(tmp_path, url, message):
    with pytest.raises(StorageError, match=message) as info:
        search.open_storage(url.format(tmp=tmp_path))
    assert info.value.user_error


def test_must_exist_refuses_to_create(tmp_path):
    with pytest.raises(StorageError, match="no study database"):
        search.open_storage(f"sqlite:///{tmp_path}/none.db", must_exist=True)
    assert not (tmp_path / "none.db").exists()


def test_a_long_reader_does_not_block_writing_workers(tmp_path):
    """What the dashboard does to a live study: hold a read transaction while trials are written."""
    url = f"sqlite:///{tmp_path}/live.db"
    study = optuna.create_study(storage=search.open_storage(url), study_name="live", direction="maximize")
    reader = sqlite3.connect(tmp_path / "live.db")  # it only reads: no lock to wait for, so no timeout to tune
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM trials").fetchone()  # the snapshot stays open
    search.run_trials(study, lambda t: t.suggest_float("x", 0, 1), total=3)
    assert search.count_finished(study) == 3
    reader.rollback()
