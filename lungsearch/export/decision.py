"""How an export decides: the threshold rule, checked before any work, and the decision it makes.

A two-class model gets a threshold on its disease class, chosen on validation
(or, for a refined study, on the mix's out-of-fold predictions over every
training image) by Youden's J, ``--min-sensitivity`` or ``--threshold-rule``;
a model of more classes decides by the most probable class.
"""

from __future__ import annotations

import numpy as np

from lungsearch.export.base import ExportError


def check_rules(class_names, min_sensitivity, threshold_rule) -> None:
    """Refuse a rule the study cannot take, before any data is read or file written."""
    from lungsearch import evaluate

    if threshold_rule not in evaluate.THRESHOLD_RULES:
        raise ExportError(f"unknown --threshold-rule {threshold_rule!r}; choose one of {', '.join(evaluate.THRESHOLD_RULES)}")
    if threshold_rule != "youden" and min_sensitivity is not None:
        raise ExportError(f"give --min-sensitivity or --threshold-rule {threshold_rule}, not both: each picks the threshold")
    if class_names and evaluate.positive_class(class_names) is None:
        check_many_classes(min_sensitivity, threshold_rule)


def check_many_classes(min_sensitivity, threshold_rule) -> None:
    """A study of more than two classes decides by the most probable class: no threshold rule applies."""
    if min_sensitivity is not None:
        raise ExportError("--min-sensitivity needs a two-class study (a disease class and a normal one)")
    if threshold_rule != "youden":
        raise ExportError(f"--threshold-rule {threshold_rule} needs a two-class study (a disease class and a normal one); "
                          "more classes are decided by the most probable class")


def decide(y, probs, class_names, *, prevalence, min_sensitivity, threshold_rule, on_oof: bool, log) -> dict:
    """The decision of the exported model, chosen on ``y``/``probs`` (validation, or out-of-fold where ``on_oof``)."""
    from lungsearch import evaluate

    positive = evaluate.positive_class(class_names)
    if positive is None:
        check_many_classes(min_sensitivity, threshold_rule)  # checked up front where the study records its classes
        decision = {"threshold": None, "rule": "argmax (more than two classes)"}
    elif threshold_rule == "youden":  # today's rule, called as it always was
        decision = evaluate.choose_threshold(y == positive, probs[:, positive], min_sensitivity)
    else:  # temperature: the Bayes threshold for the training split's prevalence of the disease class
        decision = evaluate.choose_threshold(y == positive, probs[:, positive], rule=threshold_rule, prevalence=prevalence)
        decision["threshold_rule"] = threshold_rule
    if positive is not None:
        if on_oof:
            decision["rule"] = decision["rule"].replace("on validation", "on out-of-fold predictions")
        decision["chosen_on"] = "out-of-fold predictions of every training image (refine)" if on_oof else "validation split"
    decision["positive"] = positive
    if decision.get("threshold") is not None and decision["threshold"] >= 1.0:
        log(f"warning: the threshold chosen on validation is {decision['threshold']:.4f}, so this model never decides "
            f"{class_names[positive]}; try --threshold-rule youden-mid or --min-sensitivity, or a larger validation split")
    return decision


def prevalence(y, class_names) -> float | None:
    """The disease class's share of ``y`` (the training images), for the Bayes threshold; None for more classes."""
    from lungsearch import evaluate

    positive = evaluate.positive_class(class_names)
    return float(np.mean(y == positive)) if positive is not None else None
