"""check_loads: an exported file is loaded in a fresh process, as its user will (the real subprocess, not the
in-process stand-in the other tests use)."""

from __future__ import annotations

import numpy as np
import pytest

from lungsearch.export.base import ExportError
from lungsearch.export.model import check_loads
from tests.conftest import check_loads_here, tiny_cnn


def _saved(tmp_path, model, name="m.keras") -> str:
    path = str(tmp_path / name)
    model.save(path)
    return path


def _model_with_a_layer_of_this_process(register: bool):
    import keras

    class Doubled(keras.layers.Layer):  # defined here: only this process knows it, registered or not
        def call(self, x):
            return x * 2

    if register:  # as lungsearch registers its augmentation layers: a fresh process that imports only Keras lacks it
        keras.saving.register_keras_serializable(package="lungsearch_test")(Doubled)

    inp = keras.Input((24, 24, 1))
    x = keras.layers.GlobalAveragePooling2D()(Doubled()(inp))
    return keras.Model(inp, keras.layers.Dense(2, activation="softmax")(x))


@pytest.mark.fresh_process
def test_a_plain_keras_file_loads_and_predicts_what_was_measured(tmp_path) -> None:
    model = tiny_cnn()
    x = np.random.default_rng(0).integers(0, 255, (4, 24, 24, 1)).astype("float32")
    path = _saved(tmp_path, model)
    check_loads(path, sample=x, expected=model.predict(x, verbose=0))
    with pytest.raises(ExportError, match="predicts differently"):
        check_loads(path, sample=x, expected=model.predict(x, verbose=0) + 0.1)


@pytest.mark.fresh_process
@pytest.mark.parametrize(("check", "register"), [(check_loads, False), (check_loads_here, False), (check_loads_here, True)],
                         ids=["fresh_process", "stand_in", "stand_in-registered"])
def test_a_layer_only_this_process_knows_fails_the_check(tmp_path, check, register) -> None:
    """The stand-in the other tests use fails where the fresh process fails: it too loads without this process's classes,
    registered ones included (a fresh process that imports only Keras has none of them)."""
    import keras

    registry = keras.saving.get_custom_objects()
    kept = dict(registry)
    try:
        path = _saved(tmp_path, _model_with_a_layer_of_this_process(register))
        with pytest.raises(ExportError, match="does not load in a fresh process"):
            check(path)
    finally:
        registry.clear()
        registry.update(kept)
