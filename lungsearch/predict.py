"""Classify image files with an exported model, decoded exactly as in training.

The model's .json (written by ``lungsearch best``) says the image size, color
mode, class names and decision threshold; without it a model is refused.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import numpy as np

from lungsearch.data import IMAGE_EXTENSIONS, channels, decode
from lungsearch.data.decoding import reason
from lungsearch.evaluate import decide
from lungsearch.export import FORMAT, meta_path

REQUIRED = ("class_names", "image_size", "color_mode")


class PredictError(ValueError):
    """Images or a model that predict cannot use."""

    user_error = True  # the CLI prints it on one line and exits 2


@dataclass
class Prediction:
    path: str
    probabilities: dict[str, float]
    decision: str
    image: np.ndarray  # the decoded input, (H, W, C) uint8


def load_meta(model_path: str) -> dict:
    if not os.path.isfile(model_path):
        raise PredictError(f"model {model_path} does not exist; export one with `lungsearch best --export {model_path}`")
    path = meta_path(model_path)
    if not os.path.isfile(path):
        raise PredictError(f"{model_path} has no lungsearch metadata {path}; export it with `lungsearch best --export`")
    try:
        with open(path) as fh:
            meta = json.load(fh)
    except (OSError, json.JSONDecodeError) as exc:
        raise PredictError(f"{path} is not readable lungsearch metadata: {exc}") from None
    missing = [k for k in REQUIRED if k not in meta]
    if meta.get("format") != FORMAT and missing:
        raise PredictError(f"{path} is not lungsearch metadata (missing {', '.join(missing)}); export the model with `lungsearch best --export`")
    if missing:
        raise PredictError(f"{path} lacks {', '.join(missing)}; export the model again with `lungsearch best --export`")
    return meta


def model_input(meta: dict) -> tuple[int, str]:
    """The image size and color mode a model's .json says it takes: the one reader of them (predict, evaluate)."""
    return int(meta["image_size"]), meta["color_mode"]


def load_model(model_path: str, meta: dict):
    """The Keras model at ``model_path``, refused unless it is the model its .json describes.

    The checksum stored by `best` must match the file (a model overwritten
    without its JSON, or the other way round), and so must the class count
    and the input shape, for JSONs written before the checksum was stored.
    """
    import keras

    from lungsearch.export.staging import sha256
    from spaces import augment

    again = "export it again with `lungsearch best --export`"
    stored = meta.get("model_sha256")
    if stored and sha256(model_path) != stored:
        raise PredictError(f"{model_path} is not the model {meta_path(model_path)} describes (its checksum differs); {again}")
    augment.register()  # models exported before augmentation was left out of the file hold RandomAffine
    try:
        model = keras.models.load_model(model_path, compile=False)  # predicting needs no optimizer (nor its stored state)
    except Exception as exc:  # Keras raises many kinds on a file that is not a model (ValueError, OSError, zipfile errors)
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise PredictError(f"{model_path} does not load as a Keras model ({type(exc).__name__}: {reason[:200]}); {again}") from None
    names = list(meta["class_names"])
    outputs = model.output_shape[-1] if isinstance(model.output_shape, tuple) else None
    if outputs != len(names):
        raise PredictError(f"{model_path} gives {outputs} class probabilities, its .json names {len(names)} classes "
                           f"({', '.join(names)}): the two files are not one export; {again}")
    size, color_mode = model_input(meta)
    wanted = (size, size, channels(color_mode))
    if tuple(model.input_shape[1:]) != wanted:
        raise PredictError(f"{model_path} takes inputs of shape {tuple(model.input_shape[1:])}, its .json says {wanted}: "
                           f"the two files are not one export; {again}")
    return model


def image_files(targets: list[str]) -> list[str]:
    """Files named, and the image files under folders named (recursively, sorted)."""
    files = []
    for target in targets:
        if os.path.isdir(target):
            found = sorted(
                os.path.join(d, f) for d, _, names in os.walk(target) for f in names
                if not f.startswith(".") and f.lower().endswith(IMAGE_EXTENSIONS)
            )
            if not found:
                raise PredictError(f"folder {target} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
            files += found
        elif os.path.isfile(target):
            files.append(target)
        else:
            raise PredictError(f"{target} does not exist")
    return files


def decode_for(meta: dict, path: str) -> np.ndarray:
    try:
        return decode(path, *model_input(meta))
    except Exception as exc:  # Pillow raises many kinds on a file that is not an image
        raise PredictError(f"cannot read {path} as an image ({reason(exc)})") from None


def readable(meta: dict, paths: list[str]) -> tuple[list[str], list[np.ndarray]]:
    """The files that decode, and their images; an unreadable one is skipped with a warning line, as `run` and `evaluate` do.

    Only where none can be read is it an error.
    """
    import sys

    kept, images = [], []
    for path in paths:
        try:
            images.append(decode_for(meta, path))
            kept.append(path)
        except PredictError as exc:
            if len(paths) == 1:
                raise
            print(f"warning: skipped: {exc}", file=sys.stderr, flush=True)
    if not kept:
        raise PredictError(f"none of the {len(paths)} files could be read as an image")
    return kept, images


def predict(model, meta: dict, paths: list[str], images: list[np.ndarray] | None = None) -> list[Prediction]:
    x = np.stack(images if images is not None else [decode_for(meta, p) for p in paths])
    probs = np.asarray(model.predict(x, batch_size=64, verbose=0), dtype=np.float64)
    names = list(meta["class_names"])
    d = meta.get("decision") or {}
    chosen = decide(probs, d.get("threshold"), d.get("positive"))
    return [
        Prediction(path, {n: float(p) for n, p in zip(names, row)}, names[int(c)], img)
        for path, row, c, img in zip(paths, probs, chosen, x)
    ]


def _stem(path: str, used: set[str]) -> str:
    stem = os.path.splitext(os.path.basename(path))[0]
    name, i = stem, 1
    while name in used:
        i += 1
        name = f"{stem}-{i}"
    used.add(name)
    return name


DISPLAY_SIDE = 1024  # the longest side of an original image drawn under its Grad-CAM


def original_image(path: str) -> np.ndarray:
    """The file's own pixels for display: upright (EXIF), grayscale, at most DISPLAY_SIDE on its longest side."""
    from PIL import Image, ImageOps

    with Image.open(path) as img:
        img = ImageOps.exif_transpose(img)
        if img.mode not in ("L", "RGB"):
            img = img.convert("RGBA") if "A" in img.mode or img.mode == "P" else img
            if img.mode == "RGBA":  # as decode: transparency on black
                img = Image.alpha_composite(Image.new("RGBA", img.size, (0, 0, 0, 255)), img)
        img = img.convert("L")
        img.thumbnail((DISPLAY_SIDE, DISPLAY_SIDE), Image.BILINEAR)
        return np.asarray(img, dtype=np.uint8)


def decision_text(meta: dict, p: Prediction) -> str:
    """``PNEUMONIA: p(PNEUMONIA) 0.931 >= threshold 0.412`` -- why this class was decided."""
    names = list(meta["class_names"])
    d = meta.get("decision") or {}
    if d.get("threshold") is not None and d.get("positive") is not None:
        pos = names[int(d["positive"])]
        prob = p.probabilities[pos]
        sign = ">=" if prob >= d["threshold"] else "<"
        return f"decided {p.decision}: p({pos}) {prob:.3f} {sign} threshold {d['threshold']:.3f}"
    return f"decided {p.decision}: the most probable class (p {p.probabilities[p.decision]:.3f}; no threshold)"


def write_gradcams(model, meta: dict, predictions: list[Prediction], out_dir: str) -> list[str]:
    """One PNG per image: the original X-ray and the Grad-CAM of the decided class over it."""
    from lungsearch import gradcam

    os.makedirs(out_dir, exist_ok=True)
    c = gradcam.explain(model, meta.get("members"))  # None: an export from before model.json listed them
    names = list(meta["class_names"])
    used: set[str] = set()
    paths = []
    for p in predictions:
        cam = gradcam.grad_cam(c, p.image, names.index(p.decision))
        path = os.path.join(out_dir, f"{_stem(p.path, used)}.gradcam.png")
        try:
            shown = original_image(p.path)
        except Exception:  # decoded once already; fall back to the model's input
            shown = p.image
        note = "" if cam.max() > 0 else "\nGrad-CAM is zero: no region of this layer raises the decided class's score"
        title = f"{os.path.basename(p.path)}: {decision_text(meta, p)}{note}"
        gradcam.overlay_png(shown, cam, path, title, explained=f"{p.decision} (the decided class), layer {c.layer_name}",
                            input_side=p.image.shape[0])
        paths.append(path)
    return paths


def write_activations(model, predictions: list[Prediction], out_dir: str) -> list[str]:
    """Per image a folder with one grid of the most active feature maps per conv layer."""
    from lungsearch import gradcam

    layers = gradcam.conv_layers(model)
    x = np.stack([p.image for p in predictions])
    used: set[str] = set()
    folders = [os.path.join(out_dir, _stem(p.path, used)) for p in predictions]
    paths = []
    for i, (name, fn) in enumerate(layers):
        maps = fn(x)  # every image through this layer at once
        for p, folder, m in zip(predictions, folders, maps):
            os.makedirs(folder, exist_ok=True)
            path = os.path.join(folder, f"{i:02d}_{name.replace('/', '_')}.png")
            gradcam.activation_grid_png(m, path, f"{os.path.basename(p.path)}: {name} {m.shape[0]}x{m.shape[1]}x{m.shape[2]}")
            paths.append(path)
    return paths
