"""The model card: written with every export, right about the disease class whatever its index, appended to by `evaluate`."""

from __future__ import annotations

import json
import os
import re

import numpy as np
import pytest

from lungsearch.cli import main
from lungsearch.export import card
from tests.conftest import make_folder

ORDERS = {  # (classes, disease class, exported file name): the disease class sorts last, then first
    "pneumonia": (("NORMAL", "PNEUMONIA"), "PNEUMONIA", "model.keras"),
    "covid": (("COVID", "NORMAL"), "COVID", "covid.keras"),
}


def _record(*, over_calls=False, saturated=False, n=40, positive=1, seed=0):
    """A model.json and an export's evaluation made from scores by the real evaluation code (no model, no Keras)."""
    from lungsearch import evaluate

    names = ["NORMAL", "PNEUMONIA"] if positive == 1 else ["COVID", "NORMAL"]
    rng = np.random.default_rng(seed)
    y = np.repeat([0, 1], n // 2)
    disease = y == positive
    score = np.clip(np.where(disease, 0.7, 0.3) + rng.normal(0, 0.15, n), 0, 1)
    if over_calls:  # many normals called diseased too
        score = np.where(disease, 0.9, rng.uniform(0.3, 0.8, n))
    probs = np.zeros((n, 2))
    probs[:, positive], probs[:, 1 - positive] = score, 1 - score
    val_score = np.where(disease, 0.95, 0.05) if saturated else score  # validation perfectly separated
    val_probs = np.zeros((n, 2))
    val_probs[:, positive], val_probs[:, 1 - positive] = val_score, 1 - val_score
    decision = {"threshold": 0.5, "rule": "max Youden's J on validation", "positive": positive, "chosen_on": "validation split",
                "val_sensitivity": 0.9, "val_specificity": 0.8}
    validation = evaluate.evaluate(y, val_probs, names, threshold=0.5, positive=positive, n_bootstrap=50)
    test = evaluate.evaluate(y, probs, names, threshold=0.5, positive=positive, n_bootstrap=50)
    meta = {"class_names": names, "image_size": 24, "color_mode": "grayscale", "study": "tiny", "trial": 0, "model_sha256": "ab" * 32,
            "space": {"name": "cnn", "source": "cnn"}, "params": {"lr": 0.01}, "objective": "val_auc", "validation": {"val_auc": 0.9},
            "decision": decision, "test": {k: v["value"] for k, v in test["metrics"].items()}, "param_count": 1234,
            "data": {"source": "/data/xray", "counts": {"train": 100, "val": 20}, "groups": {"train": 50, "val": 10},
                     "class_counts": {"train": {names[0]: 50, names[1]: 50}, "val": {names[0]: 10, names[1]: 10}},
                     "validation": "carved 0.15 by patient, seed 0", "group_pattern": "(person\\d+)", "duplicates_left": 0,
                     "grouping": {"by": "patient", "matched": 120, "of": 120, "patients": 60}, "test_count": n},
            "versions": {"export": {"lungsearch": "0.1.0", "keras": "3", "optuna": "4", "backend": "tensorflow"}}}
    evaluation = {"model": "/out/model.keras", "class_names": names, "decision": decision, "validation": validation, "test": test}
    facts = {"config": {"trials": 2, "epochs": 2, "seed": 0}, "weights": {0: None}, "weights_warning": None, "skipped": 0}
    return meta, evaluation, facts


def _text(meta, evaluation, facts):
    return card.markdown(meta, evaluation, facts, {"roc_curve.png": "roc_curve.png"}, written="2026-01-01 00:00 UTC", env={"python": "3"})


def test_the_card_is_model_card_md_beside_model_keras_and_named_after_any_other_model():
    assert card.card_path(os.path.join("out", "model.keras")) == os.path.join("out", "MODEL_CARD.md")
    assert card.card_path(os.path.join("out", "covid.keras")) == os.path.join("out", "covid.MODEL_CARD.md")


def test_limitations_are_computed_from_the_figures():
    meta, evaluation, facts = _record(over_calls=True, saturated=True)
    found = card.limitations(meta, evaluation, facts)
    spec, sens = meta["test"]["specificity"], meta["test"]["sensitivity"]
    assert any(f"specificity on test ({spec:.2f}) far below sensitivity ({sens:.2f})" in line for line in found)
    assert any("validation saturated (AUC 1.000)" in line for line in found)
    assert any(line.startswith("test balanced_accuracy") and "well below validation" in line for line in found)
    assert any(line.startswith("test set small (40 images") for line in found)
    assert found[-1].startswith("no external evaluation")


def test_a_split_by_image_is_not_called_a_split_by_patient():
    meta, evaluation, facts = _record()
    meta["data"]["grouping"] = {"by": "image", "matched": 0, "of": 120}
    text = _text(meta, evaluation, facts)
    line = next(line for line in text.splitlines() if line.startswith("Validation:"))
    assert line.startswith("Validation: carved 0.15, seed 0, by image (file names hold no patient id)") and "by patient" not in line


def test_a_sound_model_on_a_large_test_split_has_only_the_external_results_to_ask_for():
    meta, evaluation, facts = _record(n=4000)
    assert len(card.limitations(meta, evaluation, facts)) == 1


@pytest.mark.parametrize("positive", [1, 0])
def test_the_card_names_the_disease_class_and_its_figures_whatever_its_index(positive):
    meta, evaluation, facts = _record(positive=positive)
    text = _text(meta, evaluation, facts)
    disease = meta["class_names"][positive]
    assert f"Positive (disease) class: **{disease}** (index {positive} of" in text
    assert _cell(text, "sensitivity", TEST) == f"{meta['test']['sensitivity']:.3f}"
    assert _cell(text, "specificity", TEST) == f"{meta['test']['specificity']:.3f}"
    for section in ("Intended use", "Data", "Model", "Decision", "Performance", "Limitations seen", "Versions"):
        assert f"\n## {section}\n" in text
    assert "[ROC curve (test)](roc_curve.png)" in text and "Not for:" in text


def test_evaluate_appends_a_dated_section_and_keeps_the_old_text(tmp_path):
    meta, evaluation, _ = _record()
    path = tmp_path / "MODEL_CARD.md"
    old = f"# card\n\nmodel sha256 `{meta['model_sha256']}`\n"
    path.write_text(old)
    path.chmod(0o644)
    external = {**evaluation, "data_folder": "/hospital"}
    files = [str(tmp_path / "evaluation-hospital" / "evaluation.md")]
    assert card.append_external(str(tmp_path / "model.keras"), meta, external, files, log=print) == str(path)
    text = path.read_text()
    assert text.startswith(old) and "## External evaluation: /hospital" in text
    assert "(evaluation-hospital/evaluation.md)" in text
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary file left
    assert path.stat().st_mode & 0o777 == 0o644  # as readable as it was


def test_a_missing_card_or_another_models_card_is_a_note_and_nothing_else(tmp_path):
    meta, evaluation, _ = _record()
    said = []
    assert card.append_external(str(tmp_path / "model.keras"), meta, evaluation, [], log=said.append) is None
    assert said[-1].startswith("note: no model card")
    (tmp_path / "MODEL_CARD.md").write_text("# card of another model\n")
    assert card.append_external(str(tmp_path / "model.keras"), meta, evaluation, [], log=said.append) is None
    assert "describes another model" in said[-1]
    assert (tmp_path / "MODEL_CARD.md").read_text() == "# card of another model\n"


@pytest.fixture(scope="module", params=list(ORDERS))
def exported(request, tmp_path_factory):
    """One trial of 2 epochs on a tiny folder of each class order, exported (the covid one with --out elsewhere)."""
    classes, disease, name = ORDERS[request.param]
    root = tmp_path_factory.mktemp(request.param)
    data = make_folder(root / "xray", classes=classes, disease=disease, per_class=12, size=24)
    url = f"sqlite:///{root / 's.db'}"
    assert main(["run", "--data", str(data), "--trials", "1", "--epochs", "2", "--image-size", "24", "--quiet",
                 "--val-fraction", "0.3", "--storage", url, "--study", "tiny"]) == 0
    model = root / "out" / name
    extra = ["--out", str(root / "out" / "eval")] if request.param == "covid" else []
    assert main(["best", "--storage", url, "--export", str(model), "--bootstrap", "20", *extra]) == 0
    return model, disease, data


def test_best_writes_a_card_whose_disease_class_and_figures_are_model_jsons(exported, capsys):
    model, disease, _ = exported
    path = card.card_path(str(model))
    meta = json.loads(model.with_suffix(".json").read_text())
    text = open(path).read()
    positive = meta["decision"]["positive"]
    assert meta["class_names"][positive] == disease
    assert f"Positive (disease) class: **{disease}** (index {positive} of" in text
    assert f">= **{meta['decision']['threshold']:.4f}**" in text and "validation split" in text
    for key in ("sensitivity", "specificity", "roc_auc"):
        assert _cell(text, key, TEST) == f"{meta['test'][key]:.3f}"
    for link in re.findall(r"\]\(([^)]+)\)", text):  # relative links to files the export wrote
        assert (model.parent / link).is_file(), link
    assert "training_curves.png" in text and "roc_curve.png" in text
    assert meta["model_sha256"] in text


def test_evaluate_appends_to_the_exported_card_and_keeps_what_is_there(exported, tmp_path, capsys):
    model, _, data = exported
    path = card.card_path(str(model))
    before = open(path).read()
    assert main(["evaluate", "--model", str(model), "--data", str(data / "test"), "--out", str(tmp_path / "ev"),
                 "--bootstrap", "20"]) == 0
    assert f"appended to {path}" in capsys.readouterr().out
    after = open(path).read()
    assert after.startswith(before) and f"## External evaluation: {data / 'test'}" in after
    assert after.count("## External evaluation") == 1


TEST = 3  # the test column of the performance table: | metric | validation | 95% CI | test | 95% CI |


def _cell(text: str, metric: str, column: int) -> str:
    """Cell ``column`` (0: the metric's name) of the card's row for ``metric``."""
    row = next(line for line in text.splitlines() if line.startswith(f"| {metric} |"))
    return [c.strip() for c in row.strip("|").split("|")][column]
