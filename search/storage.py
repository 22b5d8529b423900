"""Open the one place results live: an Optuna storage, and its model files."""

from __future__ import annotations

import os

import optuna


class StorageError(ValueError):
    """A storage URL that cannot be opened, or a study that is not in it."""

    user_error = True  # the CLI prints it on one line and exits 2


def _sqlite_path(url: str) -> str | None:
    if not url.startswith("sqlite:///"):
        return None
    path = url[len("sqlite:///"):]
    return path if path and path != ":memory:" else None


def open_storage(url: str, *, must_exist: bool = False) -> optuna.storages.BaseStorage:
    """An RDB storage for ``url``; ``must_exist`` refuses to create a new SQLite file."""
    if "://" not in url:
        raise StorageError(f"storage {url!r} is not a URL; use e.g. sqlite:///studies.db or postgresql+psycopg://user@host/db")
    path = _sqlite_path(url)
    engine_kwargs = {}
    if path is not None:
        if must_exist and not os.path.isfile(path):
            raise StorageError(f"no study database at {path}; run `lungsearch run` first or pass --storage")
        folder = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(folder):
            raise StorageError(f"folder {folder} of storage {url} does not exist; create it or pass another --storage")
        engine_kwargs = {"connect_args": {"timeout": 60}}  # wait for a busy writer instead of failing
    try:
        return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs)
    except Exception as exc:  # sqlalchemy raises many kinds for a bad URL or an unreachable server
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StorageError(f"cannot open storage {url}: {reason}") from exc


def default_artifact_dir(url: str) -> str:
    """Where trained models of a study live: beside a SQLite file, else in the working folder."""
    path = _sqlite_path(url)
    if path is not None:
        stem = os.path.splitext(os.path.abspath(path))[0]
        return stem + ".artifacts"
    return os.path.abspath("lungsearch-artifacts")


def load_study(storage: optuna.storages.BaseStorage, name: str | None) -> optuna.Study:
    """A stored study by name; with no name, the only (or newest) study."""
    names = [s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)]
    if not names:
        raise StorageError("the storage holds no study yet; run `lungsearch run` first")
    if name is None:
        name = names[-1]
    elif name not in names:
        raise StorageError(f"no study named {name!r}; the storage has: {', '.join(names)}")
    return optuna.load_study(study_name=name, storage=storage)
