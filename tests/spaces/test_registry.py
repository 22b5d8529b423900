"""Every registered space: pinned parameter names, a tiny build, one training step, FixedTrial rebuild."""

from __future__ import annotations

import numpy as np
import optuna
import pytest

import spaces

optuna.logging.set_verbosity(optuna.logging.WARNING)

_TRANSFER = {
    "trainable_blocks": "int 0..3",
    "head_batch_norm": "one of False, True",
    "head_dropout": "float 0..0.5",
    "head_units": "int 32..512 (log)",
    "optimizer": "one of adam, adamw, rmsprop, sgd",
    "learning_rate": "float 1e-05..0.01 (log)",
    "fine_tune": "one of False, True",
    "batch_size": "int 8..64 (log)",
    "fine_tune_lr_factor": "float 0.01..0.3 (log)",
}

# Parameter names and ranges are the storage format: renaming one orphans stored studies.
PINNED = {
    "dense": {
        "dense_layers": "int 1..3",
        **{f"units_l{i}": "int 16..512 (log)" for i in range(3)},
        "activation": "one of relu, elu",
        "dropout": "float 0..0.5",
        "optimizer": "one of adam, sgd",
        "learning_rate": "float 0.0001..0.01 (log)",
        "batch_size": "int 16..128 (log)",
    },
    "cnn": {
        "normalize": "one of none, image",
        "conv_blocks": "int 1..5",
        "kernel_size": "one of 3, 5",
        "batch_norm": "one of False, True",
        "pooling": "one of max, avg",
        "activation": "one of relu, elu, swish",
        **{f"filters_b{i}": "int 8..128 (log)" for i in range(5)},
        **{f"dropout_b{i}": "float 0..0.3" for i in range(5)},
        "head": "one of gap, flatten",
        "dropout": "float 0..0.5",
        "dense_units": "int 16..256 (log)",
        "optimizer": "one of adam, adamw, rmsprop, sgd",
        "learning_rate": "float 0.0001..0.01 (log)",
        "augment": "one of off, on",
        "aug_translate": "float 0..0.15",
        "aug_zoom": "float 0..0.2",
        "aug_rotate": "float 0..0.05",
        "aug_contrast": "float 0..0.3",
        "batch_size": "int 16..128 (log)",
    },
    "mobilenet": _TRANSFER,
    "densenet121": _TRANSFER,
    "vgg19": _TRANSFER,
    "efficientnet": _TRANSFER,
    "efficientnet-lite0": _TRANSFER,
    "efficientnet-lite1": _TRANSFER,
    "efficientnet-lite2": _TRANSFER,
}
DEFAULT_SIZES = {"dense": 64, "cnn": 64, "mobilenet": 224, "densenet121": 224, "vgg19": 224, "efficientnet": 224,
                 "efficientnet-lite0": 128, "efficientnet-lite1": 128, "efficientnet-lite2": 128}
TINY = 32  # the smallest input the transfer backbones accept without their top


def test_registry_lists_the_issue_spaces():
    assert spaces.list_spaces() == ["dense", "cnn", "mobilenet", "densenet121", "vgg19", "efficientnet", "efficientnet-lite0",
                                    "efficientnet-lite1", "efficientnet-lite2"]
    assert spaces.list_spaces("*net*") == ["mobilenet", "densenet121", "efficientnet", "efficientnet-lite0", "efficientnet-lite1",
                                           "efficientnet-lite2"]


def test_keras_application_spaces_say_their_weights_need_the_network():
    for name in ("mobilenet", "densenet121", "vgg19", "efficientnet"):
        space = spaces.get_space(name)
        assert "need the network" in space.description and "--weights PATH" in space.description
        assert "efficientnet-lite0" in space.weights_note
    for name in ("efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2", "cnn"):  # nothing to fetch
        assert spaces.get_space(name).weights_note == ""


def test_transfer_spaces_are_the_rows_of_one_table():
    from spaces import backbones

    assert backbones.names() == spaces.list_spaces()[2:]
    for name in backbones.names():
        assert spaces.get_space(name).suggest is spaces.get_space("mobilenet").suggest  # one shared space


_USER_SPACE = "def build(trial, *, input_shape, num_classes, **_):\n    raise NotImplementedError\n"


@pytest.mark.parametrize("text, message", [
    ("IMAGE_SIZE = '64'\n", "IMAGE_SIZE must be an int, not str ('64')"),
    ("IMAGE_SIZE = True\n", "IMAGE_SIZE must be an int, not bool"),
    ("WARM_STARTS = {'params': {}}\n", "WARM_STARTS must be a list or a tuple, not dict"),
    ("suggest = 3\n", "suggest must be a function or None, not int"),
    ("IMAGE_SZIE = 64\n", "IMAGE_SZIE is not an attribute a space defines; did you mean IMAGE_SIZE?"),
    ("image_size = 64\n", "image_size is not an attribute a space defines; did you mean IMAGE_SIZE?"),
    ("def fit_option(trial):\n    return {'batch_size': 8}\n", "fit_option is not an attribute a space defines; did you mean fit_options?"),
])
def test_a_space_file_that_does_not_fit_the_interface_is_refused_in_one_line(tmp_path, text, message):
    path = tmp_path / "mine.py"
    path.write_text(_USER_SPACE + text)
    with pytest.raises(spaces.SpaceError) as info:
        spaces.get_space(str(path))
    assert str(info.value).startswith(f"space {path}: {message}")
    assert info.value.user_error and "\n" not in str(info.value)


def test_a_space_file_may_define_what_the_interface_lists_and_names_of_its_own(tmp_path):
    path = tmp_path / "mine.py"
    path.write_text(_USER_SPACE + "GRID = {'units': [2, 4]}\nIMAGE_SIZE = 24\n_IMAGE_SIZES = (24, 32)\nHAND_MADE = 1\n"
                    "import os\n")
    space = spaces.get_space(str(path))
    assert (space.grid, space.image_size, space.name, space.fit_options(None)) == ({"units": [2, 4]}, 24, "mine", {"batch_size": 32})
    assert spaces.get_space("tests/search/faulty_space.py").name == "faulty"  # its helpers (faults, _slow) are its own


def test_unknown_space_names_the_known_ones():
    with pytest.raises(spaces.SpaceError, match="known spaces: dense, cnn, mobilenet"):
        spaces.get_space("resnet")


@pytest.mark.parametrize("name", spaces.list_spaces())
def test_parameter_names_are_pinned(name):
    space = spaces.get_space(name)
    assert spaces.parameters(space) == PINNED[name]
    assert (space.image_size, space.color_mode) == (DEFAULT_SIZES[name], "grayscale")


def _tiny_batch(n=4, side=TINY, channels=1):
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (n, side, side, channels)).astype("float32"), np.array([0, 1] * (n // 2))


def _build_sampled(space, study, shape, **facts):
    """Ask trials until one builds (cnn prunes combinations too deep for the input)."""
    for _ in range(20):
        trial = study.ask()
        try:
            return trial, space.build(trial, input_shape=shape, num_classes=2, **facts)
        except optuna.TrialPruned:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    raise AssertionError("no sampled trial could be built")


@pytest.mark.parametrize("name", spaces.list_spaces())
def test_builds_trains_one_step_and_rebuilds_from_params(name):
    import keras

    keras.backend.clear_session()
    space = spaces.get_space(name)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    trial, model = _build_sampled(space, study, (TINY, TINY, 1), weights="random", hflip=False)
    assert set(trial.params) <= set(PINNED[name])  # nothing suggested outside the pinned names
    options = space.fit_options(trial)
    assert options["batch_size"] >= 1
    x, y = _tiny_batch()
    before = [w.copy() for w in model.get_weights()]
    loss = model.train_on_batch(x, y)
    loss = loss[0] if isinstance(loss, (list, tuple)) else loss
    assert np.isfinite(float(loss))
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))  # the step trained something
    probs = model.predict(x, verbose=0)
    assert probs.shape == (4, 2)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    rebuilt = space.build(optuna.trial.FixedTrial(trial.params), input_shape=(TINY, TINY, 1), num_classes=2, weights="random")
    assert rebuilt.count_params() == model.count_params()
    assert [type(layer).__name__ for layer in rebuilt.layers] == [type(layer).__name__ for layer in model.layers]


@pytest.mark.parametrize("name", spaces.list_spaces())
def test_fixed_facts_are_checked_at_once(name):
    space = spaces.get_space(name)
    with pytest.raises(ValueError, match="num_classes"):
        space.build(optuna.trial.FixedTrial({}), input_shape=(TINY, TINY, 1), num_classes=1)


def test_transfer_spaces_refuse_inputs_below_their_minimum():
    with pytest.raises(ValueError, match="at least 32 px"):
        spaces.get_space("mobilenet").build(optuna.trial.FixedTrial({}), input_shape=(24, 24, 1), num_classes=2)


@pytest.mark.parametrize("name", spaces.list_spaces())
def test_warm_starts_are_exactly_points_of_the_space_and_build(name):
    import keras

    space = spaces.get_space(name)
    assert space.warm_starts, f"{name} ships no known-good starting point"
    for point in space.warm_starts:
        spaces.check_warm_start(space, point)  # every param suggested there, none missing, each in range
        assert set(point["params"]) <= set(PINNED[name])
        keras.backend.clear_session()
        model = space.build(optuna.trial.FixedTrial(point["params"]), input_shape=(TINY, TINY, 1), num_classes=2, weights="random")
        assert model.output_shape == (None, 2)
        assert space.fit_options(optuna.trial.FixedTrial(point["params"]))["batch_size"] == point["params"]["batch_size"]


def test_a_warm_start_that_is_not_a_point_of_the_space_is_refused():
    space = spaces.get_space("cnn")
    good = space.warm_starts[0]
    with pytest.raises(spaces.SpaceError, match="lacks parameter 'kernel_size'"):
        spaces.check_warm_start(space, {"name": "x", "params": {k: v for k, v in good["params"].items() if k != "kernel_size"}})
    with pytest.raises(spaces.SpaceError, match="learning_rate=0.5 is not in"):
        spaces.check_warm_start(space, {"name": "x", "params": {**good["params"], "learning_rate": 0.5}})
    with pytest.raises(spaces.SpaceError, match="aug_zoom is never suggested"):  # augment is off there
        spaces.check_warm_start(space, {"name": "x", "params": {**good["params"], "aug_zoom": 0.1}})


def test_cnn_warm_start_is_the_seeds_hand_cnn():
    import keras

    params = spaces.get_space("cnn").warm_starts[0]["params"]
    keras.backend.clear_session()
    model = spaces.get_space("cnn").build(optuna.trial.FixedTrial(params), input_shape=(64, 64, 1), num_classes=2)
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert [c.filters for c in convs] == [32, 64, 128] and all(c.kernel_size == (3, 3) for c in convs)
    assert model.get_layer("dense").units == 128 and model.get_layer("dropout").rate == 0.5
    assert type(model.optimizer).__name__ == "RMSprop"
    assert float(model.optimizer.learning_rate) == pytest.approx(1e-3)
    assert not any(layer.name.startswith("aug_") for layer in model.layers)  # no augmentation


def test_trials_from_before_the_augmentation_switch_rebuild_with_augmentation():
    space = spaces.get_space("cnn")
    old = {k: v for k, v in space.warm_starts[0]["params"].items() if k != "augment"}
    old.update({"aug_translate": 0.1, "aug_zoom": 0.1, "aug_rotate": 0.02, "aug_contrast": 0.2})
    with pytest.raises(ValueError):
        space.build(optuna.trial.FixedTrial(old), input_shape=(TINY, TINY, 1), num_classes=2)
    model = space.build(optuna.trial.FixedTrial(space.fixed_params(old)), input_shape=(TINY, TINY, 1), num_classes=2)
    assert {"aug_affine", "aug_contrast"} <= {layer.name for layer in model.layers}
