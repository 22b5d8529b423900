"""The files of an evaluation: what evaluation.md says about its intervals and its validation figures."""

from __future__ import annotations

from lungsearch import evaluate
from tests.lungsearch.evaluate.test_ci import NAMES, everything_positive


def test_markdown_says_which_interval_and_which_validation_accuracy():
    y, probs = everything_positive()
    test = evaluate.evaluate(y, probs, NAMES, threshold=0.5, positive=1, n_bootstrap=50)
    text = evaluate.markdown({"trial": 0, "study": "s", "class_names": list(NAMES), "test": test, "validation": test,
                              "decision": {"threshold": 0.5, "positive": 1, "rule": "max Youden's J on validation"}})
    assert "Wilson score intervals (marked W) for" in text and "| specificity | 0.0000 | 0.0000 - 0.2775 (W) |" in text
    assert "| metric | test | 95% CI | validation (at this threshold) |" in text
    assert "val_acc is the search's, at argmax" in text
