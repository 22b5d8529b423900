"""`lungsearch data inspect`: the summary, the figures, bad files, one-line errors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lungsearch.cli import main
from lungsearch.inspect import inspect_folder
from tests.conftest import make_bad_folder, make_folder

ROOT = Path(__file__).resolve().parents[2]


def test_summary_counts_patients_duplicates(tmp_path):
    root = make_folder(tmp_path / "xray", per_class=12)
    shutil.copy(sorted((root / "test" / "NORMAL").iterdir())[0], root / "train" / "NORMAL" / "zz_copy.png")
    summary, samples = inspect_folder(str(root), image_size=16, cache_dir=str(tmp_path / "c"), val_fraction=0.25)
    assert summary["splits"] == {"train": {"NORMAL": 13, "PNEUMONIA": 12}, "test": {"NORMAL": 12, "PNEUMONIA": 12}}
    assert sum(sum(c.values()) for s, c in summary["search_splits"].items() if s != "test") == 25
    assert summary["patient_overlap"] == 0 and summary["patients"]["val"] > 0
    assert summary["duplicates"] == 1 and summary["duplicates_across_splits"] == 1 and summary["duplicates_across_patients"] == 1
    assert summary["modes"] == {"L": 49} and summary["sizes"] == {"24x24": 49}
    assert summary["skipped"] == []
    assert set(samples) == {"NORMAL", "PNEUMONIA"} and samples["NORMAL"].shape == (6, 16, 16, 1)


def test_cli_json_and_figures_on_the_bad_folder(tmp_path, capsys):
    bad = make_bad_folder(tmp_path / "xray")
    rc = main(["data", "inspect", str(tmp_path / "xray"), "--json", "--out", str(tmp_path / "fig"),
               "--cache-dir", str(tmp_path / "c"), "--image-size", "16", "--val-fraction", "0.3"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    for key in ("splits", "patients", "patient_overlap", "duplicates", "skipped"):
        assert key in out
    assert sorted(out["skipped"]) == sorted(str(p) for p in bad.values())  # every bad file skipped and counted once
    assert out["splits"]["train"]["NORMAL"] == 8 + len(bad)
    assert out["patient_overlap"] == 0
    for name in ("class_distribution.png", "samples.png"):
        path = tmp_path / "fig" / name
        assert path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_text_output(tmp_path, capsys):
    make_folder(tmp_path / "xray", classes=("Covid", "Normal", "Viral Pneumonia"), per_class=8, patients=False)
    assert main(["data", "inspect", str(tmp_path / "xray"), "--cache-dir", str(tmp_path / "c"), "--image-size", "16"]) == 0
    text = capsys.readouterr().out
    assert "Viral Pneumonia" in text and "skipped: 0" in text
    # names without patient ids (patients=False): the split is by image, and the text never claims "overlap 0"
    assert "BY IMAGE" in text and "patient overlap train-val 0" not in text and "an id in 0 of 48 file names" in text
    assert "by patient" not in text and "of train by image, seed" in text  # the summary's own words say it too


def test_images_in_subfolders_are_counted_and_named(tmp_path, capsys):
    root = make_folder(tmp_path / "xray", per_class=16)
    (root / "train" / "NORMAL" / "batch1").mkdir()
    for i in range(3):
        shutil.copy(root / "train" / "NORMAL" / f"person{i // 2}_img_{i}.png", root / "train" / "NORMAL" / "batch1" / f"b{i}.png")
    args = ["data", "inspect", str(root), "--cache-dir", str(tmp_path / "c"), "--image-size", "16"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "not read: 3 images in subfolders of class folders" in text and "train/NORMAL/batch1: 3" in text
    assert main([*args, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ignored_subfolders"] == {"train/NORMAL/batch1": 3}


@pytest.mark.parametrize("setup, message", [
    (lambda r: make_folder(r, classes=("NORMAL",), per_class=3), "single class"),
    (lambda r: r.mkdir(), "no class folders"),
    (lambda r: (make_folder(r, per_class=3), (r / "test" / "EMPTY").mkdir()), "holds no images"),
])
def test_unusable_folder_exits_2_with_one_line(tmp_path, setup, message):
    root = tmp_path / "xray"
    setup(root)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "LUNGSEARCH_CACHE_DIR": str(tmp_path / "c")}
    proc = subprocess.run([sys.executable, "-m", "lungsearch", "data", "inspect", str(root)],
                          capture_output=True, text=True, env=env, cwd=ROOT)
    assert proc.returncode == 2
    assert proc.stderr.startswith("lungsearch: error: ") and message in proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


@pytest.mark.realdata
def test_chest_xray_inspect(shared_data, tmp_path):
    summary, _ = inspect_folder(str(shared_data / "chest_xray"), image_size=16, cache_dir=str(tmp_path))
    assert summary["splits"]["train"] == {"NORMAL": 1341, "PNEUMONIA": 3875}
    assert summary["splits"]["test"] == {"NORMAL": 234, "PNEUMONIA": 390}
    assert summary["patient_overlap"] == 0 and summary["duplicates"] > 0 and summary["skipped"] == []
