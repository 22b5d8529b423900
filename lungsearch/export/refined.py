"""What `best` exports from a refined study: chosen on out-of-fold predictions, built from the fold models.

Two rules (``best --refined``):

- ``bag``: the finalist with the highest OOF AUC, its K fold models averaged
  into one model (bagging, as AutoGluon predicts with its fold models);
- ``select``: ensemble selection (Caruana et al., 2004, "Ensemble selection
  from libraries of models"): starting from the best finalist, add with
  replacement the finalist whose OOF probabilities, averaged in, raise the OOF
  AUC most, until no addition raises it; the finalists are weighted by how
  often they were added, each one its K fold models averaged.

Either way the export is one plain Keras model (pixels in), and its threshold
is chosen on the OOF probabilities of that very mix over every training image
rather than on one 15% split.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from lungsearch.export.base import ExportError

RULES = ("bag", "select", "off")
DEFAULT_RULE = "bag"
MAX_ROUNDS = 25  # ensemble selection's additions at most (each adds one finalist, with replacement)


@dataclass
class Refined:
    """The finalists an export mixes, their weights, and the OOF probabilities of the mix."""

    rule: str
    weights: dict  # trial number -> count (bag: the one finalist, 1)
    oof: np.ndarray  # (n, k) over every training image
    y: np.ndarray
    figures: dict  # each finalist's stored OOF figures
    folds: int
    models: dict = field(default_factory=dict)  # trial number -> [fold model paths]
    mix_figures: dict = field(default_factory=dict)


def caruana(oofs: dict, y: np.ndarray, score, rounds: int = MAX_ROUNDS) -> dict:
    """Ensemble selection with replacement on OOF probabilities: {trial: count}, greedy on ``score(y, probs)`` (higher better).

    Starts from the best finalist alone; each round adds the finalist whose
    addition scores best (ties: the better finalist alone), and stops when no
    addition improves the score.
    """
    names = sorted(oofs, key=lambda n: (-score(y, oofs[n]), n))
    counts = {names[0]: 1}
    total = oofs[names[0]].copy()
    best = score(y, total)
    for _ in range(rounds - 1):
        size = sum(counts.values())
        gain, pick = max(((score(y, (total + oofs[n]) / (size + 1)), n) for n in names), key=lambda t: (t[0], -names.index(t[1])))
        if gain <= best + 1e-9:
            break
        best, total = gain, total + oofs[pick]
        counts[pick] = counts.get(pick, 0) + 1
    return counts


def plan(study, rule: str) -> Refined | None:
    """What a refined export of ``study`` mixes under ``rule``; None where no finalist has been refined in full."""
    from lungsearch import refine
    from lungsearch.evaluate import positive_class, roc_auc

    record = refine.load(study)
    results = (record or {}).get("results") or {}
    if not results or rule == "off":
        return None
    if rule not in RULES:
        raise ExportError(f"unknown --refined {rule!r}; choose one of {', '.join(RULES)}")
    class_names = tuple(study.user_attrs.get("class_names") or ())
    positive = positive_class(class_names) if class_names else None
    attrs = study.user_attrs
    folds = int(record["folds"])
    held = [(None, h) for h in _held_out(study, record)]
    oofs, models = {}, {}
    for key in results:
        number = int(key)
        probs = refine.oof_of(study, number, int(record["images"]), held)  # None unless every fold is stored
        if probs is not None:
            oofs[number] = probs
            models[number] = [attrs[refine.unit_key(number, k)]["model"] for k in range(folds)]
    y = np.asarray(record["labels"])

    def score(labels, probs):
        return roc_auc(labels, probs, positive)

    if rule == "bag":
        best = max(oofs, key=lambda n: (results[str(n)]["oof_auc"], -n))
        weights = {best: 1}
    else:
        weights = caruana(oofs, y, score)
    total = sum(weights.values())
    mix = sum(oofs[n] * c for n, c in weights.items()) / total
    return Refined(rule, weights, mix, y, {n: results[str(n)] for n in weights}, folds, {n: models[n] for n in weights},
                   refine.figures(y, mix, class_names or tuple(f"class{i}" for i in range(mix.shape[1]))))


def _held_out(study, record: dict) -> list[np.ndarray]:
    """The held-out indices of each fold, as stored by `refine`."""
    held = record.get("held_out")
    if not held:
        raise ExportError("this study's refine record predates its stored folds; run `lungsearch refine` again")
    return [np.asarray(h, dtype=np.int64) for h in held]


def build_model(study, refined: Refined):
    """One Keras model: every chosen finalist's fold models averaged, each finalist weighted by its count."""
    import keras

    from spaces import augment

    folder = study.user_attrs.get("artifacts") or ""
    augment.register()
    inputs, outputs = None, []
    for number, count in sorted(refined.weights.items()):
        for k, rel in enumerate(refined.models[number]):
            path = os.path.join(folder, rel)
            if not os.path.isfile(path):
                raise ExportError(f"the fold model {path} of trial {number} is missing; run `lungsearch refine` again to refit it")
            member = keras.models.load_model(path, compile=False)
            if inputs is None:
                inputs = keras.Input(shape=tuple(member.input_shape[1:]), name="pixels")
            wrapped = keras.Model(member.input, member.output, name=f"trial{number}_fold{k}")
            out = wrapped(inputs)
            outputs.extend([out] * count)  # a finalist added c times by ensemble selection weighs c
    if len(outputs) == 1:
        return keras.Model(inputs, outputs[0], name="refined")
    return keras.Model(inputs, keras.layers.Average(name="probabilities")(outputs), name="refined")
