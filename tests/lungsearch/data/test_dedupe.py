"""Duplicates: copies of test images and repeats within train are dropped with --dedupe, counted without."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.conftest import load_folder, make_folder


def test_dedupe_drops_copies_of_test_and_repeats_within_train(tmp_path):
    root = make_folder(tmp_path / "xray", per_class=10)
    train_normal = sorted((root / "train" / "NORMAL").iterdir())
    shutil.copy(train_normal[0], root / "train" / "NORMAL" / "zcopy.png")  # repeat within train
    shutil.copy(sorted((root / "test" / "PNEUMONIA").iterdir())[0], root / "train" / "PNEUMONIA" / "leak.png")  # test copy
    plain = load_folder(root, tmp_path)
    assert len(plain.train) + len(plain.val) == 22 and plain.info["duplicates_left"] == 1
    d = load_folder(root, tmp_path, dedupe=True)
    assert len(d.train) + len(d.val) == 20 and d.info["duplicates_left"] == 0
    assert {Path(p).name for p in d.info["deduped"]} == {"zcopy.png", "leak.png"}
