"""`studies.db.example` ships with no absolute path in it, and `bench.example_study` makes a study's paths relative."""

import os

import optuna

from bench import example_study


def test_the_shipped_example_holds_no_absolute_path_and_names_its_metric():
    path = os.path.join(example_study.ROOT, example_study.DB)
    assert example_study.absolute_paths(path) == []
    study = optuna.load_study(study_name=example_study.STUDY, storage=f"sqlite:///{path}")
    assert study.metric_names == ["val_auc"]
    assert study.user_attrs["data"]["source"] == "../shared/data/chest_xray"


def test_absolute_paths_become_relative_to_the_project_and_the_study_still_loads(tmp_path):
    db = tmp_path / "s.db"
    study = optuna.create_study(study_name="s", storage=f"sqlite:///{db}")
    study.set_user_attr("artifacts", str(tmp_path / "s.artifacts"))
    study.set_user_attr("data", {"source": str(tmp_path.parent / "data" / "xray"), "counts": {"train": 3}})
    study.set_user_attr("note", "a sentence with a / in it")
    assert len(example_study.absolute_paths(str(db))) == 2
    assert example_study.make_relative(str(db), root=str(tmp_path)) == 2
    assert example_study.absolute_paths(str(db)) == []
    attrs = optuna.load_study(study_name="s", storage=f"sqlite:///{db}").user_attrs
    assert attrs["artifacts"] == "s.artifacts"
    assert attrs["data"] == {"source": os.path.join("..", "data", "xray"), "counts": {"train": 3}}
    assert attrs["note"] == "a sentence with a / in it"
