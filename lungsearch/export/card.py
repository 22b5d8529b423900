"""The model card written with every export, and the external results `evaluate` appends to it.

What a paper or an ethics board asks of a medical model (TRIPOD-AI and CLAIM
list it: the data, the patient split, the threshold and how it was chosen,
every metric with its interval, external results, limits) is all in what an
export already holds: its ``model.json``, the evaluation it has just written
and the study's stored attributes.  The card (Mitchell et al. 2019, "Model
Cards for Model Reporting") puts it in one Markdown file beside the model,
so nobody assembles it by hand; nothing is measured or read again for it.

The card is named after its model like the ``.json`` is, with one exception
for the name everyone uses: ``MODEL_CARD.md`` beside ``model.keras``, and
``<stem>.MODEL_CARD.md`` beside any other ``<stem>.keras`` (two models in one
folder keep a card each).  :func:`markdown` and :func:`external_section` are
pure (records in, text out); :func:`write` stages the card with the export's
other files, :func:`append_external` adds a section in place, atomically.
"""

from __future__ import annotations

import datetime
import os
import platform
import stat
import tempfile

DEFAULT_STEM = "model"  # `best --export model.keras`, the name the docs use: its card is plain MODEL_CARD.md
CARD_NAME = "MODEL_CARD.md"

# When a figure is worth a line under "Limitations seen" (each a judgement, stated in the line it gives)
GAP = 0.15  # test sensitivity and specificity this far apart: the threshold trades one for the other
DROP = 0.05  # a validation figure this far above test's: validation flatters the model
SATURATED = 0.995  # validation AUC at or above this cannot rank models or place a threshold
WIDE = 0.10  # a test 95% CI wider than this: the test split is too small to pin the figure down

# The card's metric rows: the summary first (named as evaluation.json names them), then the per-class ones
MAIN = ("roc_auc", "accuracy", "balanced_accuracy", "sensitivity", "specificity")
EVALUATION_FILES = (("evaluation.md", "evaluation report"), ("evaluation.json", "every figure, as JSON"),
                    ("roc_curve.png", "ROC curve (test)"), ("confusion_matrix.png", "confusion matrix (test)"),
                    ("training_curves.png", "training curves"))


def card_path(model_path: str) -> str:
    """The card beside ``model_path``: MODEL_CARD.md for model.keras, else <stem>.MODEL_CARD.md."""
    folder, name = os.path.split(model_path)
    stem = os.path.splitext(name)[0]
    return os.path.join(folder, CARD_NAME if stem == DEFAULT_STEM else f"{stem}.{CARD_NAME}")


def study_facts(study, trials) -> dict:
    """What the card needs from the study that model.json does not hold: settings, weights each trial started from."""
    attrs = study.user_attrs
    return {
        "config": attrs.get("config") or {},
        "weights": {t.number: t.user_attrs.get("backbone_weights") for t in trials},
        "weights_warning": attrs.get("weights_warning"),
        "skipped": len(attrs.get("skipped_files") or ()),
    }


def environment() -> dict:
    """Versions the card states beside model.json's: Python and the installed TensorFlow (read from its metadata, not imported)."""
    from importlib import metadata

    found = {}
    for dist in ("tensorflow", "tensorflow-cpu"):
        try:
            found["tensorflow"] = metadata.version(dist)
            break
        except metadata.PackageNotFoundError:
            continue
    return {"python": platform.python_version(), **found}


def write(folder: str, eval_dir: str, files: list[str], meta: dict, evaluation: dict, facts: dict) -> str:
    """Write the card of ``evaluation["model"]`` into the staging ``folder``; links go to ``files`` as they land in ``eval_dir``."""
    model = evaluation["model"]
    links = _links(files, eval_dir, os.path.dirname(model))
    text = markdown(meta, evaluation, facts, links, written=_now(), env=environment())
    path = os.path.join(folder, os.path.basename(card_path(model)))
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)
    return path


def append_external(model_path: str, meta: dict, evaluation: dict, files: list[str], log=print) -> str | None:
    """Add ``evaluation`` (of `lungsearch evaluate`) to the end of the model's card; None, said in one line, where it cannot.

    The old text is kept byte for byte: the new file is the old one plus the
    section, written beside it and renamed over it, so a reader never sees half.
    """
    path = card_path(os.path.abspath(model_path))
    if not os.path.isfile(path):
        log(f"note: no model card {path} beside the model (exported before cards, or not copied with it); "
            "the results are in the evaluation files only")
        return None
    with open(path, encoding="utf-8") as fh:
        old = fh.read()
    sha = meta.get("model_sha256")
    if sha and sha not in old:
        log(f"note: {path} describes another model (its sha256 is not this model's); not appended to")
        return None
    links = _links(files, os.path.dirname(os.path.abspath(files[0])), os.path.dirname(path)) if files else {}
    text = old + ("" if old.endswith("\n") else "\n") + "\n" + external_section(evaluation, links, written=_now())
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=".lungsearch-card-", dir=os.path.dirname(path))
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, stat.S_IMODE(os.stat(path).st_mode))  # mkstemp's 0600 would hide the card from the rest of the lab
        os.replace(tmp, path)
    except OSError as exc:
        if tmp and os.path.exists(tmp):
            os.remove(tmp)
        log(f"note: cannot append to {path} ({exc.strerror or exc}); the results are in the evaluation files only")
        return None
    return path


def markdown(meta: dict, evaluation: dict, facts: dict, links: dict, *, written: str, env: dict) -> str:
    """The card's text: every section, from model.json (``meta``), the export's ``evaluation`` and the study's ``facts``."""
    names = list(meta["class_names"])
    title = os.path.basename(evaluation.get("model") or "model.keras")
    lines = [f"# Model card: {title}", "",
             f"Written by `lungsearch best --export` on {written} from study `{meta.get('study')}`; "
             f"model sha256 `{meta.get('model_sha256')}`.", ""]
    lines += _intended_use(meta, names)
    lines += _data(meta, evaluation, facts, names)
    lines += _model(meta, facts)
    lines += _decision(meta, names)
    lines += _performance(meta, evaluation, links)
    lines += ["## Limitations seen", "", "Computed from the figures above when the card was written:", ""]
    lines += [f"- {line}" for line in limitations(meta, evaluation, facts)] + [""]
    lines += _versions(meta, facts, env, written)
    return "\n".join(lines) + "\n"


def external_section(evaluation: dict, links: dict, *, written: str) -> str:
    """The section `lungsearch evaluate` appends: the folder, its counts, each metric with its 95% CI, links to its files."""
    test = evaluation["test"]
    d = evaluation.get("decision") or {}
    names = evaluation["class_names"]
    rule = (f"{names[d['positive']]} when its probability >= {d['threshold']:.4f}" if d.get("threshold") is not None
            else "the most probable class")
    lines = [f"## External evaluation: {evaluation.get('data_folder', '?')}", "",
             f"Scored on {written} by `lungsearch evaluate` with the decision stored with the model ({rule}; not chosen again): "
             f"{test['n']} images ({_counts(test['counts'])}).", "",
             "| metric | value | 95% CI |", "|---|---|---|"]
    lines += [f"| {k} | {_f(m['value'])} | {_ci(m)} |" for k, m in _rows(test["metrics"])]
    lines += ["", _ci_note(test), ""]
    lines += _link_line(links) + [""]
    return "\n".join(lines)


def limitations(meta: dict, evaluation: dict, facts: dict) -> list[str]:
    """One line per weakness the figures show, each with its numbers; the last says external results are still absent."""
    data = meta.get("data") or {}
    test = evaluation["test"]
    val = (evaluation.get("validation") or {}).get("metrics") or {}
    t = {k: m["value"] for k, m in test["metrics"].items()}
    on = _validation_name(meta)
    out = []
    sens, spec = t.get("sensitivity"), t.get("specificity")
    if sens is not None and spec is not None and abs(sens - spec) >= GAP:
        low, high = (("specificity", spec), ("sensitivity", sens)) if spec < sens else (("sensitivity", sens), ("specificity", spec))
        out.append(f"{low[0]} on test ({low[1]:.2f}) far below {high[0]} ({high[1]:.2f}): at this threshold the model "
                   f"{'over-calls the disease' if low[0] == 'specificity' else 'misses disease'}; another threshold "
                   "(`best --min-sensitivity` or `--threshold-rule`) trades one for the other")
    for key in ("roc_auc", "balanced_accuracy"):
        v = (val.get(key) or {}).get("value")
        if v is not None and t.get(key) is not None and v - t[key] >= DROP:
            out.append(f"test {key} ({t[key]:.3f}) well below {on} ({v:.3f}): the test images differ from the training "
                       f"ones (another source, time or scanner), or {on} flatters the model, which was chosen and thresholded on it")
    val_auc = (val.get("roc_auc") or {}).get("value")
    if val_auc is not None and val_auc >= SATURATED:
        out.append(f"{on} saturated (AUC {val_auc:.3f}): it can neither rank the trials nor place the threshold finely; "
                   "a larger or harder validation set (or `lungsearch refine`) would")
    wide = [(k, m) for k, m in _rows(test["metrics"]) if k in MAIN and _width(m) is not None and _width(m) > WIDE]
    if wide:
        k, m = max(wide, key=lambda km: _width(km[1]))
        out.append(f"test set small ({test['n']} images: {_counts(test['counts'])}): 95% CIs are wide, "
                   f"e.g. {k} {_f(m['value'])} [{_ci(m)}]")
    grouping = data.get("grouping") or {}
    if grouping.get("by") == "image":
        out.append(f"validation split by image, not by patient: {grouping.get('of', 0) - grouping.get('matched', 0)} of "
                   f"{grouping.get('of')} file names hold no patient id, so one patient's images may sit in train and validation")
    if data.get("group_overlap"):
        out.append(f"{data['group_overlap']} patients have images in both train and validation")
    if data.get("duplicates_left"):
        out.append(f"{data['duplicates_left']} byte-identical duplicate images left in train/validation (`run --dedupe` drops them)")
    if facts.get("weights_warning"):
        out.append(f"pretrained weights were not available during the search: {facts['weights_warning']}")
    if data.get("fingerprint") and data.get("fingerprint_now") and data["fingerprint"] != data["fingerprint_now"]:
        out.append("the training images changed between the search and the export (data fingerprints differ)")
    threshold = (meta.get("decision") or {}).get("threshold")
    if threshold is not None and not 0.0 < threshold < 1.0:
        out.append(f"the threshold is {threshold:.4f}: the model decides one class for every image")
    out.append("no external evaluation at export time: every figure above comes from one data folder, split three ways; "
               f"`lungsearch evaluate --model {os.path.basename(evaluation.get('model') or 'model.keras')} --data DIR` "
               "on other hospitals' images appends its results below")
    return out


def _intended_use(meta: dict, names: list[str]) -> list[str]:
    return [
        "## Intended use", "",
        f"Research, and decision support under a clinician's review: it gives the probability of each of its classes "
        f"({', '.join(names)}) for one {meta.get('color_mode', '?')} chest X-ray of the kind it was trained on "
        f"({_source(meta)}).", "",
        "Not for:", "",
        "- diagnosis on its own: it is not a medical device and has no regulatory clearance;",
        f"- any finding outside {', '.join(names)}: an image of another disease is still given one of these classes;",
        "- other kinds of images than it was trained on (e.g. lateral views, CT slices, photographs of film);",
        "- other populations (ages, hospitals, scanners), unless an external evaluation below shows it holds there.", "",
    ]


def _data(meta: dict, evaluation: dict, facts: dict, names: list[str]) -> list[str]:
    data = meta.get("data") or {}
    counts, per_class, groups = data.get("counts") or {}, data.get("class_counts") or {}, data.get("groups") or {}
    test = evaluation["test"]
    lines = ["## Data", "", f"Folder: `{data.get('source', '?')}`" + (f" (layout {data['layout']})" if data.get("layout") else "") + ".", "",
             "| split | images | per class | patients |", "|---|---|---|---|"]
    for split, label in (("train", "train"), ("val", "validation")):
        lines.append(f"| {label} | {counts.get(split, '?')} | {_counts(per_class.get(split)) or '?'} | {groups.get(split, '?')} |")
    lines.append(f"| test | {test['n']} | {_counts(test['counts'])} | not counted |")
    grouping = data.get("grouping") or {}
    by = grouping.get("by")
    split = data.get("validation") or "?"
    if by == "image":  # studies made before 2026-12-06 stored "by patient" for every carved split; the grouping says which
        split = split.replace(" by patient", "").replace(" by image", "")  # said once, by `how` below
    how = {"patient": "grouped by patient (no patient on both sides)", "image": "by image (file names hold no patient id)"}.get(by, "")
    lines += ["", f"Validation: {split}" + (f", {how}" if how else "") +
              (f"; patient id from file names by the pattern `{data['group_pattern']}`" if data.get("group_pattern") else "") +
              (f" ({grouping['matched']} of {grouping['of']} names matched, {grouping['patients']} patients)" if "patients" in grouping else "") + "."]
    if data.get("split_record"):
        lines.append(f"The test split was carved from the folder once and recorded in `{data['split_record']}`.")
    dropped = len(data.get("deduped") or ())
    lines.append(f"Duplicates: {dropped} byte-identical copies dropped (`--dedupe` {'on' if facts['config'].get('dedupe') else 'off'}), "
                 f"{data.get('duplicates_left', '?')} left in train/validation; {facts.get('skipped', 0)} unreadable files skipped"
                 + (f"; ignored sub-folders: {', '.join(data['ignored_subfolders'])}" if data.get("ignored_subfolders") else "") + ".")
    lines += [f"Note: {n}." for n in data.get("notes") or ()]
    lines.append("The test split was read once, by this export; it chose neither the model nor the threshold.")
    return lines + [""]


def _model(meta: dict, facts: dict) -> list[str]:
    space = meta.get("space") or {}
    lines = ["## Model", "", f"Space `{space.get('name', '?')}`" + (f" (from `{space['source']}`)" if space.get("source") not in (None, space.get("name")) else "")
             + f"; {meta.get('param_count', '?')} parameters; input {meta.get('image_size')}x{meta.get('image_size')} "
             f"{meta.get('color_mode')}, raw pixels (rescaling is inside the model).", ""]
    if meta.get("refined"):
        r = meta["refined"]
        lines.append(f"Refined (`lungsearch refine`, rule `{r['rule']}`): each finalist's {r['folds']} fold models, refitted on folds "
                     "of every training image, averaged; finalists (weight: out-of-fold AUC):")
        lines += [f"- trial #{n} x{c}: OOF AUC {_f((r['finalists'].get(n) or {}).get('oof_auc'))}" for n, c in r["weights"].items()]
        if (r.get("fold_calibration") or {}).get("method") == "platt":
            lines += ["", "Each fold model was calibrated before averaging: sigmoid(a * logit(p) + b) on the disease class, a and b "
                          "fitted on that model's own held-out images (Platt scaling) and folded into its last layer."]
    elif meta.get("ensemble"):
        lines.append(f"Ensemble: the probabilities of the {len(meta['ensemble'])} best trials averaged:")
        lines += [f"- trial #{m['trial']} ({meta.get('objective')} {_f(m.get('value'))}): `{m['params']}`" for m in meta["ensemble"]]
    else:
        lines.append(f"Trial #{meta.get('trial')} ({meta.get('objective')} {_f((meta.get('validation') or {}).get(meta.get('objective') or ''))}); "
                     f"params `{meta.get('params')}`.")
    lines += ["", f"Started from: {_weights(facts)}."]
    lines.append(f"Training: {meta.get('epochs', '?')} epochs, {meta.get('train_seconds', '?')} s (trial #{meta.get('trial')}"
                 f"{', trained again for the export' if meta.get('retrained') else ''}); objective {meta.get('objective')}; "
                 f"class weights {'on' if facts['config'].get('class_weights', True) else 'off'}.")
    return lines + [""]


def _decision(meta: dict, names: list[str]) -> list[str]:
    d = meta.get("decision") or {}
    lines = ["## Decision", ""]
    if d.get("threshold") is None:
        return lines + [f"The most probable class: {d.get('rule', 'argmax')}.", ""]
    positive = names[d["positive"]]
    lines.append(f"Positive (disease) class: **{positive}** (index {d['positive']} of {', '.join(names)}): the model says {positive} "
                 f"when its probability is >= **{d['threshold']:.4f}**, else {names[1 - d['positive']]}.")
    lines.append(f"Chosen by: {d.get('rule')}, on the {d.get('chosen_on', 'validation split')}"
                 + (f" (sensitivity {_f(d.get('val_sensitivity'))}, specificity {_f(d.get('val_specificity'))} there)" if d.get("val_sensitivity") is not None else "")
                 + ". The test split played no part.")
    return lines + [""]


def _performance(meta: dict, evaluation: dict, links: dict) -> list[str]:
    test = evaluation["test"]
    val = (evaluation.get("validation") or {}).get("metrics") or {}
    on = _validation_name(meta)
    lines = ["## Performance", "",
             f"| metric | {on} | 95% CI | test | 95% CI |", "|---|---|---|---|---|"]
    for key, m in _rows(test["metrics"]):
        v = val.get(key) or {}
        lines.append(f"| {key} | {_f(v.get('value'))} | {_ci(v)} | {_f(m['value'])} | {_ci(m)} |")
    lines += ["", _ci_note(test) + f" The {on} predictions chose the model and its threshold, so their figures flatter it; test's do not.", ""]
    names = list(meta["class_names"])
    lines += ["Test confusion matrix (rows true, columns predicted):", "", "| | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    lines += [f"| {n} | " + " | ".join(str(v) for v in row) + " |" for n, row in zip(names, test["confusion_matrix"])]
    return lines + [""] + _link_line(links) + [""]


def _versions(meta: dict, facts: dict, env: dict, written: str) -> list[str]:
    export = (meta.get("versions") or {}).get("export") or {}
    search = (meta.get("versions") or {}).get("search") or {}
    now = {"lungsearch": export.get("lungsearch"), "keras": export.get("keras"), "backend": export.get("backend"),
           "tensorflow": env.get("tensorflow"), "optuna": export.get("optuna"), "python": env.get("python")}
    lines = ["## Versions", "", "Export: " + ", ".join(f"{k} {v}" for k, v in now.items() if v) + f"; {written}."]
    if search and any(search.get(k) != export.get(k) for k in search):
        lines.append("Search: " + ", ".join(f"{k} {v}" for k, v in search.items() if v) + ".")
    config = facts.get("config") or {}
    keys = ("data", "space", "trials", "epochs", "metric", "sampler", "pruner", "seed", "val_fraction", "image_size", "color",
            "group_pattern", "dedupe", "hflip", "weights")
    settings = ", ".join(f"{k} {config[k]}" for k in keys if config.get(k) is not None)
    lines.append("The command lines are not recorded; the search's settings (stored with the study): " + (settings or "none stored") + ".")
    return lines


def _weights(facts: dict) -> str:
    said = {}
    for number, w in (facts.get("weights") or {}).items():
        text = ("random initialisation (no pretrained weights)" if w == "random" else
                f"ImageNet weights: {w}" if str(w).startswith("imagenet") else
                f"the weights file {w}" if w else "random initialisation (the space records no pretrained weights)")
        said.setdefault(text, []).append(f"#{number}")
    if len(said) == 1:
        return next(iter(said))
    return "; ".join(f"{', '.join(ns)}: {text}" for text, ns in said.items())


def _validation_name(meta: dict) -> str:
    """The column the threshold was chosen on: the validation split, or refine's out-of-fold predictions."""
    return "out-of-fold" if meta.get("refined") else "validation"


def _source(meta: dict) -> str:
    source = (meta.get("data") or {}).get("source")
    return f"the images of `{os.path.basename(os.path.normpath(source))}`" if source else "its training images"


def _rows(metrics: dict):
    """The summary metrics first, then the per-class ones, as evaluation.json holds them."""
    first = [(k, metrics[k]) for k in MAIN if k in metrics]
    return first + [(k, m) for k, m in metrics.items() if k not in MAIN]


def _ci_note(test: dict) -> str:
    return (f"95% CIs: percentile bootstrap over the images ({test['bootstrap']['resamples']} resamples, threshold fixed); "
            "W marks a Wilson score interval, for a proportion of 0/n or n/n.")


def _link_line(links: dict) -> list[str]:
    shown = [f"[{label}]({links[name]})" for name, label in EVALUATION_FILES if name in links]
    return ["Files: " + ", ".join(shown) + "."] if shown else []


def _links(files: list[str], where: str, card_dir: str) -> dict:
    """File name -> its Markdown link from the card's folder ``card_dir``, for ``files`` that land in ``where``."""
    rel = os.path.relpath(where, card_dir).replace(os.sep, "/")
    return {os.path.basename(f): os.path.basename(f) if rel == "." else f"{rel}/{os.path.basename(f)}" for f in files}


def _width(m: dict) -> float | None:
    lo, hi = m.get("ci95") or (None, None)
    return None if lo is None or hi is None else hi - lo


def _ci(m: dict) -> str:
    lo, hi = m.get("ci95") or (None, None)
    if lo is None or hi is None:
        return "n/a"
    return f"{lo:.3f} - {hi:.3f}" + (" W" if m.get("ci_method") == "wilson" else "")


def _counts(counts: dict | None) -> str:
    return ", ".join(f"{k} {v}" for k, v in (counts or {}).items())


def _f(v) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
