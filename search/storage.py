"""Open the one place results live: an Optuna storage, and its model files.

Every storage URL Optuna accepts works (``sqlite:///``, ``postgresql+psycopg://``,
``mysql+pymysql://``...), plus ``journal:///path/to/file.log`` for Optuna's
journal file storage.  Heartbeats are on for every RDB storage, so a trial whose
worker died (kill -9, a lost machine) becomes FAIL once its heartbeat is older
than the grace period, and is queued again with the same parameters.

SQLite is opened in WAL mode with a busy timeout: readers (the dashboard,
``report``) never block the writing workers, and writers wait for each other
instead of failing with "database is locked".
"""

from __future__ import annotations

import os
import warnings

import optuna

HEARTBEAT_SECONDS = 30  # how often a running trial says it is alive; stale after 2x this
SQLITE_BUSY_MS = 60_000  # how long a SQLite writer waits for the lock before giving up
JOURNAL_SCHEME = "journal:///"


class StorageError(ValueError):
    """A storage URL that cannot be opened, or a study that is not in it."""

    user_error = True  # the CLI prints it on one line and exits 2


def _sqlite_path(url: str) -> str | None:
    if not url.startswith("sqlite:///"):
        return None
    path = url[len("sqlite:///"):]
    return path if path and path != ":memory:" else None


def _journal_path(url: str) -> str | None:
    return url[len(JOURNAL_SCHEME):] if url.startswith(JOURNAL_SCHEME) else None


def _local_file(url: str) -> str | None:
    return _sqlite_path(url) or _journal_path(url)


def _sqlite_engine_kwargs() -> dict:
    from sqlalchemy.pool import NullPool

    # NullPool: a new connection per session, so every connection passes through
    # the "connect" hook of _enable_wal (a pooled one opened while Optuna creates
    # its tables, before the hook exists, would keep the rollback journal).
    return {"connect_args": {"timeout": SQLITE_BUSY_MS / 1000}, "poolclass": NullPool}


def _enable_wal(storage: optuna.storages.RDBStorage) -> None:
    """WAL journal and busy timeout on every SQLite connection the storage opens."""
    from sqlalchemy import event

    @event.listens_for(storage.engine, "connect")
    def _pragmas(dbapi_connection, _record):  # runs for each new connection
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")  # persistent in the file once set
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")  # safe with WAL; a commit no longer waits for fsync
        cursor.close()

    with storage.engine.connect():  # switch the file to WAL now, before any worker writes
        pass


def open_storage(
    url: str,
    *,
    must_exist: bool = False,
    heartbeat: int | None = HEARTBEAT_SECONDS,
) -> optuna.storages.BaseStorage:
    """The storage for ``url``; ``must_exist`` refuses to create a new local file.

    ``heartbeat`` (seconds, None for off) turns on Optuna's trial heartbeat for
    RDB storages, with stale trials failed and retried with the same parameters.
    """
    if "://" not in url:
        raise StorageError(
            f"storage {url!r} is not a URL; use e.g. sqlite:///studies.db, journal:///studies.log "
            "or postgresql+psycopg://user@host/db"
        )
    path = _local_file(url)
    if path is not None:
        if must_exist and not os.path.isfile(path):
            raise StorageError(f"no study database at {path}; run `lungsearch run` first or pass --storage")
        folder = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(folder):
            raise StorageError(f"folder {folder} of storage {url} does not exist; create it or pass another --storage")
    if _journal_path(url) is not None:
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        return JournalStorage(JournalFileBackend(os.path.abspath(path)))
    sqlite = url.startswith("sqlite://")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            beat = {}
            if heartbeat:
                beat = {
                    "heartbeat_interval": int(heartbeat),
                    "grace_period": 2 * int(heartbeat),
                    # a dead worker's trial is queued again with the same params (up to 3 times)
                    "heartbeat_stale_trial_callback": optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=3),
                }
            storage = optuna.storages.RDBStorage(url, engine_kwargs=_sqlite_engine_kwargs() if sqlite else {}, **beat)
        if sqlite:
            _enable_wal(storage)
        return storage
    except Exception as exc:  # sqlalchemy raises many kinds for a bad URL or an unreachable server
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StorageError(f"cannot open storage {url}: {reason}") from exc


def default_artifact_dir(url: str) -> str:
    """Where trained models of a study live: beside a local storage file, else in the working folder."""
    path = _local_file(url)
    if path is not None:
        stem = os.path.splitext(os.path.abspath(path))[0]
        return stem + ".artifacts"
    return os.path.abspath("lungsearch-artifacts")


def study_names(storage: optuna.storages.BaseStorage) -> list[str]:
    return [s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)]


def load_study(storage: optuna.storages.BaseStorage, name: str | None) -> optuna.Study:
    """A stored study by name; with no name, the only (or newest) study."""
    names = study_names(storage)
    if not names:
        raise StorageError("the storage holds no study yet; run `lungsearch run` first")
    if name is None:
        name = names[-1]
    elif name not in names:
        raise StorageError(f"no study named {name!r}; the storage has: {', '.join(names)}")
    return optuna.load_study(study_name=name, storage=storage)
