"""Hand over a trained model: the .keras file, a JSON that says what it is, and its evaluation.

``export_best`` picks a trial (the best, ``--trial N``, or the most accurate
that trains within ``--max-train-seconds``), takes its kept model or trains it
again from its stored params (``FixedTrial``), chooses the decision threshold
on validation, reads the test split once, and writes the model, its metadata
and the evaluation files.  The model is reloaded in a fresh process before the
export counts as done.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import optuna
from optuna.trial import TrialState

import search
from lungsearch import __version__

FORMAT = "lungsearch-model/1"  # marks a model.json written by lungsearch; predict requires it


class ExportError(ValueError):
    """The asked-for model cannot be exported."""

    user_error = True  # the CLI prints it on one line and exits 2


def meta_path(model_path: str) -> str:
    return os.path.splitext(model_path)[0] + ".json"


def pick_trial(study: optuna.Study, trial_number: int | None = None, max_train_seconds: float | None = None) -> optuna.trial.FrozenTrial:
    """The best trial; or trial ``trial_number``; or the most accurate one trained within ``max_train_seconds``."""
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not done:
        raise ExportError(f"study {study.study_name!r} has no completed trial yet; run more trials first")
    if trial_number is not None and max_train_seconds is not None:
        raise ExportError("give --trial or --max-train-seconds, not both")
    if trial_number is not None:
        for t in done:
            if t.number == trial_number:
                return t
        raise ExportError(f"trial {trial_number} is not a completed trial of {study.study_name!r}; see `lungsearch report`")
    if max_train_seconds is not None:
        fast = [t for t in done if t.user_attrs.get("train_seconds") is not None and t.user_attrs["train_seconds"] <= max_train_seconds
                and t.user_attrs.get("val_accuracy") is not None]
        if not fast:
            quickest = min((t.user_attrs.get("train_seconds", float("inf")) for t in done), default=float("inf"))
            raise ExportError(f"no completed trial trained within {max_train_seconds:g}s (the quickest took {quickest:.1f}s)")
        # The most accurate trial within the budget is on the accuracy/time front; ties: the quicker.
        return max(fast, key=lambda t: (t.user_attrs["val_accuracy"], -t.user_attrs["train_seconds"]))
    return study.best_trial


def _keeper(study: optuna.Study):
    artifacts = study.user_attrs.get("artifacts") or ""
    return search.ModelKeeper(artifacts) if os.path.isdir(artifacts) else None


def data_source(study: optuna.Study) -> str:
    """The data folder as an absolute path (the search stored it), so `best` works from any folder."""
    attrs = study.user_attrs
    source = (attrs.get("data") or {}).get("source") or (attrs.get("config") or {}).get("data")
    if not source:
        raise ExportError(f"study {study.study_name!r} does not say which data it was made on")
    return source


def _search_data(study: optuna.Study):
    """The study's train/validation data, decoded exactly as the search did (never the test split)."""
    from lungsearch import data as data_mod

    attrs = study.user_attrs
    config = attrs.get("config")
    if not config:
        raise ExportError(f"study {study.study_name!r} stores no config (made by an older lungsearch?); cannot rebuild its data")
    return data_mod.load_search_data(
        data_source(study), image_size=config["image_size"], color_mode=attrs.get("color_mode") or config.get("color") or "grayscale",
        val_fraction=config.get("val_fraction", 0.15), seed=config.get("seed", 0),
        group_pattern=attrs.get("group_pattern", data_mod.DEFAULT_GROUP_PATTERN),
        cache_dir=config.get("cache_dir"), dedupe=bool(config.get("dedupe", False)),
    )


def retrain(study: optuna.Study, trial: optuna.trial.FrozenTrial, data, *, verbose: int = 0):
    """Rebuild ``trial``'s model from its stored params and train it as the search did: (model, FitResult)."""
    import keras

    from lungsearch import train
    from spaces import get_space

    attrs = study.user_attrs
    config = attrs.get("config", {})
    space_ref = (attrs.get("space") or {}).get("source") or config.get("space") or "cnn"
    space = get_space(space_ref)
    fixed = optuna.trial.FixedTrial(space.fixed_params(trial.params), number=trial.number)
    keras.backend.clear_session(free_memory=True)
    keras.utils.set_random_seed(config.get("seed", 0) * 100_003 + trial.number)  # the seed the search gave this trial
    # the facts the search built it with: --weights random must retrain from random weights, --hflip with flips
    facts = {k: config[k] for k in ("hflip", "weights", "cache_dir") if config.get(k) is not None}
    model = space.build(fixed, input_shape=data.input_shape, num_classes=len(data.class_names), **facts)
    options = space.fit_options(fixed)
    if config.get("batch_size"):  # pinned by --batch-size, as the search trained it
        options = {**options, "batch_size": int(config["batch_size"])}
    epochs = int(trial.user_attrs.get("epochs") or config.get("epochs", 10))
    result = train.fit(model, data, epochs=epochs, use_class_weights=config.get("class_weights", True), verbose=verbose,
                       monitor=config.get("metric", "val_loss"), **options)  # the search restored the best epoch of its objective
    return model, result


def pick_trials(study: optuna.Study, k: int) -> list[optuna.trial.FrozenTrial]:
    """The ``k`` best completed trials by the objective, best first (ties: the earlier trial)."""
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not done:
        raise ExportError(f"study {study.study_name!r} has no completed trial yet; run more trials first")
    if k > len(done):
        raise ExportError(f"--ensemble {k} needs {k} completed trials; study {study.study_name!r} has {len(done)}")
    return sorted(done, key=lambda t: (-t.value, t.number))[:k]


def ensemble_model(members, name: str = "ensemble"):
    """One Keras model that averages the class probabilities of ``members`` (same input), loadable in plain Keras."""
    import keras

    inputs = keras.Input(shape=tuple(members[0].input_shape[1:]), name="pixels")
    outputs = []
    for i, member in enumerate(members):
        # each member becomes a named sub-model, so equal layer names in two members cannot clash
        wrapped = keras.Model(member.input, member.output, name=f"member{i}")
        outputs.append(wrapped(inputs))
    mean = keras.layers.Average(name="probabilities")(outputs)
    return keras.Model(inputs, mean, name=name)


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
    ensemble: int = 1,
    log=print,
) -> dict:
    """Write ``dest`` (.keras), its .json and the evaluation files into ``out_dir`` (default: beside it).

    ``ensemble`` K > 1: the K best trials by the objective, their probabilities
    averaged in one model, thresholded and evaluated like a single model.
    ``threshold_rule``: how the threshold of a two-class model is chosen on
    validation (:data:`lungsearch.evaluate.THRESHOLD_RULES`; default Youden's J).
    """
    import keras

    from lungsearch import data as data_mod
    from lungsearch import evaluate, train
    from spaces import augment

    if not dest.endswith(".keras"):
        raise ExportError(f"--export must name a .keras file, got {dest}")
    if ensemble < 1:
        raise ExportError(f"--ensemble must be at least 1, got {ensemble}")
    if threshold_rule not in evaluate.THRESHOLD_RULES:
        raise ExportError(f"unknown --threshold-rule {threshold_rule!r}; choose one of {', '.join(evaluate.THRESHOLD_RULES)}")
    if threshold_rule != "youden" and min_sensitivity is not None:
        raise ExportError(f"give --min-sensitivity or --threshold-rule {threshold_rule}, not both: each picks the threshold")
    if ensemble > 1 and (trial_number is not None or max_train_seconds is not None):
        raise ExportError("--ensemble takes the K best trials; it cannot be combined with --trial or --max-train-seconds")
    trials = pick_trials(study, ensemble) if ensemble > 1 else [pick_trial(study, trial_number, max_train_seconds)]
    trial = trials[0]
    keeper = _keeper(study)
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
    attrs = study.user_attrs
    class_names = tuple(attrs.get("class_names") or ())
    log(f"trial{'s' if len(trials) > 1 else ''} #{', #'.join(str(t.number) for t in trials)}: loading the study's train/validation data")
    data = _search_data(study)
    if class_names and tuple(data.class_names) != class_names:
        raise ExportError(f"the data folder now has classes {list(data.class_names)}, the study was made with {list(class_names)}")
    class_names = tuple(data.class_names)
    color = "grayscale" if data.input_shape[-1] == 1 else "rgb"
    stored_fp = (attrs.get("data") or {}).get("fingerprint")
    now_fp = data.info.get("fingerprint")
    if stored_fp and now_fp and stored_fp != now_fp:
        log(f"warning: the training data changed since the search (fingerprint {stored_fp} then, {now_fp} now)")

    kept_epoch = trial.user_attrs.get("final_epoch")  # 1-based: the epoch whose weights the search kept
    os.makedirs(os.path.dirname(os.path.abspath(dest)), exist_ok=True)
    augment.register()  # a kept model may hold RandomAffine
    members, history = [], None
    for t in trials:
        if t.number in missing or retrain_model:
            log(f"trial #{t.number}: training again from its params {t.params}")
            model, result = retrain(study, t, data)
            if t is trial:  # the curves shown are the best trial's
                history, kept_epoch = result.history, result.final + 1
        else:
            with tempfile.TemporaryDirectory() as tmp:
                path = os.path.join(tmp, "kept.keras")
                keeper.export(t, path)
                model = keras.models.load_model(path, compile=False)  # for inference: no optimizer state
        # the augmentation layers do nothing at inference: the exported file leaves them out and loads in plain Keras
        members.append(augment.inference_model(model))
    if history is None:
        history = trial.user_attrs.get("history") or {}
    model = members[0] if len(members) == 1 else ensemble_model(members)
    model.save(dest)

    positive = evaluate.positive_class(class_names)
    val_probs = train.predict_proba(model, data.val)
    if positive is not None:
        if threshold_rule == "youden":  # today's rule, called as it always was
            decision = evaluate.choose_threshold(data.val.y == positive, val_probs[:, positive], min_sensitivity)
        else:  # temperature: the Bayes threshold for the training split's prevalence of the disease class
            decision = evaluate.choose_threshold(data.val.y == positive, val_probs[:, positive], rule=threshold_rule,
                                                 prevalence=float(np.mean(data.train.y == positive)))
            decision["threshold_rule"] = threshold_rule
    else:
        if min_sensitivity is not None:
            raise ExportError("--min-sensitivity needs a two-class study (a disease class and a normal one)")
        if threshold_rule != "youden":
            raise ExportError(f"--threshold-rule {threshold_rule} needs a two-class study (a disease class and a normal one); "
                              "more classes are decided by the most probable class")
        decision = {"threshold": None, "rule": "argmax (more than two classes)"}
    decision["positive"] = positive
    n_boot = n_bootstrap or evaluate.N_BOOTSTRAP
    validation = evaluate.evaluate(data.val.y, val_probs, class_names, threshold=decision["threshold"], positive=positive, n_bootstrap=n_boot)

    config = attrs.get("config", {})
    log(f"trial #{trial.number}: reading the test split (once) and evaluating")
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
        "class_names": list(class_names),
        "image_size": int(data.input_shape[0]),
        "input_shape": list(data.input_shape),
        "color_mode": color,
        "preprocessing": "decode with lungsearch.data.decode (EXIF-upright, alpha on black, convert to color_mode, bilinear resize "
                         "to image_size x image_size), raw uint8 pixels in; rescaling is inside the model",
        "study": study.study_name,
        "trial": trial.number,
        **({"ensemble": [{"trial": t.number, "params": t.params, "value": t.value} for t in trials]} if len(trials) > 1 else {}),
        "retrained": bool(retrain_model or missing),
        "space": attrs.get("space"),
        "params": trial.params,
        "objective": config.get("metric"),
        "validation": {k: trial.user_attrs.get(k) for k in ("val_accuracy", "val_auc", "val_loss")},
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
    with open(meta_path(dest), "w") as fh:
        json.dump(meta, fh, indent=2)

    evaluation = {
        "study": study.study_name, "trial": trial.number, "model": os.path.abspath(dest), "class_names": list(class_names),
        "decision": decision, "validation": validation, "test": tested, "versions": versions,
        "objective": config.get("metric"), "kept_epoch": kept_epoch,
        "_y": test.y, "_probs": test_probs,
    }
    files = evaluate.write_files(evaluation, out_dir or os.path.dirname(os.path.abspath(dest)), history=history)
    check_loads(dest, sample=test.x[:8], expected=test_probs[:8])
    meta["files"] = [os.path.abspath(dest), os.path.abspath(meta_path(dest)), *files]
    return meta


def check_loads(path: str, sample: np.ndarray | None = None, expected: np.ndarray | None = None) -> None:
    """Load the model in a fresh process, as its user will; with ``sample``, check it predicts ``expected``."""
    code = (
        "import sys, numpy as np, keras\n"
        "m = keras.models.load_model(sys.argv[1])\n"
        "if len(sys.argv) > 2:\n"
        "    d = np.load(sys.argv[2])\n"
        "    got = np.asarray(m.predict(d['x'], verbose=0))\n"
        "    diff = float(np.max(np.abs(got - d['p'])))\n"
        "    sys.exit(f'reloaded model predicts differently (max difference {diff:.2g})') if diff > 1e-4 else None\n"
    )
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    with tempfile.TemporaryDirectory() as tmp:
        args = [sys.executable, "-c", code, path]
        if sample is not None and expected is not None and len(sample):
            np.savez(os.path.join(tmp, "sample.npz"), x=sample, p=expected)
            args.append(os.path.join(tmp, "sample.npz"))
        proc = subprocess.run(args, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["unknown error"])[-1]
        raise ExportError(f"exported {path} does not load in a fresh process: {tail}")
