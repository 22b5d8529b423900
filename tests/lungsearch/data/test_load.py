"""The entry points: train/validation arrays for a search, and the test split, which the search never lists or opens;
only `best` reads it."""

import builtins
import os

import pytest
from PIL import Image

from lungsearch import data
from lungsearch.cli import main
from lungsearch.data import load_search_data, read_layout
from tests.conftest import load_folder, make_folder

SIZE = 24


@pytest.fixture
def recorder(monkeypatch):
    """Every path given to os.listdir, os.scandir, os.stat, open and PIL.Image.open while the fixture lives."""
    seen: list[str] = []

    def wrap(module, name):
        real = getattr(module, name)

        def spy(*args, **kwargs):
            if args and isinstance(args[0], (str, bytes, os.PathLike)):
                seen.append(os.path.abspath(os.fsdecode(args[0])))
            return real(*args, **kwargs)

        monkeypatch.setattr(module, name, spy)

    for module, name in ((os, "listdir"), (os, "scandir"), (os, "stat"), (builtins, "open"), (Image, "open")):
        wrap(module, name)
    return seen


def _touches(seen, folder):
    folder = os.path.abspath(folder)
    return [p for p in seen if p == folder or p.startswith(folder + os.sep)]


def test_load_search_data_never_lists_or_opens_test(tmp_path, recorder):
    root = make_folder(tmp_path / "xray", per_class=8)
    recorder.clear()  # writing the folder is not the search
    d = data.load_search_data(str(root), image_size=24, val_fraction=0.3)
    assert len(d.train) + len(d.val) == 16
    assert len(_touches(recorder, root / "train")) >= 16  # the spies do see the train files...
    assert _touches(recorder, root / "test") == []  # ...and nothing of test
    data.load_test(str(root), image_size=24, color_mode="grayscale", class_names=d.class_names)
    assert len(_touches(recorder, root / "test")) >= 16  # the final evaluation does read it


def test_a_whole_search_never_touches_test(tmp_path, recorder):
    root = make_folder(tmp_path / "xray", per_class=8)
    recorder.clear()  # writing the folder is not the search
    url = f"sqlite:///{tmp_path / 's.db'}"
    assert main(["run", "--data", str(root), "--trials", "1", "--epochs", "1", "--image-size", "24",
                 "--val-fraction", "0.3", "--storage", url]) == 0
    assert _touches(recorder, root / "train")
    assert _touches(recorder, root / "test") == []


def test_layout_tiny_val_is_merged_with_a_warning(tmp_path):
    root = make_folder(tmp_path / "xray", splits=("train", "val", "test"), per_class=8)
    with pytest.warns(UserWarning, match="merged into train"):
        d = load_search_data(str(root), image_size=SIZE, cache_dir=str(tmp_path / "cache"), val_fraction=0.25)
    assert len(d.train) + len(d.val) == 32  # train 16 + val 16
    assert "carved" in d.info["validation"]


def test_layout_large_val_is_used_as_given(tmp_path, monkeypatch):
    monkeypatch.setattr(data.load, "SMALL_VAL", 10)  # where load_search_data reads it
    root = make_folder(tmp_path / "xray", splits=("train", "val", "test"), per_class=6)
    d = load_folder(root, tmp_path)
    assert (len(d.train), len(d.val)) == (12, 12)
    assert d.info["validation"] == "given val/"


def test_demo_source_needs_no_folder(tmp_path):
    d = load_search_data("demo", image_size=16, cache_dir=str(tmp_path))
    assert len(d.train) > len(d.val) > 0 and d.class_names == ("NORMAL", "PNEUMONIA")


@pytest.mark.realdata
def test_chest_xray_counts_and_patient_disjoint_validation(shared_data, tmp_path):
    root = shared_data / "chest_xray"
    layout = read_layout(str(root))
    assert {c: len(p) for c, p in layout.splits["train"].items()} == {"NORMAL": 1341, "PNEUMONIA": 3875}
    assert {c: len(p) for c, p in layout.splits["test"].items()} == {"NORMAL": 234, "PNEUMONIA": 390}
    d = load_search_data(str(root), image_size=16, cache_dir=str(tmp_path))
    assert len(d.train) + len(d.val) == 5216 and d.info["group_overlap"] == 0
    assert d.info["groups"]["val"] > 100


def test_search_data_names_each_images_patient_beside_it(tmp_path):
    """The groups a refit folds by line up with the images: a patient's two images share an id and a label."""
    folder = make_folder(tmp_path / "xray", per_class=20)
    data = load_search_data(str(folder), image_size=16, cache_dir=str(tmp_path / "cache"))
    for split in ("train", "val"):
        arrays, groups = getattr(data, split), data.groups[split]
        assert len(groups) == len(arrays)
        by_group = {}
        for g, label in zip(groups, arrays.y.tolist()):
            by_group.setdefault(g, set()).add(label)
        assert all(len(labels) == 1 for labels in by_group.values()) and max(groups.count(g) for g in groups) == 2
    assert not set(data.groups["train"]) & set(data.groups["val"])
