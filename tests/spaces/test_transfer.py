"""Transfer spaces: local weights files, the loud random fallback, block freezing (MobileNetV2 at 32 px)."""

from __future__ import annotations

import numpy as np
import optuna
import pytest

import spaces
from spaces import transfer

optuna.logging.set_verbosity(optuna.logging.WARNING)

PARAMS = {"trainable_blocks": 2, "head_batch_norm": True, "head_dropout": 0.1, "head_units": 32,
          "optimizer": "adam", "learning_rate": 1e-3, "fine_tune": False, "batch_size": 8}
SHAPE = (32, 32, 1)


def test_local_weights_file_is_loaded(tmp_path):
    import keras

    source = keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(32, 32, 3))
    path = tmp_path / "mobilenet_random.weights.h5"
    source.save_weights(path)
    study = optuna.create_study()
    trial = study.ask()
    model = spaces.get_space("mobilenet").build(trial, input_shape=SHAPE, num_classes=2, weights=str(path))
    backbone = model.get_layer("mobilenetv2_1.00_32")
    for mine, theirs in zip(backbone.get_weights(), source.get_weights()):
        np.testing.assert_array_equal(mine, theirs)
    assert trial.user_attrs["backbone_weights"] == str(path)
    assert "weights_warning" not in trial.user_attrs


def test_missing_weights_file_is_a_user_error(tmp_path):
    with pytest.raises(spaces.SpaceError, match="does not exist") as info:
        spaces.get_space("mobilenet").build(optuna.trial.FixedTrial(PARAMS), input_shape=SHAPE, num_classes=2,
                                            weights=str(tmp_path / "nope.h5"))
    assert info.value.user_error


def test_unavailable_imagenet_falls_back_to_random_loudly(monkeypatch):
    def offline(make, shape):
        raise OSError("URL fetch failure: no network")

    monkeypatch.setattr(transfer, "imagenet_backbone", offline)
    monkeypatch.setattr(transfer, "WEIGHTS_FAILED", {})
    study = optuna.create_study()
    trial = study.ask()
    with pytest.warns(UserWarning, match="RANDOM weights"):
        spaces.get_space("mobilenet").build(trial, input_shape=SHAPE, num_classes=2)
    assert trial.user_attrs["backbone_weights"] == "random"
    assert "URL fetch failure" in trial.user_attrs["weights_warning"]
    assert "--weights" in study.user_attrs["weights_warning"]  # stored with the study, not only printed
    second = study.ask()  # the failure is remembered: no second fetch, but the warning still recorded
    spaces.get_space("mobilenet").build(second, input_shape=SHAPE, num_classes=2)
    assert second.user_attrs["weights_warning"] == trial.user_attrs["weights_warning"]


@pytest.mark.parametrize("blocks", [0, 2])
def test_trainable_blocks_unfreeze_only_the_last_blocks(blocks, tmp_path):
    import keras

    path = tmp_path / "w.weights.h5"
    keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(32, 32, 3)).save_weights(path)
    model = spaces.get_space("mobilenet").build(optuna.trial.FixedTrial({**PARAMS, "trainable_blocks": blocks}),
                                                input_shape=SHAPE, num_classes=2, weights=str(path))
    backbone = model.get_layer("mobilenetv2_1.00_32")
    trainable = {layer.name for layer in backbone.layers if layer.trainable and layer.weights}
    if blocks == 0:
        assert trainable == set()
    else:
        assert trainable and all(name.startswith(("block_15_", "block_16_", "Conv_1")) for name in trainable)
        assert any(name.startswith("block_15_") for name in trainable)
    assert not any(isinstance(layer, keras.layers.BatchNormalization) and layer.trainable for layer in backbone.layers)


def test_random_backbone_trains_its_batch_norm():
    import keras

    model = spaces.get_space("mobilenet").build(optuna.trial.FixedTrial({**PARAMS, "trainable_blocks": 0}),
                                                input_shape=SHAPE, num_classes=2, weights="random")
    layers = model.get_layer("mobilenetv2_1.00_32").layers
    norms = [layer for layer in layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert norms and all(layer.trainable for layer in norms)
    assert not any(layer.trainable and layer.weights for layer in layers if layer not in norms)


def test_grayscale_is_repeated_and_preprocessed_inside_the_model():
    model = spaces.get_space("vgg19").build(optuna.trial.FixedTrial(PARAMS), input_shape=SHAPE, num_classes=2, weights="random")
    names = [layer.name for layer in model.layers]
    assert names.index("gray_to_rgb") < names.index("preprocess") < names.index("vgg19")
    rgb = spaces.get_space("vgg19").build(optuna.trial.FixedTrial(PARAMS), input_shape=(32, 32, 3), num_classes=2, weights="random")
    flip = rgb.get_layer("rgb_to_bgr")
    assert not flip.trainable
    x = np.zeros((1, 1, 1, 3), dtype="float32")
    x[..., 0] = 1.0  # red in, blue channel position (last) out
    np.testing.assert_allclose(np.einsum("...c,cd->...d", x, flip.get_weights()[0][0, 0]), [[[[0, 0, 1]]]])


def test_fine_tune_trials_ask_fit_for_a_second_phase():
    trial = optuna.trial.FixedTrial({**PARAMS, "fine_tune": True, "fine_tune_lr_factor": 0.1})
    options = transfer.fit_options(trial)
    assert options["second_phase"] == {"start": transfer.FINE_TUNE_START, "learning_rate": pytest.approx(1e-4)}
    assert "second_phase" not in transfer.fit_options(optuna.trial.FixedTrial(PARAMS))
