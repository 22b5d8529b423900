"""The decode-once cache: hit, miss, invalidation, other processes, stale entries."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np

from lungsearch import cache
from lungsearch.data import decode_cached, load_search_data
from tests.conftest import make_folder, write_image


def _paths(root):
    return sorted(str(p) for p in root.rglob("*.png"))


def test_miss_then_hit_memory_mapped(tmp_path):
    root = make_folder(tmp_path / "xray", per_class=4)
    paths = _paths(root / "train")
    first = decode_cached(paths, 16, "grayscale", cache_dir=str(tmp_path / "c"))
    second = decode_cached(paths, 16, "grayscale", cache_dir=str(tmp_path / "c"))
    assert not first.cache_hit and second.cache_hit
    assert isinstance(second.x, np.memmap)
    np.testing.assert_array_equal(np.asarray(first.x), np.asarray(second.x))
    assert second.fingerprint == first.fingerprint


def test_image_size_and_color_are_part_of_the_key(tmp_path):
    root = make_folder(tmp_path / "xray", per_class=4)
    paths = _paths(root / "train")
    a = decode_cached(paths, 16, "grayscale", cache_dir=str(tmp_path / "c"))
    b = decode_cached(paths, 20, "grayscale", cache_dir=str(tmp_path / "c"))
    c = decode_cached(paths, 16, "rgb", cache_dir=str(tmp_path / "c"))
    assert not b.cache_hit and not c.cache_hit
    assert len({a.fingerprint, b.fingerprint, c.fingerprint}) == 3
    assert b.x.shape[1:] == (20, 20, 1) and c.x.shape[1:] == (16, 16, 3)


def test_changed_file_invalidates_and_stale_entry_is_removed(tmp_path):
    root = make_folder(tmp_path / "xray", per_class=4)
    paths = _paths(root / "train")
    cdir = tmp_path / "c"
    before = decode_cached(paths, 16, "grayscale", cache_dir=str(cdir), group="xray")
    write_image(root / "train" / "NORMAL" / os.path.basename(paths[0]), 1, 24, np.random.default_rng(9))
    os.utime(paths[0], ns=(time.time_ns(), time.time_ns() + 10**9))  # a rewrite within the same mtime tick still counts
    after = decode_cached(paths, 16, "grayscale", cache_dir=str(cdir), group="xray")
    assert not after.cache_hit and after.fingerprint != before.fingerprint
    assert not (cdir / before.fingerprint).exists() and (cdir / after.fingerprint).is_dir()
    assert decode_cached(paths, 16, "grayscale", cache_dir=str(cdir), group="xray").cache_hit


def test_added_file_invalidates(tmp_path):
    root = make_folder(tmp_path / "xray", per_class=8)
    kw = dict(image_size=16, cache_dir=str(tmp_path / "c"), val_fraction=0.25)
    assert not load_search_data(str(root), **kw).info["cache_hit"]
    assert load_search_data(str(root), **kw).info["cache_hit"]
    write_image(root / "train" / "NORMAL" / "person77_new.png", 0, 24, np.random.default_rng(3))
    d = load_search_data(str(root), **kw)
    assert not d.info["cache_hit"] and len(d.train) + len(d.val) == 17


def test_another_process_hits_the_cache(tmp_path):
    root = make_folder(tmp_path / "xray", per_class=8)
    kw = dict(image_size=16, cache_dir=str(tmp_path / "c"), val_fraction=0.25)
    here = load_search_data(str(root), **kw)
    code = (
        "import sys; from lungsearch.data import load_search_data; "
        f"d = load_search_data({str(root)!r}, image_size=16, cache_dir={str(tmp_path / 'c')!r}, val_fraction=0.25); "
        "print(d.info['cache_hit'], d.info['fingerprint'])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__)))).stdout.split()
    assert out == ["True", here.info["fingerprint"]]


def test_a_damaged_entry_is_rebuilt(tmp_path):
    calls = []

    def build():
        calls.append(1)
        return {"a": np.arange(5)}, {"n": 5}

    first = cache.cached("k", build, str(tmp_path))
    (tmp_path / "k" / "a.npy").write_bytes(b"garbage")
    os.remove(tmp_path / "k" / "meta.json")
    again = cache.cached("k", build, str(tmp_path))
    assert len(calls) == 2 and not first.hit and not again.hit
    np.testing.assert_array_equal(again.arrays["a"], np.arange(5))
    assert cache.cached("k", build, str(tmp_path)).hit and len(calls) == 2


def test_default_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(cache.ENV, str(tmp_path / "mine"))
    assert cache.default_cache_dir() == str(tmp_path / "mine")
    monkeypatch.delenv(cache.ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    if sys.platform.startswith("linux"):
        assert cache.default_cache_dir() == str(tmp_path / "xdg" / "lungsearch")
