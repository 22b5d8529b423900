"""The search never lists or opens a file of the test split; only `best` reads it."""

import builtins
import os

import pytest
from PIL import Image

from lungsearch import data
from lungsearch.cli import main
from tests.conftest import make_folder


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
