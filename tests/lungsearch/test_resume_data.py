"""A study remembers its data by content: the same folder by another path resumes, another folder of the same name is refused."""

import shutil

import optuna
import pytest

from lungsearch.cli import main
from tests.conftest import make_folder

RUN = ["run", "--epochs", "1", "--image-size", "24", "--val-fraction", "0.3", "--quiet", "--study", "s"]


@pytest.fixture
def made(tmp_path, monkeypatch):
    """A one-trial study made from tmp/a with ``--data base``: (storage url, tmp_path)."""
    make_folder(tmp_path / "a" / "base", per_class=8, size=24)
    make_folder(tmp_path / "b" / "base", per_class=8, size=24, seed=1)  # same name, same counts, other images
    url = f"sqlite:///{tmp_path / 's.db'}"
    monkeypatch.chdir(tmp_path / "a")
    assert main([*RUN, "--data", "base", "--trials", "1", "--storage", url]) == 0
    return url, tmp_path


@pytest.mark.parametrize("given", ["base/", "ABS", "../a/base"])
def test_the_same_folder_by_another_path_resumes(made, capsys, given):
    url, tmp_path = made
    capsys.readouterr()
    data = str(tmp_path / "a" / "base") if given == "ABS" else given
    assert main([*RUN, "--data", data, "--trials", "1", "--storage", url]) == 0
    assert "already has 1 finished trials" in capsys.readouterr().out


def test_a_copy_of_the_folder_elsewhere_resumes(made, capsys):
    url, tmp_path = made
    shutil.copytree(tmp_path / "a" / "base", tmp_path / "copy")
    assert main([*RUN, "--data", str(tmp_path / "copy"), "--trials", "1", "--storage", url]) == 0


def test_another_folder_of_the_same_name_is_refused_and_nothing_is_stored(made, monkeypatch, capsys):
    url, tmp_path = made
    monkeypatch.chdir(tmp_path / "b")
    before = len(optuna.load_study(study_name="s", storage=url).trials)
    assert main([*RUN, "--data", "base", "--trials", "3", "--storage", url]) == 2
    err = capsys.readouterr().err
    assert "is another folder" in err and "new --study" in err and len(err.strip().splitlines()) == 1
    assert len(optuna.load_study(study_name="s", storage=url).trials) == before


def test_the_same_folder_with_changed_images_is_refused(made, capsys):
    url, tmp_path = made
    victim = next((tmp_path / "a" / "base" / "train" / "NORMAL").iterdir())
    victim.unlink()
    assert main([*RUN, "--data", "base", "--trials", "3", "--storage", url]) == 2
    err = capsys.readouterr().err
    assert "whose images changed" in err and "train 16 then, 15 now" in err
