"""bench/results.json's writer: paths recorded relative, reduced runs under their own key (no training)."""

from __future__ import annotations

import argparse
import json
import os

import pytest

from bench import results


@pytest.fixture
def tree(tmp_path, monkeypatch):
    """A project and its ../shared/data beside it, a home, and a link to the project, all under tmp_path."""
    project, shared, home = tmp_path / "work" / "proj", tmp_path / "work" / "shared" / "data", tmp_path / "home"
    for d in (project / "bench", shared / "chest_xray", home / ".cache"):
        d.mkdir(parents=True)
    (tmp_path / "link").symlink_to(project)
    monkeypatch.setenv("HOME", str(home))
    return tmp_path, results.path_roots(str(project))


def test_project_shared_tmp_home_and_other_paths(tree):
    tmp, roots = tree
    rel = lambda s: results.relative_paths(s, roots)  # noqa: E731
    assert rel(f"{tmp}/work/proj/bench/hand_cnn.py") == "bench/hand_cnn.py"
    assert rel(f"{tmp}/work/proj") == "." and rel(f"{tmp}/work/proj/") == "./"
    assert rel(f"{tmp}/work/shared/data/chest_xray") == "../shared/data/chest_xray"
    assert rel(f"{tmp}/work/proj/bench/../../shared/data/covid19") == "../shared/data/covid19"
    assert rel(f"{tmp}/home/.cache/keras/w.h5") == "~/.cache/keras/w.h5"
    assert rel("/tmp/vs_hand-x1/hand-0/model.json") == "<tmp>/vs_hand-x1/hand-0/model.json"
    assert rel("/opt/data/chest_xray") == "<abs>/opt/data/chest_xray"
    assert rel(f"{tmp}/work/proj2/x").endswith("/work/proj2/x")  # a sibling whose name starts like the project's
    assert not rel(f"{tmp}/work/proj2/x").startswith("x")


def test_paths_inside_longer_strings(tree):
    tmp, roots = tree
    command = (f"python -m bench.gpu search --data {tmp}/work/shared/data/chest_xray --storage sqlite:///{tmp}/work/proj/gpu.db "
               f"--out '{tmp}/work/proj/gpu_best' --cache=/opt/c")
    assert results.relative_paths(command, roots) == ("python -m bench.gpu search --data ../shared/data/chest_xray "
                                                      "--storage sqlite:///gpu.db --out 'gpu_best' --cache=<abs>/opt/c")
    assert results.relative_paths(f"first 128 images of each train class of {tmp}/work/shared/data/chest_xray (256 images)",
                                  roots) == "first 128 images of each train class of ../shared/data/chest_xray (256 images)"
    assert results.relative_paths(f"hand-{tmp}/work/shared/data/covid19", roots) == "hand-../shared/data/covid19"  # a study name
    assert results.relative_paths("sqlite:////tmp/vs_hand-x1/hand-0.db", roots) == "sqlite:///<tmp>/vs_hand-x1/hand-0.db"


@pytest.mark.parametrize("text", ["https://example.com/a/b", "n/a", "1/2 of it", "train/test", "../shared/data", "~/x",
                                  "<tmp>/x", "<abs>/opt/x", "sqlite:///gpu.db", "GPU / CPU", "bench/hand_cnn.py", ""])
def test_what_is_not_an_absolute_path_stays(tree, text):
    assert results.relative_paths(text, tree[1]) == text


def test_the_project_through_a_link_or_its_real_path(tree):
    tmp, _ = tree  # the link is under /tmp too: the project is found before the temporary folder
    for project in (tmp / "link", tmp / "work" / "proj"):
        roots = results.path_roots(str(project))
        assert results.relative_paths(f"{tmp}/link/bench/x.py", roots) == "bench/x.py"
        assert results.relative_paths(f"{tmp}/work/proj/bench/x.py", roots) == "bench/x.py"


def test_nested_values_and_keys_input_unchanged(tree):
    tmp, roots = tree
    value = {"sets": {f"{tmp}/work/proj/a": [f"{tmp}/work/proj/b", 0.5, None, True, {"c": (f"{tmp}/work/proj/c",)}]}}
    before = json.dumps(value)
    assert results.relative_paths(value, roots) == {"sets": {"a": ["b", 0.5, None, True, {"c": ["c"]}]}}
    assert json.dumps(value) == before


def test_other_checkouts_count_as_the_project(tree):
    tmp, _ = tree
    roots = results.path_roots(str(tmp / "work" / "proj"), others=("/work/main",))
    assert results.relative_paths("--storage sqlite:////work/main/gpu.db --out /work/main/gpu_best", roots) == \
        "--storage sqlite:///gpu.db --out gpu_best"


@pytest.fixture
def store(tmp_path, monkeypatch):
    path = tmp_path / "results.json"
    monkeypatch.setattr(results, "RESULTS", str(path))
    return lambda: json.loads(path.read_text())


def test_record_makes_the_entry_relative(store):
    entry = results.record("cache", {"data": os.path.join(results.PROJECT, "..", "shared", "data", "chest_xray")},
                           command=f"python -m bench.cache --data {results.PROJECT}/x")
    assert entry["data"] == "../shared/data/chest_xray" and entry["command"] == "python -m bench.cache --data x"
    assert store()["cache"] == entry


def test_a_reduced_run_never_overwrites_the_full_size_key(store):
    results.record("pruning", {"reduced": False, "ratio": 3.1})
    results.record("pruning", {"reduced": True, "ratio": 9.9})
    results.record("vs_hand_reduced", {"reduced": True, "x": 1})  # a bench that names its reduced key itself
    results.record("imagenet", {"x": 2})  # no "reduced": its own key
    stored = store()
    assert stored["pruning"]["ratio"] == 3.1 and stored["pruning_reduced"]["ratio"] == 9.9
    assert set(stored) == {"pruning", "pruning_reduced", "vs_hand_reduced", "imagenet"}


def test_below_defaults():
    ap = argparse.ArgumentParser()
    ap.add_argument("--budget", type=float, default=1800)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--train-limit", type=int, default=None)
    ap.add_argument("--pruners", default="none,median,sha")
    ap.add_argument("names", nargs="*", default=["cnn", "dense", "resnet"])
    check = lambda argv: results.below_defaults(ap, ap.parse_args(argv), "budget", "seeds", "train_limit", "pruners", "names")  # noqa: E731
    assert not check([]) and not check(["--budget", "3600", "--seeds", "5", "--pruners", "sha,none,median", "resnet", "cnn", "dense"])
    assert check(["--budget", "600"]) and check(["--seeds", "2"]) and check(["--train-limit", "2048"])
    assert check(["--pruners", "none,median"]) and check(["cnn", "dense"])


def test_relative_mode_rewrites_the_file(store, capsys):
    results.save({"gpu": {"search": {"command": "x --storage sqlite:////work/main/gpu.db", "auc": 0.9}}})
    results.main(["--root", "/work/main"])  # without --relative: shows, writes nothing
    assert "sqlite:////work/main" in json.dumps(store())
    results.main(["--relative", "--root", "/work/main"])
    assert store() == {"gpu": {"search": {"command": "x --storage sqlite:///gpu.db", "auc": 0.9}}}
    assert "1 line(s) rewritten" in capsys.readouterr().out


def test_gpu_parts_follow_the_same_rules(store):
    from bench import gpu

    gpu.record_part("throughput_cpu_tensorflow", {"reduced": False, "here": {"images_per_second": 234.0}})
    gpu.record_part("throughput_cpu_tensorflow", {"reduced": True, "data": f"{results.PROJECT}/.gpudata/chest_xray"})
    parts = store()["gpu"]
    assert parts["throughput_cpu_tensorflow"]["here"] == {"images_per_second": 234.0}
    assert parts["throughput_cpu_tensorflow_reduced"]["data"] == ".gpudata/chest_xray"
