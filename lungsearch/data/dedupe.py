"""Byte-identical files: hashed, never decoded (so test files can be compared without being read as images)."""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor

from lungsearch.data.decoding import thread_count


def hash_files(paths: list[str]) -> list[str | None]:
    """SHA-1 of each file's bytes (None where unreadable); no decoding.

    The same digest as ``Decoded.sha1`` (:func:`~lungsearch.data.decoding._read_one`): ``--dedupe`` compares the two.
    """
    def one(path):
        try:
            with open(path, "rb") as fh:
                return hashlib.sha1(fh.read()).hexdigest()
        except OSError:
            return None

    with ThreadPoolExecutor(max_workers=thread_count()) as pool:
        return list(pool.map(one, paths))


def duplicate_sets(hashes: list[str | None]) -> list[list[int]]:
    """Indices of byte-identical files, one list per content seen more than once."""
    by_hash: dict[str, list[int]] = {}
    for i, h in enumerate(hashes):
        if h is not None:
            by_hash.setdefault(h, []).append(i)
    return [idx for idx in by_hash.values() if len(idx) > 1]
