"""`lungsearch run` with the data flags: the study records skipped files, dedupe and the group pattern."""

from __future__ import annotations

import shutil
import warnings

import optuna
import pytest

from lungsearch.cli import main
from tests.lungsearch.test_data import make_bad_folder


@pytest.mark.slow
def test_run_records_the_data_it_used(tmp_path, capsys):
    root = tmp_path / "xray"
    bad = make_bad_folder(root)
    shutil.copy(sorted((root / "test" / "NORMAL").iterdir())[0], root / "train" / "NORMAL" / "zz_leak.png")
    storage = f"sqlite:///{tmp_path / 's.db'}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rc = main(["run", "--data", str(root), "--trials", "1", "--epochs", "1", "--image-size", "16", "--storage", storage,
                   "--study", "s", "--cache-dir", str(tmp_path / "c"), "--dedupe", "--group-pattern", r"person(\d+)_",
                   "--val-fraction", "0.3", "--batch-size", "8"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "4 unreadable files skipped" in out and "1 duplicates dropped" in out and "(overlap 0)" in out
    study = optuna.load_study(study_name="s", storage=storage)
    attrs = study.user_attrs
    assert sorted(s.split(" (")[0] for s in attrs["skipped_files"]) == sorted(str(p) for p in bad.values())
    assert attrs["group_pattern"] == r"person(\d+)_" and attrs["config"]["dedupe"] is True
    assert attrs["config"]["cache_dir"] == str(tmp_path / "c")
    assert [p.rsplit("/", 1)[-1] for p in attrs["data"]["deduped"]] == ["zz_leak.png"]
    assert attrs["data"]["group_overlap"] == 0 and attrs["data"]["cache_hit"] is False

    # resuming with another group pattern would change what validation means: refused
    rc = main(["run", "--data", str(root), "--trials", "2", "--storage", storage, "--study", "s",
               "--cache-dir", str(tmp_path / "c"), "--dedupe", "--image-size", "16"])
    assert rc == 2 and "group_pattern" in capsys.readouterr().err
