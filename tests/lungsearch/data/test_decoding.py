"""Image files to arrays: every mode to the chosen color mode, transparency, EXIF orientation, bad files skipped and named."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from PIL import Image

from lungsearch import data
from lungsearch.data import load_search_data
from tests.conftest import load_folder, make_bad_folder, make_folder, write_image

SIZE = 24


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
    d = load_folder(root, tmp_path)
    assert any("locked.png" in s and "PermissionError" in s for s in d.info["skipped"])
