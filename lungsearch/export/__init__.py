"""Hand over a trained model: the .keras file, a JSON that says what it is, and its evaluation.

``export_best`` picks a trial (the best, ``--trial N``, or the most accurate
that trains within ``--max-train-seconds``), takes its kept model or trains it
again from its stored params (``FixedTrial``), chooses the decision threshold
on validation, reads the test split once, and writes the model, its metadata
and the evaluation files.  The model is reloaded in a fresh process before the
export counts as done.

This module holds :func:`export_best`; the pieces live beside it, and every
name they had here is still importable from here (``_search_data`` too, which
bench.selection reads):

- :mod:`lungsearch.export.base`: :class:`ExportError`, :data:`FORMAT`, :func:`meta_path`
- :mod:`lungsearch.export.pick`: which trial(s) to export
- :mod:`lungsearch.export.rebuild`: the study's data and a trial's model, kept or trained again
- :mod:`lungsearch.export.model`: the ensemble model, and the fresh-process reload check
"""

from __future__ import annotations

import json
import os
import tempfile

import numpy as np
import optuna

from lungsearch import __version__
from lungsearch.export import card
from lungsearch.export.base import FORMAT, ExportError, meta_path
from lungsearch.export.model import check_loads, ensemble_model
from lungsearch.export.pick import default_ensemble, pick_trial, pick_trials
from lungsearch.export.rebuild import _keeper, _search_data, data_source, retrain
from lungsearch.export.staging import Staging, sha256


def export_best(
    study: optuna.Study,
    dest: str,
    trial_number: int | None = None,
    *,
    max_train_seconds: float | None = None,
    retrain_model: bool = False,
    min_sensitivity: float | None = None,
    threshold_rule: str = "youden",
    out_dir: str | None = None,
    n_bootstrap: int | None = None,
    ensemble: int | None = None,
    refined_rule: str | None = None,
    log=print,
) -> dict:
    """Write ``dest`` (.keras), its .json and the evaluation files into ``out_dir`` (default: beside it).

    ``ensemble`` K > 1: the K best trials by the objective, their probabilities
    averaged in one model, thresholded and evaluated like a single model.
    ``None`` (the default): the best trial alone where ``trial_number``,
    ``max_train_seconds`` or ``retrain_model`` is given, else
    :func:`~lungsearch.export.pick.default_ensemble` (the 3 best where their models are kept).
    ``threshold_rule``: how the threshold of a two-class model is chosen on
    validation (:data:`lungsearch.evaluate.THRESHOLD_RULES`; default Youden's J).
    ``refined_rule`` (:data:`lungsearch.export.refined.RULES`): where `refine`
    has refitted finalists and no trial or ensemble is asked for, the model is
    chosen and thresholded on their out-of-fold predictions
    (:mod:`lungsearch.export.refined`; default ``bag``); ``off``: as without them.
    """
    from lungsearch.export import refined as refined_mod

    if not dest.endswith(".keras"):
        raise ExportError(f"--export must name a .keras file, got {dest}")
    if refined_rule is not None and refined_rule not in refined_mod.RULES:
        raise ExportError(f"unknown --refined {refined_rule!r}; choose one of {', '.join(refined_mod.RULES)}")
    # said now, before any data is read or file written
    _check_rules(tuple(study.user_attrs.get("class_names") or ()), min_sensitivity, threshold_rule)
    asked = trial_number is not None or max_train_seconds is not None or retrain_model or ensemble is not None
    if refined_rule not in (None, "off") and asked:
        raise ExportError(f"--refined {refined_rule} exports from the refined finalists; it cannot be combined with --trial, "
                          "--max-train-seconds, --retrain or --ensemble (give --refined off with those)")
    if not asked and refined_rule != "off":
        refined = refined_mod.plan(study, refined_rule or refined_mod.DEFAULT_RULE)
        if refined is None and refined_rule is not None:
            raise ExportError(f"--refined {refined_rule} needs refined finalists, and study {study.study_name!r} has none; "
                              "run `lungsearch refine` first")
        if refined is not None:
            return _export_refined(study, dest, refined, min_sensitivity=min_sensitivity, threshold_rule=threshold_rule,
                                   out_dir=out_dir, n_bootstrap=n_bootstrap, log=log)
        log("note: `lungsearch refine` refits the best trials on folds of all the training images; `best` then chooses "
            "and sets the threshold on their out-of-fold predictions instead of one validation split")
    keeper, why = _keeper(study), None
    if ensemble is None:
        if trial_number is not None or max_train_seconds is not None or retrain_model:
            ensemble = 1
        else:
            ensemble, why = default_ensemble(study, lambda t: keeper is not None and keeper.has_model(t))
    if ensemble < 1:
        raise ExportError(f"--ensemble must be at least 1, got {ensemble}")
    if ensemble > 1 and (trial_number is not None or max_train_seconds is not None):
        raise ExportError("--ensemble takes the K best trials; it cannot be combined with --trial or --max-train-seconds")
    trials = pick_trials(study, ensemble) if ensemble > 1 else [pick_trial(study, trial_number, max_train_seconds)]
    trial = trials[0]
    missing = [t.number for t in trials if not (keeper is not None and keeper.has_model(t))]
    if missing and not retrain_model:
        from search.keep import why_no_model

        if len(trials) == 1:
            raise ExportError(f"{why_no_model(study, trial)}; add --retrain to train it again from its stored params")
        first = next(t for t in trials if t.number == missing[0])
        raise ExportError(
            f"the models of trial{'s' if len(missing) > 1 else ''} {', '.join(map(str, missing))} of the {len(trials)} best are not "
            f"on disk ({why_no_model(study, first)}; `run --keep-top K` keeps the K best); add --retrain to train them again"
        )
    check_test_split(study)  # a study without test/ fails now, not after the models are trained and the threshold chosen
    dest_dir = os.path.dirname(os.path.abspath(dest))
    eval_dir = os.path.abspath(out_dir or dest_dir)
    with Staging([dest_dir, eval_dir]) as stage:  # an unwritable folder fails here; nothing lands until every check has passed
        if why:  # said once the export can go ahead: where no model is kept at all, the error above says what to do
            log(f"exporting {why}")
        class_names = tuple(study.user_attrs.get("class_names") or ())
        which = f"trial{'s' if len(trials) > 1 else ''} #{', #'.join(str(t.number) for t in trials)}"
        log(f"{which}: loading the study's train/validation data")
        data = _search_data(study)
        if class_names and tuple(data.class_names) != class_names:
            raise ExportError(f"the data folder now has classes {list(data.class_names)}, the study was made with {list(class_names)}")
        stored_fp = (study.user_attrs.get("data") or {}).get("fingerprint")
        now_fp = data.info.get("fingerprint")
        if stored_fp and now_fp and stored_fp != now_fp:
            log(f"warning: the training data changed since the search (fingerprint {stored_fp} then, {now_fp} now)")
        meta = _export(study, trials, dest, data, keeper, missing, stage=stage, eval_dir=eval_dir, retrain_model=retrain_model,
                       min_sensitivity=min_sensitivity, threshold_rule=threshold_rule, n_bootstrap=n_bootstrap, log=log)
        stage.commit()
    return meta


def _export_refined(study, dest, refined, *, min_sensitivity, threshold_rule, out_dir, n_bootstrap, log) -> dict:
    """``best`` from a refined study: the fold models mixed by ``refined``, thresholded on their OOF predictions."""
    check_test_split(study)
    by_number = {t.number: t for t in study.get_trials(deepcopy=False)}
    trials = [by_number[n] for n in sorted(refined.weights, key=lambda n: (-refined.weights[n], n))]
    dest_dir = os.path.dirname(os.path.abspath(dest))
    eval_dir = os.path.abspath(out_dir or dest_dir)
    with Staging([dest_dir, eval_dir]) as stage:
        mix = " + ".join(f"#{n}" + (f" x{c}" if c > 1 else "") for n, c in sorted(refined.weights.items(), key=lambda i: (-i[1], i[0])))
        log(f"exporting from `refine` ({refined.rule}): trial{'s' if len(trials) > 1 else ''} {mix}, each its {refined.folds} "
            f"fold models averaged; OOF AUC of the mix {refined.mix_figures['oof_auc']:.4f} over {len(refined.y)} training images")
        data = _search_data(study)
        meta = _export(study, trials, dest, data, None, [], stage=stage, eval_dir=eval_dir, retrain_model=False,
                       min_sensitivity=min_sensitivity, threshold_rule=threshold_rule, n_bootstrap=n_bootstrap, log=log, refined=refined)
        stage.commit()
    return meta


def _check_rules(class_names, min_sensitivity, threshold_rule) -> None:
    from lungsearch import evaluate

    if threshold_rule not in evaluate.THRESHOLD_RULES:
        raise ExportError(f"unknown --threshold-rule {threshold_rule!r}; choose one of {', '.join(evaluate.THRESHOLD_RULES)}")
    if threshold_rule != "youden" and min_sensitivity is not None:
        raise ExportError(f"give --min-sensitivity or --threshold-rule {threshold_rule}, not both: each picks the threshold")
    if class_names and evaluate.positive_class(class_names) is None:
        if min_sensitivity is not None:
            raise ExportError("--min-sensitivity needs a two-class study (a disease class and a normal one)")
        if threshold_rule != "youden":
            raise ExportError(f"--threshold-rule {threshold_rule} needs a two-class study (a disease class and a normal one); "
                              "more classes are decided by the most probable class")


def _export(study, trials, dest, data, keeper, missing, *, stage, eval_dir, retrain_model, min_sensitivity, threshold_rule,
            n_bootstrap, log, refined=None) -> dict:
    """Everything of an export, written into ``stage``'s folders: the model, its JSON, the evaluation files."""
    import keras

    from lungsearch import data as data_mod
    from lungsearch import evaluate, train
    from spaces import augment

    attrs = study.user_attrs
    trial = trials[0]
    which = f"trial{'s' if len(trials) > 1 else ''} #{', #'.join(str(t.number) for t in trials)}"
    class_names = tuple(data.class_names)
    color = "grayscale" if data.input_shape[-1] == 1 else "rgb"
    now_fp = data.info.get("fingerprint")
    kept_epoch = trial.user_attrs.get("final_epoch")  # 1-based: the epoch whose weights the search kept
    staged_model = os.path.join(stage.folder(os.path.dirname(os.path.abspath(dest))), os.path.basename(dest))
    augment.register()  # a kept model may hold RandomAffine
    members, history = [], None
    for t in ([] if refined is not None else trials):
        if t.number in missing or retrain_model:
            log(f"trial #{t.number}: training again from its params {t.params}")
            trained = retrain(study, t, data)
            model = trained.model
            if t is trial:  # the curves shown are the best trial's
                history, kept_epoch = trained.history, (trained.final % max(trained.epochs, 1)) + 1
        else:
            with tempfile.TemporaryDirectory() as tmp:
                path = os.path.join(tmp, "kept.keras")
                keeper.export(t, path)
                model = keras.models.load_model(path, compile=False)  # for inference: no optimizer state
        # the augmentation layers do nothing at inference: the exported file leaves them out and loads in plain Keras
        members.append(augment.inference_model(model))
    if history is None:
        history = trial.user_attrs.get("history") or {}
    if refined is not None:
        from lungsearch.export.refined import build_model

        model = build_model(study, refined)
    else:
        model = members[0] if len(members) == 1 else ensemble_model(members)
    model.save(staged_model)

    positive = evaluate.positive_class(class_names)
    # where the threshold is chosen: the refined mix's out-of-fold predictions over every training image, else validation
    if refined is not None:
        choose_y, choose_probs, prevalence = refined.y, refined.oof, float(np.mean(refined.y == positive)) if positive is not None else None
    else:
        val_probs = train.predict_proba(model, data.val)
        choose_y, choose_probs = data.val.y, val_probs
        prevalence = float(np.mean(data.train.y == positive)) if positive is not None else None
    if positive is not None:
        if threshold_rule == "youden":  # today's rule, called as it always was
            decision = evaluate.choose_threshold(choose_y == positive, choose_probs[:, positive], min_sensitivity)
        else:  # temperature: the Bayes threshold for the training split's prevalence of the disease class
            decision = evaluate.choose_threshold(choose_y == positive, choose_probs[:, positive], rule=threshold_rule,
                                                 prevalence=prevalence)
            decision["threshold_rule"] = threshold_rule
        if refined is not None:
            decision["rule"] = decision["rule"].replace("on validation", "on out-of-fold predictions")
        decision["chosen_on"] = "out-of-fold predictions of every training image (refine)" if refined is not None else "validation split"
    else:
        if min_sensitivity is not None:  # checked before anything was written where the study records its classes
            raise ExportError("--min-sensitivity needs a two-class study (a disease class and a normal one)")
        if threshold_rule != "youden":
            raise ExportError(f"--threshold-rule {threshold_rule} needs a two-class study (a disease class and a normal one); "
                              "more classes are decided by the most probable class")
        decision = {"threshold": None, "rule": "argmax (more than two classes)"}
    decision["positive"] = positive
    if decision.get("threshold") is not None and decision["threshold"] >= 1.0:
        log(f"warning: the threshold chosen on validation is {decision['threshold']:.4f}, so this model never decides "
            f"{class_names[positive]}; try --threshold-rule youden-mid or --min-sensitivity, or a larger validation split")
    n_boot = n_bootstrap or evaluate.N_BOOTSTRAP
    validation = evaluate.evaluate(choose_y, choose_probs, class_names, threshold=decision["threshold"], positive=positive, n_bootstrap=n_boot)

    config = attrs.get("config", {})
    log(f"{which}{' averaged' if len(trials) > 1 else ''}: reading the test split (once) and evaluating")
    test = data_mod.load_test(
        data_source(study), image_size=int(data.input_shape[0]), color_mode=color, class_names=class_names,
        seed=config.get("seed", 0), group_pattern=attrs.get("group_pattern", data_mod.DEFAULT_GROUP_PATTERN),
        cache_dir=config.get("cache_dir"),
    )
    test_probs = train.predict_proba(model, test)
    tested = evaluate.evaluate(test.y, test_probs, class_names, threshold=decision["threshold"], positive=positive, n_bootstrap=n_boot)

    versions = {"lungsearch": __version__, "keras": keras.__version__, "optuna": optuna.__version__, "backend": keras.backend.backend()}
    meta = {
        "format": FORMAT,
        "model_sha256": sha256(staged_model),  # predict and evaluate refuse a model file that is not the one this JSON describes
        "class_names": list(class_names),
        "image_size": int(data.input_shape[0]),
        "input_shape": list(data.input_shape),
        "color_mode": color,
        "preprocessing": "decode with lungsearch.data.decode (EXIF-upright, alpha on black, convert to color_mode, bilinear resize "
                         "to image_size x image_size), raw uint8 pixels in; rescaling is inside the model",
        "study": study.study_name,
        "trial": trial.number,
        **({"ensemble": [{"trial": t.number, "params": t.params, "value": t.value} for t in trials]} if len(trials) > 1 else {}),
        **({"refined": {"rule": refined.rule, "weights": {str(n): c for n, c in refined.weights.items()}, "folds": refined.folds,
                        "finalists": {str(n): f for n, f in refined.figures.items()}, "mix": refined.mix_figures}} if refined else {}),
        "retrained": bool(retrain_model or missing),
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
        "param_count": trial.user_attrs.get("param_count") or int(model.count_params()),
        "data": {**(attrs.get("data") or {}), "fingerprint_now": now_fp, "test_count": len(test)},
        "versions": {"search": attrs.get("versions", {}), "export": versions},
    }
    with open(meta_path(staged_model), "w") as fh:
        json.dump(meta, fh, indent=2)

    evaluation = {
        "study": study.study_name, "trial": trial.number, "model": os.path.abspath(dest), "class_names": list(class_names),
        "decision": decision, "validation": validation, "test": tested, "versions": versions,
        "objective": config.get("metric"), "kept_epoch": kept_epoch,
        "_y": test.y, "_probs": test_probs,
    }
    files = evaluate.write_files(evaluation, stage.folder(eval_dir), history=history)
    files.append(card.write(os.path.dirname(staged_model), eval_dir, files, meta, evaluation, card.study_facts(study, trials)))
    check_loads(staged_model, sample=test.x[:8], expected=test_probs[:8])
    meta["files"] = [os.path.abspath(dest), os.path.abspath(meta_path(dest)), *(stage.final(f) for f in files)]
    return meta


def check_test_split(study: optuna.Study) -> None:
    """The study's data folder still has test/<class>/ images: `best` evaluates on them, so it says so before any work."""
    from lungsearch import data as data_mod

    source = data_source(study)
    if source == data_mod.DEMO:
        return
    config = study.user_attrs.get("config") or {}
    layout = data_mod.read_layout(source, seed=config.get("seed", 0), cache_dir=config.get("cache_dir"),
                                  group_pattern=study.user_attrs.get("group_pattern", data_mod.DEFAULT_GROUP_PATTERN))
    if not layout.files("test")[0]:
        raise ExportError(f"{source} has no test/<class>/ images, and `best` evaluates the exported model on them once; "
                          "add a test split (images of patients not in train/) and run `best` again")
