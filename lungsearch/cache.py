"""Compute arrays once, keep them on disk, load them memory-mapped.

An entry is a folder ``<cache_dir>/<key>/`` holding one ``.npy`` per array and
``meta.json``.  The key is a fingerprint of everything the arrays depend on
(for decoded images: the file list with sizes and modification times, the
image size and the color mode), so a changed file gives a new key and the
entry is rebuilt.  Entries are written to a temporary folder and renamed into
place, and a lock file serialises builders: when several worker processes
start at once, one decodes and the others wait, then load its result.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from typing import Callable

import numpy as np

from spaces.paths import CACHE_ENV, default_cache_dir  # shared with spaces/, which cannot import lungsearch/

FORMAT = 1  # bump when what an entry holds changes; old entries are then simply not found
ENV = CACHE_ENV


def file_fingerprint(paths: list[str], *extra) -> str:
    """Hex digest of the absolute paths, sizes and modification times of ``paths``, plus ``extra``."""
    digest = hashlib.sha256(f"lungsearch-cache-{FORMAT}|{extra!r}\n".encode())
    for path in paths:
        try:
            st = os.stat(path)
            stamp = f"{st.st_size}|{st.st_mtime_ns}"
        except OSError:  # unreadable now; decoding will skip it, and a repaired file changes the key
            stamp = "unreadable"
        digest.update(f"{path if os.path.isabs(path) else os.path.abspath(path)}|{stamp}\n".encode())
    return digest.hexdigest()[:24]


@dataclass(frozen=True)
class Entry:
    arrays: dict[str, np.ndarray]  # memory-mapped, read-only
    meta: dict
    hit: bool  # True when loaded, False when built by this call
    path: str


Build = Callable[[], tuple[dict[str, np.ndarray], dict]]


def cached(key: str, build: Build, cache_dir: str | None = None, *, group: str | None = None) -> Entry:
    """The entry ``key``, built by ``build()`` on a miss.

    ``group`` names what the entry is a version of (a data folder at one image
    size); building a new entry removes older entries of the same group, so a
    folder whose files change does not fill the disk with stale copies.
    """
    root = os.path.abspath(cache_dir or default_cache_dir())
    os.makedirs(root, exist_ok=True)
    final = os.path.join(root, key)
    entry = _load(final)
    if entry is not None:
        return entry
    with _locked(os.path.join(root, key + ".lock")):
        entry = _load(final)  # another process may have built it while we waited
        if entry is not None:
            return entry
        arrays, meta = build()
        meta = {**meta, "format": FORMAT, "key": key, "group": group}
        tmp = tempfile.mkdtemp(prefix=f".{key}.", dir=root)
        try:
            for name, arr in arrays.items():
                np.save(os.path.join(tmp, name + ".npy"), np.ascontiguousarray(arr), allow_pickle=False)
            with open(os.path.join(tmp, "meta.json"), "w") as fh:
                json.dump({**meta, "arrays": sorted(arrays)}, fh)
            if os.path.isdir(final):  # a damaged entry (we hold the lock, and _load refused it)
                shutil.rmtree(final)
            os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    if group:
        _drop_stale(root, key, group)
    entry = _load(final)
    return Entry(entry.arrays, entry.meta, False, final)


def _load(folder: str) -> Entry | None:
    meta_file = os.path.join(folder, "meta.json")
    if not os.path.isfile(meta_file):
        return None
    try:
        with open(meta_file) as fh:
            meta = json.load(fh)
        if meta.get("format") != FORMAT:
            return None
        arrays = {name: np.load(os.path.join(folder, name + ".npy"), mmap_mode="r") for name in meta["arrays"]}
    except (OSError, ValueError, KeyError):  # a damaged entry is rebuilt, not trusted
        return None
    return Entry(arrays, meta, True, folder)


def _drop_stale(root: str, key: str, group: str) -> None:
    for name in os.listdir(root):
        if name == key or name.startswith("."):
            continue
        meta_file = os.path.join(root, name, "meta.json")
        try:
            with open(meta_file) as fh:
                if json.load(fh).get("group") != group:
                    continue
        except (OSError, ValueError):
            continue
        shutil.rmtree(os.path.join(root, name), ignore_errors=True)  # open memory maps stay valid on POSIX
        with contextlib.suppress(OSError):
            os.remove(os.path.join(root, name + ".lock"))


@contextlib.contextmanager
def _locked(path: str):
    """An exclusive lock between processes (POSIX ``flock``; no lock where unavailable)."""
    try:
        import fcntl
    except ImportError:  # Windows: concurrent builders each build; the rename keeps the entry whole
        yield
        return
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
