"""Which image files a data folder holds: layouts, class folders, extensions, subfolders, and folders that cannot be used."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from lungsearch.data import DataError, load_search_data, load_test, patient_groups, read_layout
from tests.conftest import load_folder, make_folder, write_image

SIZE = 24


# --------------------------------------------------------------------------- layouts


def test_layout_train_test(tmp_path):
    root = make_folder(tmp_path / "xray", per_class=12)
    d = load_folder(root, tmp_path)
    assert d.class_names == ("NORMAL", "PNEUMONIA")
    assert len(d.train) + len(d.val) == 24
    assert d.info["layout"] == "train-test" and d.info["group_overlap"] == 0
    assert d.train.x.shape[1:] == (SIZE, SIZE, 1) and d.train.x.dtype == np.uint8
    test = load_test(str(root), image_size=SIZE, color_mode="grayscale", class_names=d.class_names, cache_dir=str(tmp_path / "cache"))
    assert len(test) == 24 and sorted(np.bincount(test.y)) == [12, 12]


def test_layout_multiclass_with_space_in_name(tmp_path):
    root = make_folder(tmp_path / "covid", classes=("Covid", "Normal", "Viral Pneumonia"), per_class=8, patients=False)
    d = load_folder(root, tmp_path, color_mode="rgb")
    assert d.class_names == ("Covid", "Normal", "Viral Pneumonia")
    assert d.train.x.shape[-1] == 3
    assert set(np.unique(d.val.y)) == {0, 1, 2}


def test_layout_class_folders_carves_a_recorded_test_split(tmp_path):
    root = make_folder(tmp_path / "flat", splits=("train",), per_class=20)
    for cls in ("NORMAL", "PNEUMONIA"):  # flatten: root/<class>/
        shutil.move(str(root / "train" / cls), str(root / cls))
    (root / "train").rmdir()
    cache = str(tmp_path / "cache")
    layout = read_layout(str(root), seed=3, cache_dir=cache)
    assert layout.kind == "class-folders" and layout.split_record
    test_files = sorted(p for ps in layout.splits["test"].values() for p in ps)
    train_files = sorted(p for ps in layout.splits["train"].values() for p in ps)
    assert test_files and not set(test_files) & set(train_files) and len(test_files) + len(train_files) == 40
    groups = dict(zip(train_files + test_files, patient_groups(train_files + test_files)))
    assert not {groups[p] for p in train_files} & {groups[p] for p in test_files}
    recorded = json.loads(Path(layout.split_record).read_text())["test"]
    assert sorted(str(root / r) for r in recorded) == test_files

    d = load_folder(root, tmp_path, seed=3)
    assert len(d.train) + len(d.val) == len(train_files)
    test = load_test(str(root), image_size=SIZE, color_mode="grayscale", class_names=d.class_names, seed=3, cache_dir=cache)
    assert len(test) == len(test_files)
    again = read_layout(str(root), seed=3, cache_dir=cache)  # read back from the record
    assert again.splits == layout.splits


def test_class_sets_must_match_and_the_error_names_the_difference(tmp_path):
    root = make_folder(tmp_path / "xray", per_class=4)
    shutil.rmtree(root / "test" / "PNEUMONIA")
    (root / "test" / "COVID").mkdir()
    write_image(root / "test" / "COVID" / "a.png", 0, SIZE, np.random.default_rng(0))
    with pytest.raises(DataError, match="lacks PNEUMONIA and has extra COVID"):
        read_layout(str(root))


@pytest.mark.parametrize("mess, message", [
    ("empty_class", "holds no images"),
    ("single_class", "single class"),
    ("no_classes", "no class folders"),
    ("missing", "does not exist"),
    ("no_train", "no train/ folder"),
])
def test_unusable_folders_are_one_line_user_errors(tmp_path, mess, message):
    root = tmp_path / "xray"
    if mess == "empty_class":
        make_folder(root, per_class=4)
        (root / "train" / "EMPTY").mkdir()
    elif mess == "single_class":
        make_folder(root, classes=("NORMAL",), per_class=4)
    elif mess == "no_classes":
        root.mkdir()
        (root / "notes.txt").write_text("x")
    elif mess == "no_train":
        make_folder(root, splits=("test",), per_class=4)
    with pytest.raises(DataError, match=message) as err:
        read_layout(str(root))
    assert err.value.user_error and "\n" not in str(err.value)


def test_extensions_case_insensitive_hidden_files_ignored(tmp_path):
    root = make_folder(tmp_path / "xray", per_class=6)
    folder = root / "train" / "NORMAL"
    rng = np.random.default_rng(1)
    for name in ("UPPER.JPEG", "b.Jpg", "c.bmp", "d.TIF"):
        write_image(folder / name, 0, SIZE, rng, mode="RGB" if name.endswith("Jpg") else "L")
    (folder / ".DS_Store").write_bytes(b"\x00\x01junk")
    (folder / "._hidden.png").write_bytes(b"junk")
    (folder / "readme.txt").write_text("not an image")
    names = [Path(p).name for p in read_layout(str(root)).splits["train"]["NORMAL"]]
    assert {"UPPER.JPEG", "b.Jpg", "c.bmp", "d.TIF"} <= set(names)
    assert not any(n.startswith(".") or n.endswith(".txt") for n in names)
    d = load_folder(root, tmp_path)
    assert len(d.train) + len(d.val) == 16 and not d.info["skipped"]


def test_images_in_subfolders_of_a_class_are_named_and_counted_not_read(tmp_path):
    root = make_folder(tmp_path / "xray", per_class=6)
    rng = np.random.default_rng(2)
    for sub, n in (("batch1", 3), ("batch1/deeper", 2), (".cache", 4)):
        (root / "train" / "NORMAL" / sub).mkdir(parents=True)
        for i in range(n):
            write_image(root / "train" / "NORMAL" / sub / f"x{i}.png", 0, SIZE, rng)
    (root / "train" / "PNEUMONIA" / "notes").mkdir()  # no images in it: nothing to say
    layout = read_layout(str(root), splits_wanted=("train",))
    assert layout.ignored == {"train/NORMAL/batch1": 5}
    assert len(layout.splits["train"]["NORMAL"]) == 6  # the decision: warned about, not read
    with pytest.warns(UserWarning, match=r"5 images in subfolders .* \(train/NORMAL/batch1: 5\); only images directly"):
        d = load_search_data(str(root), image_size=SIZE, cache_dir=str(tmp_path / "cache"), val_fraction=0.25)
    assert len(d.train) + len(d.val) == 12 and d.info["ignored_subfolders"] == {"train/NORMAL/batch1": 5}


def test_a_class_folder_with_images_only_in_subfolders_says_where_they_are(tmp_path):
    root = make_folder(tmp_path / "covid", splits=("train",), per_class=4)
    for part in ("images", "masks"):
        (root / "train" / "COVID" / part).mkdir(parents=True)
        write_image(root / "train" / "COVID" / part / "c.png", 1, SIZE, np.random.default_rng(0))
    with pytest.raises(DataError, match=r"COVID holds no images itself, only in subfolders \(train/COVID/images: 1, "
                                        r"train/COVID/masks: 1\).*move the ones to use up") as err:
        read_layout(str(root))
    assert "\n" not in str(err.value)


# --------------------------------------------------------------------------- real data


@pytest.mark.realdata
def test_covid19_three_classes(shared_data):
    layout = read_layout(str(shared_data / "covid19"))
    assert layout.class_names == ("Covid", "Normal", "Viral Pneumonia")
    assert {c: len(p) for c, p in layout.splits["train"].items()} == {"Covid": 111, "Normal": 70, "Viral Pneumonia": 70}
    assert {c: len(p) for c, p in layout.splits["test"].items()} == {"Covid": 26, "Normal": 20, "Viral Pneumonia": 20}
