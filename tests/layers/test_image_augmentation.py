"""kbm.augment: Keras preprocessing layers, active only in training, saved with the model."""

import keras
import numpy as np
import pytest
from harness import layer_case, layer_contract, to_numpy

import keras_bigmodel as kbm
import zoo
from keras_bigmodel.augment import ImageAugmentation, image_augmentation

X = np.random.default_rng(0).uniform(size=(4, 16, 16, 3)).astype("float32")

CASES = [
    layer_case(
        "rotate_zoom",
        lambda **kw: image_augmentation(rotation=0.05, flip=None, zoom=0.1, seed=1, **kw),
        [(8, 8, 1)],
        quantizable=False,
        stochastic=True,
        trainable_weights=0,
    ),
]
test_contract = layer_contract(CASES)


def test_block_is_made_of_keras_preprocessing_layers():
    block = image_augmentation(
        rotation=0.1,
        flip="horizontal",
        zoom=0.1,
        translation=0.1,
        contrast=0.2,
        resize=(12, 12),
        seed=1,
    )
    assert isinstance(block, ImageAugmentation) and isinstance(block, keras.Sequential)
    assert [type(layer).__name__ for layer in block.layers] == [
        "Resizing",
        "RandomFlip",
        "RandomRotation",
        "RandomZoom",
        "RandomTranslation",
        "RandomContrast",
    ]


def test_identity_unless_training():
    block = image_augmentation(rotation=0.2, flip="horizontal_and_vertical", zoom=0.2, seed=3)
    np.testing.assert_array_equal(to_numpy(block(X)), X)  # default: inference
    np.testing.assert_array_equal(to_numpy(block(X, training=False)), X)
    assert not np.allclose(to_numpy(block(X, training=True)), X)
    inputs = keras.Input((16, 16, 3))
    model = keras.Model(inputs, block(inputs))
    np.testing.assert_array_equal(to_numpy(model(X)), X)  # a plain call inside a model
    np.testing.assert_array_equal(model.predict(X, verbose=0), X)
    assert not np.allclose(to_numpy(model(X, training=True)), X)


def test_resize_runs_always():
    block = image_augmentation(rotation=0.0, flip=None, zoom=0.0, resize=(8, 8))
    out = to_numpy(block(X))
    assert out.shape == (4, 8, 8, 3)
    np.testing.assert_allclose(out, to_numpy(keras.layers.Resizing(8, 8)(X)), atol=1e-6)


def test_saves_and_reloads_inside_a_model(tmp_path):
    model = zoo.build("cnn", input_shape=(16, 16, 3), augmentation={"rotation": 0.1, "seed": 2})
    assert isinstance(model.get_layer("augmentation"), ImageAugmentation)
    kbm.save_model(model, tmp_path / "aug.keras")
    restored = kbm.load_model(tmp_path / "aug.keras")
    assert isinstance(restored.get_layer("augmentation"), ImageAugmentation)
    np.testing.assert_allclose(
        restored.predict(X, verbose=0), model.predict(X, verbose=0), atol=1e-6
    )
    np.testing.assert_array_equal(to_numpy(restored.get_layer("augmentation")(X)), X)


def test_crossmodal_takes_augmentation_too():
    model = zoo.build("crossmodal", augmentation=True)
    assert isinstance(model.get_layer("augmentation"), ImageAugmentation)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"rotation": 1.5}, r"`rotation` must be a number in \[0, 1\)"),
        ({"zoom": -0.1}, r"`zoom` must be"),
        ({"flip": "diagonal"}, r"`flip` must be one of"),
        ({"resize": (8,)}, r"`resize` must be a shape"),
        ({"seed": "one"}, r"`seed` must be an integer"),
        ({"rotation": 0, "flip": None, "zoom": 0}, r"got nothing to do"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        image_augmentation(**kwargs)
