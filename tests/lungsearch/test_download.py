"""`lungsearch data download pneumoniamnist`, on a small local archive the test makes."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from lungsearch import download
from lungsearch.cli import main
from lungsearch.data import load_search_data, read_layout


def make_npz(path, n=(6, 4, 4), size=28):
    rng = np.random.default_rng(0)
    arrays = {}
    for split, count in zip(("train", "val", "test"), n):
        arrays[f"{split}_images"] = rng.integers(0, 255, (count, size, size), dtype=np.uint8)
        arrays[f"{split}_labels"] = (np.arange(count) % 2).reshape(-1, 1).astype(np.uint8)
    np.savez_compressed(path, **arrays)
    return path


def test_writes_layout_a_from_a_local_archive(tmp_path):
    npz = make_npz(tmp_path / "p.npz")
    result = download.download_pneumoniamnist(str(tmp_path / "out"), size=28, source=str(npz), checksum=None)
    assert result["counts"] == {"train": {"NORMAL": 3, "PNEUMONIA": 3}, "val": {"NORMAL": 2, "PNEUMONIA": 2},
                                "test": {"NORMAL": 2, "PNEUMONIA": 2}}
    layout = read_layout(str(tmp_path / "out"))
    assert layout.kind == "train-val-test" and layout.class_names == ("NORMAL", "PNEUMONIA")
    with np.load(npz) as archive:
        first = sorted((tmp_path / "out" / "train" / "NORMAL").iterdir())[0]
        from PIL import Image

        np.testing.assert_array_equal(np.asarray(Image.open(first)), archive["train_images"][0])
    assert not any(p.name.startswith(".download") for p in (tmp_path / "out").iterdir())


def test_checksum_is_checked(tmp_path):
    npz = make_npz(tmp_path / "p.npz")
    right = hashlib.md5(npz.read_bytes()).hexdigest()
    download.download_pneumoniamnist(str(tmp_path / "ok"), source=str(npz), checksum=right)
    with pytest.raises(download.DownloadError, match="expected"):
        download.download_pneumoniamnist(str(tmp_path / "bad"), source=str(npz))  # the published MD5 of size 28


def test_published_urls_and_sizes():
    assert download.url_for(28) == "https://zenodo.org/records/10519652/files/pneumoniamnist.npz?download=1"
    assert download.url_for(224).endswith("/pneumoniamnist_224.npz?download=1")
    assert {k: len(v[1]) for k, v in download.PNEUMONIAMNIST.items()} == {28: 32, 64: 32, 128: 32, 224: 32}
    with pytest.raises(download.DownloadError, match="sizes 28, 64, 128, 224"):
        download.url_for(100)


def test_network_failure_is_a_one_line_user_error(tmp_path, capsys):
    rc = main(["data", "download", "pneumoniamnist", "--out", str(tmp_path / "out"),
               "--source", "http://127.0.0.1:9/pneumoniamnist.npz"])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("lungsearch: error: could not download") and err.count("\n") == 1


def test_cli_download_then_search_uses_the_given_val(tmp_path, capsys, monkeypatch):
    npz = make_npz(tmp_path / "p.npz", n=(8, 6, 4))
    monkeypatch.setattr(download, "PNEUMONIAMNIST", {**download.PNEUMONIAMNIST, 28: ("pneumoniamnist.npz", hashlib.md5(npz.read_bytes()).hexdigest())})
    assert main(["data", "download", "pneumoniamnist", "--out", str(tmp_path / "out"), "--source", str(npz)]) == 0
    assert "train 8" in capsys.readouterr().out
    from lungsearch.data import load as data_load

    monkeypatch.setattr(data_load, "SMALL_VAL", 4)  # where load_search_data reads it
    d = load_search_data(str(tmp_path / "out"), image_size=16, cache_dir=str(tmp_path / "c"))
    assert (len(d.train), len(d.val)) == (8, 6) and d.info["validation"] == "given val/"
