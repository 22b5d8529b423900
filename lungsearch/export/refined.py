"""What `best` exports from a refined study: chosen on out-of-fold predictions, built from the fold models.

Three rules (``best --refined``):

- ``bag``: the finalist with the highest OOF AUC, its K fold models averaged
  into one model (bagging, as AutoGluon predicts with its fold models);
- ``average``: the (up to) 3 refined finalists of highest validation AUC,
  each its K fold models, all averaged with equal weight;
- ``select``: ensemble selection (Caruana et al., 2004, "Ensemble selection
  from libraries of models"): starting from the best finalist, add with
  replacement the finalist whose OOF probabilities, averaged in, raise the OOF
  AUC most, until no addition raises it; the finalists are weighted by how
  often they were added, each one its K fold models averaged.

Either way the export is one plain Keras model (pixels in), and its threshold
is chosen on the OOF probabilities of that very mix over every training image
rather than on one 15% split.

Fold calibration (``best --fold-calibration``, two-class studies): the K fold
models of one finalist rank well but each on its own scale (a model
checkpointed on validation AUC need not be calibrated: on chest_xray one fold
model put the median normal image at 0.996 while ranking at AUC 0.999).
Pooling their held-out predictions then ranks images across models, and a
threshold chosen on the pool fits none of them nor their average.  ``platt``
fits each fold model's logistic (Platt) calibration, sigmoid(a * logit(p) + b),
on its own held-out predictions, and folds a and b into that model's last
softmax layer, so the export stays plain Keras and averages calibrated
probabilities; the OOF predictions the threshold is chosen on are calibrated
alike.  ``off``: the fold models as refitted.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from lungsearch.evaluate.calibration import calibrate
from lungsearch.export.base import ExportError

RULES = ("bag", "select", "average", "off")
AVERAGE = 3  # ``average``: this many refined finalists, by validation AUC
DEFAULT_RULE = "bag"
CALIBRATIONS = ("platt", "off")  # `best --fold-calibration`
DEFAULT_CALIBRATION = "platt"  # docs/defaults.md: chosen on chest_xray's OOF figures, confirmed on covid_normal's test split
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
    calibration: str = "off"
    platt: dict = field(default_factory=dict)  # trial number -> [(a, b) per fold]: sigmoid(a * logit(p) + b) on the positive class
    positive: int | None = None


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


def plan(study, rule: str, calibration: str = DEFAULT_CALIBRATION) -> Refined | None:
    """What a refined export of ``study`` mixes under ``rule``; None where no finalist has been refined in full.

    ``calibration`` ``platt``: each fold model calibrated on its held-out
    predictions (two-class studies; more classes are left as they are), and
    the finalists ranked and mixed on the calibrated OOF predictions."""
    from lungsearch import refine
    from lungsearch.evaluate import positive_class, roc_auc

    record = refine.load(study)
    results = (record or {}).get("results") or {}
    if not results or rule == "off":
        return None
    if rule not in RULES:
        raise ExportError(f"unknown --refined {rule!r}; choose one of {', '.join(RULES)}")
    if calibration not in CALIBRATIONS:
        raise ExportError(f"unknown --fold-calibration {calibration!r}; choose one of {', '.join(CALIBRATIONS)}")
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
    platt = {}
    if calibration == "platt" and positive is not None:
        for number in list(oofs):
            oofs[number], platt[number] = calibrate(oofs[number], y, [h for _, h in held], positive)
    else:
        calibration = "off"  # more than two classes: no threshold to move, each fold model as refitted

    def score(labels, probs):
        return roc_auc(labels, probs, positive)

    if rule == "bag":  # the pooled OOF AUC of the (calibrated) fold models: the stored figure where they are not calibrated
        best = max(oofs, key=lambda n: (score(y, oofs[n]) if platt else results[str(n)]["oof_auc"], -n))
        weights = {best: 1}
    elif rule == "average":
        value = {t.number: t.value for t in study.get_trials(deepcopy=False)}
        weights = {n: 1 for n in sorted(oofs, key=lambda n: (-(value.get(n) or 0.0), n))[:AVERAGE]}
    else:
        weights = caruana(oofs, y, score)
    total = sum(weights.values())
    mix = sum(oofs[n] * c for n, c in weights.items()) / total
    return Refined(rule, weights, mix, y, {n: results[str(n)] for n in weights}, folds, {n: models[n] for n in weights},
                   refine.figures(y, mix, class_names or tuple(f"class{i}" for i in range(mix.shape[1]))),
                   calibration, {n: platt[n] for n in weights if n in platt}, positive)


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
            if number in refined.platt:
                member = calibrated_member(member, *refined.platt[number][k], refined.positive)
            if inputs is None:
                inputs = keras.Input(shape=tuple(member.input_shape[1:]), name="pixels")
            wrapped = keras.Model(member.input, member.output, name=f"trial{number}_fold{k}")
            out = wrapped(inputs)
            outputs.extend([out] * count)  # a finalist added c times by ensemble selection weighs c
    if len(outputs) == 1:
        return keras.Model(inputs, outputs[0], name="refined")
    return keras.Model(inputs, keras.layers.Average(name="probabilities")(outputs), name="refined")


def calibrated_member(member, a: float, b: float, positive: int):
    """``member`` with its last layer, a two-class softmax Dense, calibrated: softmax(a * logits + b on the positive class)
    gives sigmoid(a * (l_pos - l_neg) + b) = sigmoid(a * logit(p) + b), with plain Keras layers."""
    import keras

    last = member.layers[-1]
    if not (isinstance(last, keras.layers.Dense) and last.activation is keras.activations.softmax and last.units == 2):
        raise ExportError(f"fold calibration needs a fold model ending in a two-class softmax Dense layer; {member.name} ends in "
                          f"{type(last).__name__} {last.name!r}: give --fold-calibration off")
    kernel, bias = last.get_weights()
    shift = np.zeros_like(bias)
    shift[positive] = b
    layer = keras.layers.Dense(2, activation="softmax", name=f"{last.name}_calibrated")
    out = layer(last.input)
    layer.set_weights([kernel * a, bias * a + shift])
    return keras.Model(member.input, out, name=member.name)
