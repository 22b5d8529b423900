"""User mistakes: one line that says what to do, exit 2, no traceback, nothing lost."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from lungsearch.cli import main


def run_cli(capsys, *args: str) -> tuple[int, str]:
    code = main(list(args))
    err = capsys.readouterr().err.strip()
    return code, err


def assert_one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == 2
    assert len(err.splitlines()) == 1 and err.startswith("lungsearch: error: "), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, err


def test_missing_data_folder(tmp_path: Path, capsys) -> None:
    code, err = run_cli(capsys, "run", "--data", str(tmp_path / "nope"), "--storage", f"sqlite:///{tmp_path}/s.db")
    assert_one_line_error(code, err, "does not exist", "--data")


@pytest.mark.parametrize("name", ["labels.csv", "chest_xray.zip"])
def test_data_that_is_a_file_says_so(tmp_path: Path, capsys, name: str) -> None:
    (tmp_path / name).write_text("not a folder")
    code, err = run_cli(capsys, "run", "--data", str(tmp_path / name), "--storage", f"sqlite:///{tmp_path}/s.db")
    assert_one_line_error(code, err, "is a file, not a folder", "--data")
    assert "does not exist" not in err
    assert ("unpack" in err) == name.endswith(".zip")
    assert not (tmp_path / "s.db").exists()


def test_image_size_above_the_limit_is_refused_before_decoding(tmp_path: Path, capsys) -> None:
    from tests.conftest import make_folder

    data = make_folder(tmp_path / "xray", per_class=4)
    url = f"sqlite:///{tmp_path}/s.db"
    code, err = run_cli(capsys, "run", "--data", str(data), "--image-size", "5000", "--storage", url)
    assert_one_line_error(code, err, "--image-size 5000", "1024 px limit", "use 1024 or less")
    code, err = run_cli(capsys, "data", "inspect", str(data), "--image-size", "5000")
    assert_one_line_error(code, err, "1024 px limit")
    assert not (tmp_path / "s.db").exists()


def test_image_size_that_cannot_fit_in_memory_says_the_figures(tmp_path: Path, capsys, monkeypatch) -> None:
    import optuna

    from tests.conftest import make_folder
    from lungsearch.data import limits

    data = make_folder(tmp_path / "xray", per_class=10)  # 20 train images (test/ is not counted)
    url = f"sqlite:///{tmp_path}/s.db"
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # its INFO line would go to an earlier test's closed stderr
    optuna.create_study(storage=url, study_name="kept").add_trial(optuna.trial.create_trial(value=0.5))
    monkeypatch.setattr(limits, "available_memory", lambda: 30_000_000)  # 30 MB
    code, err = run_cli(capsys, "run", "--data", str(data), "--image-size", "1024", "--study", "kept", "--storage", url)
    # 20 images x 1024^2 x 1 channel x 3 copies = 62.9 MB > 30 MB; 30 MB fits sqrt(30e6 / 60) = 707 -> 704 px
    assert_one_line_error(code, err, "needs about 0.1 GB for 20 grayscale images", "0.0 GB of memory is available",
                          "use --image-size 704 or less")
    code, err = run_cli(capsys, "run", "--data", str(data), "--image-size", "512", "--workers", "2", "--study", "kept",
                        "--storage", url)
    assert_one_line_error(code, err, "2 worker processes", "or fewer --workers")
    assert len(optuna.load_study(study_name="kept", storage=url).trials) == 1  # nothing stored is touched


def test_folder_without_class_subfolders(tmp_path: Path, capsys) -> None:
    (tmp_path / "empty" / "train").mkdir(parents=True)
    code, err = run_cli(capsys, "run", "--data", str(tmp_path / "empty"), "--storage", f"sqlite:///{tmp_path}/s.db")
    assert_one_line_error(code, err, "class folder")


def test_unknown_space_lists_known_ones(tmp_path: Path, capsys) -> None:
    code, err = run_cli(capsys, "run", "--space", "nonesuch", "--storage", f"sqlite:///{tmp_path}/s.db")
    assert_one_line_error(code, err, "nonesuch", "cnn")


@pytest.mark.parametrize("url", ["not-a-url", "sqlite:////no/such/folder/x.db", "nosuchdialect://x/y"])
def test_unreadable_storage_url(tmp_path: Path, capsys, url: str) -> None:
    code, err = run_cli(capsys, "run", "--data", "demo", "--storage", url)
    assert_one_line_error(code, err, "storage")


def test_report_on_missing_database_creates_nothing(tmp_path: Path, capsys) -> None:
    db = tmp_path / "missing.db"
    code, err = run_cli(capsys, "report", "--storage", f"sqlite:///{db}")
    assert_one_line_error(code, err, "lungsearch run")
    assert not db.exists()


def test_resume_with_other_settings_is_refused_and_keeps_the_study(tmp_path: Path, capsys) -> None:
    import optuna

    db = tmp_path / "s.db"
    url = f"sqlite:///{db}"
    study = optuna.create_study(storage=url, study_name="kept", direction="maximize")
    study.set_user_attr("config", {"data": "demo", "space": "cnn", "image_size": 64, "color": "grayscale",
                                   "metric": "val_auc", "val_fraction": 0.15, "seed": 0})
    study.add_trial(optuna.trial.create_trial(value=0.9, params={}, distributions={}))
    code, err = run_cli(capsys, "run", "--data", "demo", "--study", "kept", "--image-size", "32", "--storage", url)
    assert_one_line_error(code, err, "image_size", "--study")
    con = sqlite3.connect(db)
    assert con.execute("select count(*) from trials").fetchone()[0] == 1
    con.close()


def test_best_on_study_without_completed_trial(tmp_path: Path, capsys) -> None:
    import optuna

    url = f"sqlite:///{tmp_path / 's.db'}"
    optuna.create_study(storage=url, study_name="empty", direction="maximize")
    code, err = run_cli(capsys, "best", "--storage", url, "--study", "empty", "--export", str(tmp_path / "m.keras"))
    assert_one_line_error(code, err, "no completed trial")


def test_dashboard_on_a_taken_port_says_which_flag_picks_another(tmp_path: Path, capsys) -> None:
    import socket

    import optuna

    url = f"sqlite:///{tmp_path / 's.db'}"
    optuna.create_study(storage=url, study_name="s")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, err = run_cli(capsys, "dashboard", "--storage", url, "--port", str(port))
    assert_one_line_error(code, err, f"port {port}", "already in use", "--port")


@pytest.mark.parametrize("command", [["report"], ["studies"], ["best", "--export", "m.keras"]])
@pytest.mark.parametrize("kind", ["other program", "empty", "not sqlite"])
def test_read_only_commands_refuse_a_file_that_is_not_a_study_database_and_leave_it_alone(tmp_path: Path, capsys, monkeypatch,
                                                                                        command, kind) -> None:
    import hashlib

    monkeypatch.chdir(tmp_path)
    db = tmp_path / "app.db"
    if kind == "other program":
        con = sqlite3.connect(db)
        con.execute("CREATE TABLE notes (body TEXT)")
        con.execute("INSERT INTO notes VALUES ('keep me')")
        con.commit()
        con.close()
    elif kind == "empty":
        db.write_bytes(b"")
    else:
        db.write_text("id,label\n1,NORMAL\n" * 50)
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    code, err = run_cli(capsys, command[0], "--storage", f"sqlite:///{db}", *command[1:])
    words = {"other program": "is not an Optuna study database", "empty": "is an empty file",
             "not sqlite": "is not an SQLite database"}[kind]
    assert_one_line_error(code, err, words, "--storage")
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["app.db"]  # no -wal, no -journal, no export
    if kind == "other program":
        con = sqlite3.connect(db)
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "delete"  # not switched to WAL
        assert [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")] == ["notes"]
        con.close()


def test_a_postgresql_url_without_its_driver_names_the_extra_to_install(tmp_path: Path, capsys) -> None:
    code, err = run_cli(capsys, "studies", "--storage", "postgresql+psycopg2://user@127.0.0.1/nowhere")
    assert_one_line_error(code, err, "is not installed", "lungsearch[postgres]")


def test_run_on_a_folder_without_test_says_best_will_need_it(tmp_path: Path, capsys) -> None:
    from tests.conftest import make_folder

    data = make_folder(tmp_path / "xray", per_class=16, size=24, splits=("train",))
    assert main(["run", "--data", str(data), "--trials", "1", "--epochs", "1", "--image-size", "24", "--quiet",
                 "--val-fraction", "0.3", "--storage", f"sqlite:///{tmp_path / 's.db'}"]) == 0
    err = capsys.readouterr().err
    assert "has train/ but no test/" in err and "add them before `best`" in err


def test_warnings_are_lungsearch_lines_without_file_or_line(tmp_path: Path, capsys) -> None:
    """A skipped image and a merged val/ come out as `warning: ...` lines: no module path, no line number, no buffer address."""
    from tests.conftest import make_folder

    data = make_folder(tmp_path / "xray", per_class=16, size=24, splits=("train", "val", "test"))
    (data / "train" / "NORMAL" / "broken.png").write_bytes(b"not a png at all")
    assert main(["run", "--data", str(data), "--trials", "1", "--epochs", "1", "--image-size", "24", "--quiet",
                 "--val-fraction", "0.3", "--storage", f"sqlite:///{tmp_path / 's.db'}"]) == 0
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert any(line.startswith("warning: skipped unreadable image") and "broken.png" in line for line in lines), err
    assert any(line.startswith("warning: ") and "merged into train" in line for line in lines), err
    assert "UserWarning" not in err and ".py:" not in err and "object at 0x" not in err and "warnings.warn" not in err


def test_data_inspect_on_a_file_names_no_flag_it_lacks(tmp_path: Path, capsys) -> None:
    (tmp_path / "x.png").write_bytes(b"\x89PNG")
    code, err = run_cli(capsys, "data", "inspect", str(tmp_path / "x.png"))
    assert_one_line_error(code, err, "is a file, not a folder", "give `data inspect` the folder")
    assert "--data" not in err


def test_more_workers_than_trials_starts_as_many_as_trials(tmp_path: Path, capsys) -> None:
    from tests.conftest import make_folder

    data = make_folder(tmp_path / "xray", per_class=16, size=24)
    assert main(["run", "--data", str(data), "--trials", "1", "--epochs", "1", "--image-size", "24", "--quiet", "--workers", "4",
                 "--val-fraction", "0.3", "--storage", f"sqlite:///{tmp_path / 's.db'}"]) == 0
    err = capsys.readouterr().err
    assert "--workers 4 is more than the 1 trials; starting 1" in err


def test_report_and_studies_read_a_study_on_read_only_media(tmp_path: Path, capsys) -> None:
    """A study database on a read-only file system (a bind mount here; skipped where this process may not mount)."""
    import subprocess

    import optuna

    import search

    store = tmp_path / "store"
    store.mkdir()
    storage = search.open_storage(f"sqlite:///{store / 's.db'}")
    study = optuna.create_study(storage=storage, study_name="ro", direction="maximize")
    study.add_trial(optuna.trial.create_trial(value=0.5, params={"x": 1.0},
                                              distributions={"x": optuna.distributions.FloatDistribution(0, 2)}))
    del study, storage  # the last connection closes: SQLite removes its -wal and -shm files
    mounted = tmp_path / "ro"
    mounted.mkdir()
    done = subprocess.run(["mount", "--bind", str(store), str(mounted)], capture_output=True)
    if done.returncode != 0:
        pytest.skip("cannot bind-mount here")
    try:
        if subprocess.run(["mount", "-o", "remount,bind,ro", str(mounted)], capture_output=True).returncode != 0:
            pytest.skip("cannot remount read-only here")
        assert main(["studies", "--storage", f"sqlite:///{mounted / 's.db'}"]) == 0
        assert "ro" in capsys.readouterr().out
        assert main(["report", "--storage", f"sqlite:///{mounted / 's.db'}", "--out", str(tmp_path / "rep")]) == 0
        assert (tmp_path / "rep" / "trials.csv").is_file()
    finally:
        subprocess.run(["umount", str(mounted)], capture_output=True)
