"""The data layer: layouts, patient-disjoint splits, image modes, bad files, dedupe."""

from __future__ import annotations

import io
import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lungsearch import data
from lungsearch.data import DEFAULT_GROUP_PATTERN, DataError, load_search_data, load_test, patient_groups, read_layout
from tests.conftest import make_folder, write_image

SIZE = 24


def load(root, tmp_path, **kw):
    kw.setdefault("image_size", SIZE)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_search_data(str(root), cache_dir=str(tmp_path / "cache"), val_fraction=0.25, **kw)


# --------------------------------------------------------------------------- layouts


def test_layout_train_test(tmp_path):
    root = make_folder(tmp_path / "xray", per_class=12)
    d = load(root, tmp_path)
    assert d.class_names == ("NORMAL", "PNEUMONIA")
    assert len(d.train) + len(d.val) == 24
    assert d.info["layout"] == "train-test" and d.info["group_overlap"] == 0
    assert d.train.x.shape[1:] == (SIZE, SIZE, 1) and d.train.x.dtype == np.uint8
    test = load_test(str(root), image_size=SIZE, color_mode="grayscale", class_names=d.class_names, cache_dir=str(tmp_path / "cache"))
    assert len(test) == 24 and sorted(np.bincount(test.y)) == [12, 12]


def test_layout_tiny_val_is_merged_with_a_warning(tmp_path):
    root = make_folder(tmp_path / "xray", splits=("train", "val", "test"), per_class=8)
    with pytest.warns(UserWarning, match="merged into train"):
        d = load_search_data(str(root), image_size=SIZE, cache_dir=str(tmp_path / "cache"), val_fraction=0.25)
    assert len(d.train) + len(d.val) == 32  # train 16 + val 16
    assert "carved" in d.info["validation"]


def test_layout_large_val_is_used_as_given(tmp_path, monkeypatch):
    monkeypatch.setattr(data.load, "SMALL_VAL", 10)  # where load_search_data reads it
    root = make_folder(tmp_path / "xray", splits=("train", "val", "test"), per_class=6)
    d = load(root, tmp_path)
    assert (len(d.train), len(d.val)) == (12, 12)
    assert d.info["validation"] == "given val/"


def test_layout_multiclass_with_space_in_name(tmp_path):
    root = make_folder(tmp_path / "covid", classes=("Covid", "Normal", "Viral Pneumonia"), per_class=8, patients=False)
    d = load(root, tmp_path, color_mode="rgb")
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

    d = load(root, tmp_path, seed=3)
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
    d = load(root, tmp_path)
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


# --------------------------------------------------------------------------- groups and split


def test_default_group_pattern_understands_kermany_names():
    names = ["person1000_bacteria_2931.jpeg", "person1000_virus_1681.jpeg", "IM-0115-0001.jpeg",
             "NORMAL2-IM-1427-0001.jpeg", "IM-1427-0002.jpeg", "scan_7.png", "scan_8.png"]
    g = patient_groups(names, DEFAULT_GROUP_PATTERN)
    assert g[0] == g[1] == "1:1000"
    assert g[2] == "2:115"
    assert g[3] == g[4] == "2:1427"
    assert g[5] != g[6] and g[5].startswith("file:")  # no id: each file its own group
    assert patient_groups(["case-42_a.png", "case-42_b.png"], r"case-(\d+)") == ["1:42", "1:42"]
    with pytest.raises(DataError, match="not a valid regular expression"):
        patient_groups(names, "person(")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_split_is_patient_disjoint_and_stratified(seed):
    rng = np.random.default_rng(seed)
    labels, groups = [], []
    for patient in range(120):  # 1-4 images per patient, one class each, imbalanced 1:3
        label = int(patient % 4 != 0)
        for _ in range(rng.integers(1, 5)):
            labels.append(label)
            groups.append(f"p{patient}")
    labels = np.asarray(labels)
    train_idx, val_idx = data.split_validation(labels, groups, 0.2, seed=seed)
    assert not {groups[i] for i in train_idx} & {groups[i] for i in val_idx}
    assert len(train_idx) + len(val_idx) == len(labels)
    for cls in (0, 1):  # class ratio of validation within one image of the stratified ideal
        expected = len(val_idx) * np.mean(labels == cls)
        assert abs(np.sum(labels[val_idx] == cls) - expected) <= 1.0


def test_search_data_groups_never_straddle(tmp_path):
    root = make_folder(tmp_path / "xray", per_class=16)
    d = load(root, tmp_path, seed=5)
    assert d.info["groups"]["val"] > 0 and d.info["group_overlap"] == 0


# --------------------------------------------------------------------------- modes


def _gray(size=SIZE):
    yy, xx = np.mgrid[0:size, 0:size]
    return ((xx * 7 + yy * 3) % 256).astype(np.uint8)


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "P", "CMYK", "I;16"])
@pytest.mark.parametrize("color_mode", ["grayscale", "rgb"])
def test_modes_convert_to_the_chosen_color_mode(tmp_path, mode, color_mode):
    gray = _gray()
    base = Image.fromarray(gray, mode="L")
    path = tmp_path / ("img.jpg" if mode == "CMYK" else "img.png")
    if mode == "I;16":
        Image.fromarray(gray.astype(np.uint16) * 257).save(path)  # full 16-bit range
        assert Image.open(path).mode.startswith("I")
    elif mode == "P":
        base.convert("RGB").convert("P", palette=Image.Palette.ADAPTIVE, colors=256).save(path)
    elif mode == "RGBA":
        img = base.convert("RGBA")
        img.putalpha(255)
        img.save(path)
    elif mode == "CMYK":
        base.convert("CMYK").save(path, quality=100)
    else:
        base.convert(mode).save(path)
    assert Image.open(path).mode == {"I;16": Image.open(path).mode, "RGBA": "RGBA", "P": "P", "CMYK": "CMYK"}.get(mode, mode)
    arr = data.decode(str(path), SIZE, color_mode)
    assert arr.shape == (SIZE, SIZE, 1 if color_mode == "grayscale" else 3) and arr.dtype == np.uint8
    tolerance = 12 if mode in ("CMYK", "P") else 1
    for c in range(arr.shape[-1]):
        assert np.abs(arr[..., c].astype(int) - gray.astype(int)).mean() <= tolerance, (mode, color_mode)


def test_transparent_pixels_become_black(tmp_path):
    img = Image.new("RGBA", (SIZE, SIZE), (255, 255, 255, 0))
    img.paste((200, 200, 200, 255), (0, 0, SIZE // 2, SIZE))
    img.save(tmp_path / "a.png")
    arr = data.decode(str(tmp_path / "a.png"), SIZE, "grayscale")[..., 0]
    assert arr[:, : SIZE // 2 - 1].mean() > 190 and arr[:, SIZE // 2 + 1:].max() == 0


def test_exif_orientation_is_honoured(tmp_path):
    arr = np.zeros((SIZE, SIZE), np.uint8)
    arr[: SIZE // 2, :] = 255  # bright top half, as stored
    img = Image.fromarray(arr)
    exif = img.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    img.save(tmp_path / "r.jpg", exif=exif, quality=100)
    out = data.decode(str(tmp_path / "r.jpg"), SIZE, "grayscale")[..., 0]
    assert out[:, SIZE // 2 + 2:].mean() > 200 and out[:, : SIZE // 2 - 2].mean() < 50  # displayed: bright right half


# --------------------------------------------------------------------------- bad files


def _jpeg_bytes(rng):
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (64, 64), dtype=np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


def make_bad_folder(root: Path) -> dict[str, Path]:
    """A train/test folder with one bad file of each kind in train/NORMAL."""
    make_folder(root, per_class=8)
    folder = root / "train" / "NORMAL"
    rng = np.random.default_rng(2)
    bad = {
        "truncated": folder / "person90_truncated.jpeg",
        "empty": folder / "person91_empty.png",
        "not_image": folder / "person92_text.png",
        "unreadable": folder / "person93_gone.png",
    }
    bad["truncated"].write_bytes(_jpeg_bytes(rng)[:300])
    bad["empty"].write_bytes(b"")
    bad["not_image"].write_text("this is not a PNG\n")
    bad["unreadable"].symlink_to(root / "nowhere.png")  # a dangling link: listed, cannot be opened
    (folder / "person94_dir.jpg").mkdir()  # a folder with an image name: not a file, ignored by the scan
    return bad


def test_bad_files_are_skipped_listed_once_and_counted(tmp_path):
    bad = make_bad_folder(tmp_path / "xray")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        d = load_search_data(str(tmp_path / "xray"), image_size=SIZE, cache_dir=str(tmp_path / "cache"), val_fraction=0.25)
    skipped = d.info["skipped"]
    assert len(skipped) == 4 and len(d.train) + len(d.val) == 16
    for kind in bad:
        assert sum(str(bad[kind]) in line for line in skipped) == 1
        assert sum(str(bad[kind]) in str(w.message) for w in caught) == 1
    assert "0 bytes" in next(s for s in skipped if "empty" in s)


@pytest.mark.skipif(not hasattr(__import__("os"), "geteuid") or __import__("os").geteuid() == 0, reason="root reads any file")
def test_unreadable_file_is_skipped(tmp_path):
    root = make_folder(tmp_path / "xray", per_class=8)
    locked = root / "train" / "NORMAL" / "locked.png"
    write_image(locked, 0, SIZE, np.random.default_rng(0))
    locked.chmod(0)
    d = load(root, tmp_path)
    assert any("locked.png" in s and "PermissionError" in s for s in d.info["skipped"])


# --------------------------------------------------------------------------- duplicates


def test_dedupe_drops_copies_of_test_and_repeats_within_train(tmp_path):
    root = make_folder(tmp_path / "xray", per_class=10)
    train_normal = sorted((root / "train" / "NORMAL").iterdir())
    shutil.copy(train_normal[0], root / "train" / "NORMAL" / "zcopy.png")  # repeat within train
    shutil.copy(sorted((root / "test" / "PNEUMONIA").iterdir())[0], root / "train" / "PNEUMONIA" / "leak.png")  # test copy
    plain = load(root, tmp_path)
    assert len(plain.train) + len(plain.val) == 22 and plain.info["duplicates_left"] == 1
    d = load(root, tmp_path, dedupe=True)
    assert len(d.train) + len(d.val) == 20 and d.info["duplicates_left"] == 0
    assert {Path(p).name for p in d.info["deduped"]} == {"zcopy.png", "leak.png"}


def test_demo_source_needs_no_folder(tmp_path):
    d = load_search_data("demo", image_size=16, cache_dir=str(tmp_path))
    assert len(d.train) > len(d.val) > 0 and d.class_names == ("NORMAL", "PNEUMONIA")


# --------------------------------------------------------------------------- real data


@pytest.mark.realdata
def test_chest_xray_counts_and_patient_disjoint_validation(shared_data, tmp_path):
    root = shared_data / "chest_xray"
    layout = read_layout(str(root))
    assert {c: len(p) for c, p in layout.splits["train"].items()} == {"NORMAL": 1341, "PNEUMONIA": 3875}
    assert {c: len(p) for c, p in layout.splits["test"].items()} == {"NORMAL": 234, "PNEUMONIA": 390}
    d = load_search_data(str(root), image_size=16, cache_dir=str(tmp_path))
    assert len(d.train) + len(d.val) == 5216 and d.info["group_overlap"] == 0
    assert d.info["groups"]["val"] > 100


@pytest.mark.realdata
def test_covid19_three_classes(shared_data):
    layout = read_layout(str(shared_data / "covid19"))
    assert layout.class_names == ("Covid", "Normal", "Viral Pneumonia")
    assert {c: len(p) for c, p in layout.splits["train"].items()} == {"Covid": 111, "Normal": 70, "Viral Pneumonia": 70}
    assert {c: len(p) for c, p in layout.splits["test"].items()} == {"Covid": 26, "Normal": 20, "Viral Pneumonia": 20}
