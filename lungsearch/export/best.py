"""`best --export`: one function that hands over a trained model, each of its jobs in the module named for it.

:func:`export_best` picks a trial (the best, ``--trial N``, or the most
accurate that trains within ``--max-train-seconds``) or the K best, takes
their kept models or trains them again from their stored params
(``FixedTrial``), chooses the decision threshold on validation, reads the test
split once, and writes the model, its metadata and the evaluation files. The
model is reloaded in a fresh process before the export counts as done, and
nothing lands in the target folders until every check has passed.

- which trials: :mod:`lungsearch.export.pick`
- their data and model: :mod:`lungsearch.export.rebuild`
- the threshold rule and the decision: :mod:`lungsearch.export.decision`
- the test split: :mod:`lungsearch.export.held_out`
- model.json: :mod:`lungsearch.export.meta`
- writing it all at once: :mod:`lungsearch.export.staging`
"""

from __future__ import annotations

import os

import optuna

from lungsearch.export import card
from lungsearch.export import refined as refined_mod
from lungsearch.export.base import ExportError, meta_path
from lungsearch.export.decision import check_rules, decide, prevalence
from lungsearch.export.held_out import check_test_split, load_test
from lungsearch.export.meta import model_meta, versions, write_meta
from lungsearch.export.model import check_loads
from lungsearch.export.pick import choose
from lungsearch.export.rebuild import build, keeper, search_data
from lungsearch.export.staging import Staging


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
    fold_calibration: str = refined_mod.DEFAULT_CALIBRATION,
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
    ``fold_calibration`` (:data:`lungsearch.export.refined.CALIBRATIONS`): each
    fold model calibrated on its held-out predictions before they are mixed
    (``platt``, the default) or not (``off``).
    """
    if not dest.endswith(".keras"):
        raise ExportError(f"--export must name a .keras file, got {dest}")
    if refined_rule is not None and refined_rule not in refined_mod.RULES:
        raise ExportError(f"unknown --refined {refined_rule!r}; choose one of {', '.join(refined_mod.RULES)}")
    if fold_calibration not in refined_mod.CALIBRATIONS:
        raise ExportError(f"unknown --fold-calibration {fold_calibration!r}; choose one of {', '.join(refined_mod.CALIBRATIONS)}")
    # said now, before any data is read or file written
    check_rules(tuple(study.user_attrs.get("class_names") or ()), min_sensitivity, threshold_rule)
    asked = trial_number is not None or max_train_seconds is not None or retrain_model or ensemble is not None
    if refined_rule not in (None, "off") and asked:
        raise ExportError(f"--refined {refined_rule} exports from the refined finalists; it cannot be combined with --trial, "
                          "--max-train-seconds, --retrain or --ensemble (give --refined off with those)")
    if not asked and refined_rule != "off":
        refined = refined_mod.plan(study, refined_rule or refined_mod.DEFAULT_RULE, fold_calibration)
        if refined is None and refined_rule is not None:
            raise ExportError(f"--refined {refined_rule} needs refined finalists, and study {study.study_name!r} has none; "
                              "run `lungsearch refine` first")
        if refined is not None:
            return _export_refined(study, dest, refined, min_sensitivity=min_sensitivity, threshold_rule=threshold_rule,
                                   out_dir=out_dir, n_bootstrap=n_bootstrap, log=log)
        log("note: `lungsearch refine` refits the best trials on folds of all the training images; `best` then chooses "
            "and sets the threshold on their out-of-fold predictions instead of one validation split")
    kept = keeper(study)
    trials, missing, why = choose(study, lambda t: kept is not None and kept.has_model(t), trial_number=trial_number,
                                  max_train_seconds=max_train_seconds, retrain_model=retrain_model, ensemble=ensemble)
    check_test_split(study)  # a study without test/ fails now, not after the models are trained and the threshold chosen
    with Staging(_targets(dest, out_dir)) as stage:  # an unwritable folder fails here; nothing lands until every check has passed
        if why:  # said once the export can go ahead: where no model is kept at all, the error above says what to do
            log(f"exporting {why}")
        log(f"{_which(trials)}: loading the study's train/validation data")
        data = search_data(study)
        _check_data(study, data, log)
        meta = _export(study, trials, dest, data, kept, missing, stage=stage, out_dir=out_dir, retrain_model=retrain_model,
                       min_sensitivity=min_sensitivity, threshold_rule=threshold_rule, n_bootstrap=n_bootstrap, log=log)
        stage.commit()
    return meta


def _export_refined(study, dest, refined, *, min_sensitivity, threshold_rule, out_dir, n_bootstrap, log) -> dict:
    """``best`` from a refined study: the fold models mixed by ``refined``, thresholded on their OOF predictions."""
    check_test_split(study)
    by_number = {t.number: t for t in study.get_trials(deepcopy=False)}
    trials = [by_number[n] for n in sorted(refined.weights, key=lambda n: (-refined.weights[n], n))]
    with Staging(_targets(dest, out_dir)) as stage:
        mix = " + ".join(f"#{n}" + (f" x{c}" if c > 1 else "") for n, c in sorted(refined.weights.items(), key=lambda i: (-i[1], i[0])))
        log(f"exporting from `refine` ({refined.rule}): trial{'s' if len(trials) > 1 else ''} {mix}, each its {refined.folds} "
            f"fold models{' calibrated (Platt, each on its held-out images) and' if refined.platt else ''} averaged; OOF AUC of the mix {refined.mix_figures['oof_auc']:.4f} over {len(refined.y)} training images")
        data = search_data(study)
        meta = _export(study, trials, dest, data, None, [], stage=stage, out_dir=out_dir, retrain_model=False,
                       min_sensitivity=min_sensitivity, threshold_rule=threshold_rule, n_bootstrap=n_bootstrap, log=log, refined=refined)
        stage.commit()
    return meta


def _targets(dest: str, out_dir: str | None) -> list[str]:
    """The folders an export writes into: the model's, and the evaluation's (``out_dir``, default the model's)."""
    dest_dir = os.path.dirname(os.path.abspath(dest))
    return [dest_dir, os.path.abspath(out_dir or dest_dir)]


def _which(trials) -> str:
    return f"trial{'s' if len(trials) > 1 else ''} #{', #'.join(str(t.number) for t in trials)}"


def _check_data(study: optuna.Study, data, log) -> None:
    """The data folder still holds the classes the study was made with; a change of its images is worth a warning."""
    class_names = tuple(study.user_attrs.get("class_names") or ())
    if class_names and tuple(data.class_names) != class_names:
        raise ExportError(f"the data folder now has classes {list(data.class_names)}, the study was made with {list(class_names)}")
    stored_fp = (study.user_attrs.get("data") or {}).get("fingerprint")
    now_fp = data.info.get("fingerprint")
    if stored_fp and now_fp and stored_fp != now_fp:
        log(f"warning: the training data changed since the search (fingerprint {stored_fp} then, {now_fp} now)")


def _export(study, trials, dest, data, kept, missing, *, stage, out_dir, retrain_model, min_sensitivity, threshold_rule,
            n_bootstrap, log, refined=None) -> dict:
    """Everything of an export, written into ``stage``'s folders: the model, its JSON, the evaluation files."""
    from lungsearch import evaluate, train

    dest_dir, eval_dir = _targets(dest, out_dir)
    staged_model = os.path.join(stage.folder(dest_dir), os.path.basename(dest))
    built = build(study, trials, data, kept, missing, retrain_model=retrain_model, refined=refined, log=log)
    built.model.save(staged_model)

    class_names = tuple(data.class_names)
    # where the threshold is chosen: the refined mix's out-of-fold predictions over every training image, else validation
    if refined is not None:
        choose_y, choose_probs, share = refined.y, refined.oof, prevalence(refined.y, class_names)
    else:
        choose_y, choose_probs, share = data.val.y, train.predict_proba(built.model, data.val), prevalence(data.train.y, class_names)
    decision = decide(choose_y, choose_probs, class_names, prevalence=share, min_sensitivity=min_sensitivity,
                      threshold_rule=threshold_rule, on_oof=refined is not None, log=log)
    n_boot = n_bootstrap or evaluate.N_BOOTSTRAP
    positive = decision["positive"]
    validation = evaluate.evaluate(choose_y, choose_probs, class_names, threshold=decision["threshold"], positive=positive, n_bootstrap=n_boot)

    log(f"{_which(trials)}{' averaged' if len(trials) > 1 else ''}: reading the test split (once) and evaluating")
    test = load_test(study, data)
    test_probs = train.predict_proba(built.model, test)
    tested = evaluate.evaluate(test.y, test_probs, class_names, threshold=decision["threshold"], positive=positive, n_bootstrap=n_boot)

    meta = model_meta(study, trials, staged_model, data, built, decision, tested, len(test),
                      retrained=bool(retrain_model or missing), refined=refined)
    write_meta(staged_model, meta)
    evaluation = {
        "study": study.study_name, "trial": trials[0].number, "model": os.path.abspath(dest), "class_names": list(class_names),
        "decision": decision, "validation": validation, "test": tested, "versions": versions(),
        "objective": (study.user_attrs.get("config") or {}).get("metric"), "kept_epoch": built.kept_epoch,
        "_y": test.y, "_probs": test_probs,
    }
    files = evaluate.write_files(evaluation, stage.folder(eval_dir), history=built.history)
    files.append(card.write(os.path.dirname(staged_model), eval_dir, files, meta, evaluation, card.study_facts(study, trials)))
    check_loads(staged_model, sample=test.x[:8], expected=test_probs[:8])
    meta["files"] = [os.path.abspath(dest), os.path.abspath(meta_path(dest)), *(stage.final(f) for f in files)]
    return meta
