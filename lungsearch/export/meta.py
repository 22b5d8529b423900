"""model.json: what an exported model is, how it was chosen and how it did on test, beside the model file.

`predict` and `evaluate` read it back: the classes, the input it takes, the
decision and the file's checksum (:data:`~lungsearch.export.base.FORMAT`
marks it); ``members`` says whether the model averages several sub-models.
"""

from __future__ import annotations

import json

import optuna

from lungsearch import __version__
from lungsearch.export.base import FORMAT, color_mode, meta_path
from lungsearch.export.staging import sha256

PREPROCESSING = ("decode with lungsearch.data.decode (EXIF-upright, alpha on black, convert to color_mode, bilinear resize "
                 "to image_size x image_size), raw uint8 pixels in; rescaling is inside the model")


def versions() -> dict:
    """The versions that made the export (the search's are stored with the study)."""
    import keras

    return {"lungsearch": __version__, "keras": keras.__version__, "optuna": optuna.__version__, "backend": keras.backend.backend()}


def model_meta(study: optuna.Study, trials: list, model_path: str, data, built, decision: dict, tested: dict, test_count: int, *,
               retrained: bool, refined=None) -> dict:
    """The JSON of the model saved at ``model_path``: ``built`` (:class:`~lungsearch.export.rebuild.Built`) from ``trials``,
    decided by ``decision``, evaluated on the test split (``tested``, over ``test_count`` images)."""
    attrs = study.user_attrs
    config = attrs.get("config", {})
    trial = trials[0]
    return {
        "format": FORMAT,
        "model_sha256": sha256(model_path),  # predict and evaluate refuse a model file that is not the one this JSON describes
        "class_names": list(data.class_names),
        "image_size": int(data.input_shape[0]),
        "input_shape": list(data.input_shape),
        "color_mode": color_mode(data),
        "preprocessing": PREPROCESSING,
        "study": study.study_name,
        "trial": trial.number,
        **({"ensemble": [{"trial": t.number, "params": t.params, "value": t.value} for t in trials]} if len(trials) > 1 else {}),
        **({"refined": {"rule": refined.rule, "weights": {str(n): c for n, c in refined.weights.items()}, "folds": refined.folds,
                        "finalists": {str(n): f for n, f in refined.figures.items()}, "mix": refined.mix_figures,
                        "fold_calibration": {"method": refined.calibration, "fitted_on": "each fold model's held-out images",
                                             "platt": {str(n): [[round(a, 6), round(b, 6)] for a, b in ab]
                                                       for n, ab in refined.platt.items()}}}} if refined else {}),
        # the sub-models whose class probabilities the model averages ([] for one model); Grad-CAM explains each
        "members": built.members,
        "retrained": retrained,
        "space": attrs.get("space"),
        "params": trial.params,
        "objective": config.get("metric"),
        "validation": {k: trial.user_attrs.get(k) for k in ("val_accuracy", "val_auc", "val_loss")},
        **({"out_of_fold": refined.mix_figures} if refined else {}),
        "decision": decision,
        "test": {k: v["value"] for k, v in tested["metrics"].items()},
        "test_ci95": {k: v["ci95"] for k, v in tested["metrics"].items()},
        "test_ci_method": {k: v.get("ci_method", "bootstrap") for k, v in tested["metrics"].items()},
        "train_seconds": trial.user_attrs.get("train_seconds"),
        "epochs": trial.user_attrs.get("epochs"),
        "param_count": trial.user_attrs.get("param_count") or int(built.model.count_params()),
        "data": {**(attrs.get("data") or {}), "fingerprint_now": data.info.get("fingerprint"), "test_count": test_count},
        "versions": {"search": attrs.get("versions", {}), "export": versions()},
    }


def write_meta(model_path: str, meta: dict) -> str:
    """model.json beside ``model_path``; returns its path."""
    path = meta_path(model_path)
    with open(path, "w") as fh:
        json.dump(meta, fh, indent=2)
    return path
