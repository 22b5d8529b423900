"""Patient groups: ids for the common chest X-ray naming schemes, a split that says when it is by image (issue 39,
item 7), a validation split and refit folds that keep each patient on one side."""

from __future__ import annotations

import json

import numpy as np
import optuna
import pytest

from lungsearch import data
from lungsearch.cli import main
from lungsearch.data import DEFAULT_GROUP_PATTERN, DataError, group_coverage, patient_groups
from lungsearch.data.groups import kfold
from tests.conftest import load_folder, make_folder, write_image


def test_the_default_finds_the_patient_in_each_known_scheme():
    names = {
        "NIH ChestX-ray14 <patient>_<follow-up>": ["00012345_000.png", "00012345_003.png", "00012346_000.png"],
        "CheXpert patient<N>": ["patient00001_study1_view1_frontal.jpg", "patient00001_study2_view1_frontal.jpg",
                                "patient00002_study1_view1_frontal.jpg"],
        "MIMIC-CXR p<8 digits>": ["p10000032_s50414267_02aa804e.jpg", "p10000032_s53189527_2a2277a9.jpg",
                                  "p10000033_s50414267_aaaa.jpg"],
        "Kermany person<N>_": ["person1000_bacteria_2931.jpeg", "person1000_virus_1681.jpeg", "person7_virus_1.jpeg"],
    }
    for scheme, files in names.items():
        g = patient_groups(files)
        assert g[0] == g[1] != g[2] and not g[0].startswith("file:"), scheme
        coverage = group_coverage(files)
        assert coverage == {"matched": 3, "of": 3, "by": "patient", "patients": 2,
                            "images_per_patient": {"median": 1.5, "max": 2}, "schemes": {scheme: 3}}


def test_kermany_ids_are_those_of_earlier_versions():
    """Studies made before the other schemes split their data the same: same group numbers, same ids."""
    old = r"person(\d+)_|IM-(\d+)-"
    names = ["person1000_bacteria_2931.jpeg", "IM-0115-0001.jpeg", "NORMAL2-IM-1427-0001.jpeg", "scan_7.png"]
    assert patient_groups(names, DEFAULT_GROUP_PATTERN) == patient_groups(names, old)


def _folder(root, stems):
    rng = np.random.default_rng(0)
    for label, name in enumerate(("NORMAL", "PNEUMONIA")):
        (root / "train" / name).mkdir(parents=True)
        for stem in stems(label):
            write_image(root / "train" / name / f"{stem}.png", label, 24, rng)
    return root


def test_names_without_patient_ids_say_the_split_is_by_image(tmp_path, capsys):
    data = _folder(tmp_path / "xray", lambda label: [f"scan{label}{i:02d}" for i in range(10)])
    url = f"sqlite:///{tmp_path / 's.db'}"
    assert main(["run", "--data", str(data), "--trials", "1", "--epochs", "1", "--image-size", "24", "--quiet",
                 "--val-fraction", "0.3", "--storage", url, "--study", "s"]) == 0
    captured = capsys.readouterr()
    assert "no patient id in 20 of 20 file names" in captured.err and "--group-pattern" in captured.err
    assert "split by image" in captured.out and "overlap 0" not in captured.out
    grouping = optuna.load_study(study_name="s", storage=url).user_attrs["data"]["grouping"]
    assert grouping["by"] == "image" and grouping["matched"] == 0


def test_nih_names_are_grouped_by_patient(tmp_path, capsys):
    # 4 patients per class with 3 follow-ups each: 12 images, 4 patients
    data = _folder(tmp_path / "nih", lambda label: [f"{label * 100 + p:08d}_{k:03d}" for p in range(4) for k in range(3)])
    url = f"sqlite:///{tmp_path / 's.db'}"
    assert main(["run", "--data", str(data), "--trials", "1", "--epochs", "1", "--image-size", "24", "--quiet",
                 "--val-fraction", "0.3", "--storage", url, "--study", "s"]) == 0
    out = capsys.readouterr().out
    info = optuna.load_study(study_name="s", storage=url).user_attrs["data"]
    assert info["grouping"]["schemes"] == {"NIH ChestX-ray14 <patient>_<follow-up>": 24}
    assert info["groups"]["train"] + info["groups"]["val"] == 8 and info["group_overlap"] == 0
    assert f"{info['groups']['train']}/{info['groups']['val']} patients (overlap 0)" in out
    assert main(["data", "inspect", str(data), "--image-size", "24", "--json", "--out", str(tmp_path / "fig")]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["grouping"]["images_per_patient"] == {"median": 3.0, "max": 3}


def test_a_group_pattern_that_matches_no_name_is_refused_before_a_study_exists(tmp_path, capsys):
    data = _folder(tmp_path / "xray", lambda label: [f"person{label * 10 + i // 2}_x_{i}" for i in range(10)])
    db = tmp_path / "s.db"
    assert main(["run", "--data", str(data), "--group-pattern", r"case-(\d+)", "--storage", f"sqlite:///{db}"]) == 2
    err = capsys.readouterr().err.strip()
    assert "finds a patient id in none of the 20 file names" in err and len(err.splitlines()) == 1
    assert not db.exists()


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
    d = load_folder(root, tmp_path, seed=5)
    assert d.info["groups"]["val"] > 0 and d.info["group_overlap"] == 0


def test_kfold_holds_out_every_image_once_keeps_patients_together_and_stratifies():
    groups = [f"p{i // 3}" for i in range(300)]  # 3 images per patient
    y = np.asarray([int(g[1:]) % 4 == 0 for g in groups], dtype=int)  # a patient's images share a label; 25% positive
    folds = kfold(y, groups, 5, seed=0)
    held = np.concatenate([h for _, h in folds])
    assert sorted(held.tolist()) == list(range(300))
    for fit, out in folds:
        assert not {groups[i] for i in fit} & {groups[i] for i in out}
        assert abs(y[out].mean() - 0.25) < 0.08
    assert [h.tolist() for _, h in kfold(y, groups, 5, seed=0)] == [h.tolist() for _, h in folds]
    assert [h.tolist() for _, h in kfold(y, groups, 5, seed=1)] != [h.tolist() for _, h in folds]


@pytest.mark.parametrize("k, groups, labels, match", [
    (1, [f"p{i}" for i in range(10)], [0, 1] * 5, "at least 2"),
    (5, ["a", "b", "c"] * 4, [0, 1] * 6, "only 3 patients"),
    (5, [f"p{i}" for i in range(12)], [0] * 9 + [1] * 3, "fewer than the 5 folds"),
])
def test_kfold_refuses_what_cannot_be_folded_with_what_to_do(k, groups, labels, match):
    with pytest.raises(DataError, match=match):
        kfold(np.asarray(labels), groups, k, seed=0)


def test_data_errors_name_settings_that_the_cli_words_as_its_flags():
    from lungsearch.commands.common import user_message

    with pytest.raises(DataError) as err:
        data.split_validation(np.array([0, 1, 0, 1]), list("abcd"), 0.7, seed=0)
    assert str(err.value) == "val_fraction must be between 0 and 0.5, got 0.7"  # the setting, as a config file names it
    assert user_message(err.value) == "--val-fraction must be between 0 and 0.5, got 0.7"
    with pytest.raises(DataError) as err:
        data.patient_groups(["a.png"], r"person(\d{3}")  # braces of the user's own stay as they are
    assert user_message(err.value).startswith(r"--group-pattern 'person(\\d{3}' is not a valid regular expression")
