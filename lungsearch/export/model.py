"""The exported Keras file itself: K models averaged into one, and the check that a saved file loads in a fresh process.

The ensemble is a plain Keras model (each member a named sub-model), so it
loads and predicts like a single one; :func:`check_loads` reloads the file as
its user will and, given a sample, checks that it predicts what was measured.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

import numpy as np

from lungsearch.export.base import ExportError


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


def members_of(model) -> list[str]:
    """The names of the sub-models whose probabilities ``model`` averages, as :func:`ensemble_model` and
    :func:`lungsearch.export.refined.build_model` build it; [] where it averages none.

    Called on a model the export has just built, and written into model.json
    (``members``), so that what reads the export (Grad-CAM) knows it is an
    ensemble instead of guessing from the model's shape.
    """
    import keras

    if not isinstance(model.layers[-1], keras.layers.Average):
        return []
    return [layer.name for layer in model.layers if isinstance(layer, keras.Model)]


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
