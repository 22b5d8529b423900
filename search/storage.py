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


OPTUNA_TABLES = ("studies", "trials", "version_info")  # a file without these is not an Optuna storage


def _check_sqlite_study_file(path: str) -> str:
    """Refuse, without changing it, a file that is not an Optuna SQLite storage; returns the read-only URI to open it by.

    The URI is ``mode=ro``: nothing can be written, and the file's journal mode
    is left as it is.  Where even that cannot open (a WAL file on read-only
    media, whose -shm cannot be made), the file is read as ``immutable``.
    """
    import sqlite3
    from urllib.parse import quote

    stored_by = "give --storage the database `lungsearch run` wrote (sqlite:///studies.db by default)"
    if os.path.getsize(path) == 0:
        raise StorageError(f"{path} is an empty file, not a study database; {stored_by}")
    base = f"file:{quote(os.path.abspath(path))}"
    for uri in (f"{base}?mode=ro", f"{base}?mode=ro&immutable=1"):
        try:
            con = sqlite3.connect(uri, uri=True)
            try:
                tables = {row[0] for row in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            finally:
                con.close()
        except sqlite3.OperationalError as exc:
            if "unable to open" in str(exc):
                continue  # read-only media: try immutable
            raise StorageError(f"cannot read {path}: {exc}") from None
        except sqlite3.DatabaseError as exc:
            raise StorageError(f"{path} is not an SQLite database ({exc}); {stored_by}") from None
        missing = [t for t in OPTUNA_TABLES if t not in tables]
        if missing:
            raise StorageError(f"{path} is not an Optuna study database (it has no {', '.join(missing)} table"
                               f"{'s' if len(missing) > 1 else ''}); {stored_by}")
        return uri
    raise StorageError(f"cannot open {path} even read-only; check that the file and its folder can be read")


def open_storage(
    url: str,
    *,
    must_exist: bool = False,
    heartbeat: int | None = HEARTBEAT_SECONDS,
    read_only: bool = False,
) -> optuna.storages.BaseStorage:
    """The storage for ``url``; ``must_exist`` refuses to create a new local file.

    ``heartbeat`` (seconds, None for off) turns on Optuna's trial heartbeat for
    RDB storages, with stale trials failed and retried with the same parameters.
    ``read_only`` (the commands that only read: report, studies, best): a SQLite
    file must exist and be an Optuna storage, and is opened so that nothing can
    be written to it (no tables added, no switch to WAL); implies ``must_exist``.
    """
    if read_only:
        must_exist, heartbeat = True, None
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
    engine_url = url
    if sqlite and read_only and path is not None:
        engine_url = f"sqlite:///{_check_sqlite_study_file(path)}&uri=true"
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
            storage = optuna.storages.RDBStorage(engine_url, engine_kwargs=_sqlite_engine_kwargs() if sqlite else {}, **beat)
        if sqlite and not read_only:
            _enable_wal(storage)
        return storage
    except Exception as exc:  # sqlalchemy raises many kinds for a bad URL or an unreachable server
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        driver = _missing_driver(url, exc)
        if driver:
            raise StorageError(f"cannot open storage {url}: {driver}") from None
        if read_only and "readonly database" in reason:
            raise StorageError(f"cannot open storage {url} read-only: its schema is from an older Optuna and needs an "
                               "upgrade; run `optuna storage upgrade --storage URL` (or a `lungsearch run` on it) first") from None
        raise StorageError(f"cannot open storage {url}: {reason}") from exc


DRIVERS = {
    "postgresql": ("psycopg", "pip install 'lungsearch[postgres]' and give a postgresql+psycopg:// URL"),
    "mysql": ("pymysql", "pip install pymysql and give a mysql+pymysql:// URL"),
}


def _missing_driver(url: str, exc: BaseException) -> str | None:
    """What to install where ``exc`` says the database driver of ``url`` is not installed."""
    scheme = url.split("://", 1)[0].split("+")[0]
    if scheme not in DRIVERS:
        return None
    chain = [exc, exc.__cause__, exc.__context__]
    if not any(isinstance(e, ImportError) or "install" in str(e).lower() for e in chain if e is not None):
        return None
    module, command = DRIVERS[scheme]
    return f"its driver ({module}) is not installed; {command}"


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
