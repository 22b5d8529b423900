"""External evaluation: score an exported model on any labelled folder, as `best` scored it on test.

A hospital's own images are the test that matters most.  The folder holds one
sub-folder per class (``DIR/<class>/``), or a ``test/`` split of them
(``DIR/test/<class>/``, then only test/ is read).  Class folder names are
matched to the model's class names ignoring case; a class the model does not
know is an error, a model class the folder lacks is only a note.  The model's
stored decision (threshold on the disease class, or argmax) is applied
unchanged; every metric gets a bootstrap 95% CI, with the same files as
`best` writes, and a dated section is appended to the model's card
(:mod:`lungsearch.export.card`).
"""

from __future__ import annotations

import os

import numpy as np

from lungsearch.data import IMAGE_EXTENSIONS


class ExternalError(ValueError):
    """A folder or model that cannot be evaluated as asked."""

    user_error = True  # the CLI prints it on one line and exits 2


def labelled_files(folder: str, class_names) -> tuple[list[str], np.ndarray, str]:
    """Image paths and labels (indices into ``class_names``) under ``folder``; and the folder read."""
    if not os.path.exists(folder):
        raise ExternalError(f"data folder {folder} does not exist; give --data a folder with <class>/ image folders")
    if not os.path.isdir(folder):
        raise ExternalError(f"--data {folder} is a file, not a folder; give a folder with <class>/ image folders")
    root = os.path.join(folder, "test") if os.path.isdir(os.path.join(folder, "test")) else folder
    names = list(class_names)
    by_lower = {n.lower(): i for i, n in enumerate(names)}
    found = sorted(d for d in os.listdir(root) if not d.startswith(".") and os.path.isdir(os.path.join(root, d)))
    if not found:
        raise ExternalError(f"{root} has no class folders; expected {root}/<class>/*.jpeg with classes {', '.join(names)}")
    unknown = [d for d in found if d.lower() not in by_lower]
    if unknown:
        raise ExternalError(f"{root} has class folder(s) {', '.join(unknown)} that the model does not know "
                            f"(its classes: {', '.join(names)}); rename or move them")
    paths, labels = [], []
    for d in found:
        files = sorted(os.path.join(root, d, f) for f in os.listdir(os.path.join(root, d))
                       if not f.startswith(".") and f.lower().endswith(IMAGE_EXTENSIONS))
        paths += files
        labels += [by_lower[d.lower()]] * len(files)
    if not paths:
        raise ExternalError(f"the class folders of {root} hold no images ({', '.join(IMAGE_EXTENSIONS)})")
    return paths, np.asarray(labels, dtype=int), root


def _needs(names: list[str], absent: list[str], meta: dict) -> str:
    """The per-class metrics a folder without the ``absent`` classes cannot give: sensitivity without the disease class."""
    positive = (meta.get("decision") or {}).get("positive")
    if len(names) != 2 or positive is None:
        return "their recall"
    return " and ".join("sensitivity" if names.index(n) == int(positive) else "specificity" for n in absent)


def evaluate_folder(model_path: str, folder: str, *, out_dir: str | None = None, n_bootstrap: int | None = None, log=print) -> dict:
    """Score the exported model at ``model_path`` on ``folder``; writes evaluation.json/.md and PNGs into ``out_dir``."""
    from lungsearch import data as data_mod
    from lungsearch import evaluate
    from lungsearch.predict import load_meta, model_input

    meta = load_meta(model_path)
    names = list(meta["class_names"])
    paths, y, root = labelled_files(folder, names)
    absent = [n for i, n in enumerate(names) if not np.any(y == i)]
    if absent:
        log(f"note: {root} has no {', '.join(absent)} images: metrics that need them (AUC, {_needs(names, absent, meta)}) are n/a")
    x, kept, skipped = data_mod.decode_all(paths, *model_input(meta), desc="decoding")
    for line in skipped:
        log(f"skipped unreadable image {line}")
    if not len(kept):
        raise ExternalError(f"no image of {root} could be read")
    x, y = x[kept], y[kept]

    from lungsearch.predict import load_model

    model = load_model(model_path, meta)  # refused where it is not the model its .json describes
    probs = np.asarray(model.predict(x, batch_size=64, verbose=0), dtype=np.float64)
    d = meta.get("decision") or {}
    n_boot = n_bootstrap or evaluate.N_BOOTSTRAP
    tested = evaluate.evaluate(y, probs, names, threshold=d.get("threshold"), positive=d.get("positive"), n_bootstrap=n_boot)
    out_dir = out_dir or os.path.join(os.path.dirname(os.path.abspath(model_path)),
                                      f"evaluation-{os.path.basename(os.path.normpath(folder))}")
    evaluation = {
        "study": meta.get("study"), "trial": meta.get("trial"), "model": os.path.abspath(model_path), "class_names": names,
        "data_folder": os.path.abspath(root), "decision": {**d, "rule": d.get("rule", "argmax")},
        "test": tested, "_y": y, "_probs": probs,
    }
    files = evaluate.write_files(evaluation, out_dir)
    from lungsearch.export import card

    appended = card.append_external(model_path, meta, evaluation, files, log=log)  # a missing card is a note, not an error
    return {"evaluation": evaluation, "files": files, "skipped": skipped, "folder": root, "card": appended}
