"""The documents' CNN (their section 2.1.1)."""

from __future__ import annotations

import keras

from keras_bigmodel import validation as v
from zoo.presets._blocks import augmentation_block
from zoo.registry import preset
from zoo.views import DataView, ModelInput

__all__ = ["cnn", "plain_cnn"]


def plain_cnn() -> keras.Model:
    """The documents' network, layer for layer, in plain Keras."""
    inputs = keras.Input((64, 64, 3))
    x = keras.layers.Conv2D(32, (3, 3), activation="relu")(inputs)
    x = keras.layers.MaxPooling2D(pool_size=(2, 2))(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(128, activation="relu")(x)
    return keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(x))


@preset(
    "cnn",
    description="The documents' CNN: Conv2D(32, 3x3, relu) -> MaxPooling2D(2) -> Flatten -> "
    "Dense(128, relu) -> Dense(10, softmax), for 64x64x3 images.",
    tiny={"input_shape": (8, 8, 1), "filters": 4, "dense_units": 8, "num_classes": 3},
    variants={"augmented": {"augmentation": {"rotation": 0.05, "flip": None, "seed": 1}}},
    data=DataView(inputs=(ModelInput("image", "image"),)),
    plain_keras=plain_cnn,
)
def cnn(
    input_shape=(64, 64, 3),
    num_classes=10,
    filters=32,
    kernel_size=3,
    pool_size=2,
    dense_units=128,
    dropout=0.0,
    augmentation=None,
    dtype=None,
    name="cnn",
) -> keras.Model:
    """Builds the documents' CNN.

    With the defaults this is layer for layer the documents' network (3,938,570
    parameters). `augmentation` (True or a dict of `image_augmentation`
    arguments) puts a training-only augmentation block after the input;
    `dropout` adds dropout before the classifier.
    """
    height, width, _ = v.check_shape("input_shape", input_shape, 3, 3)
    num_classes = v.check_positive_int("num_classes", num_classes)
    filters = v.check_positive_int("filters", filters)
    kernel_size = v.check_positive_int("kernel_size", kernel_size)
    pool_size = v.check_positive_int("pool_size", pool_size)
    dense_units = v.check_positive_int("dense_units", dense_units)
    dropout = v.check_rate("dropout", dropout)
    dtype = v.check_dtype_policy("dtype", dtype)
    block = augmentation_block(augmentation)
    if block is not None and block.layers[0].name == "resize":
        height, width = block.layers[0].height, block.layers[0].width
    if min(height, width) - kernel_size + 1 < pool_size:
        raise ValueError(
            f"`input_shape` {tuple(input_shape)} is too small for kernel_size={kernel_size} "
            f"followed by pool_size={pool_size}"
        )

    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = inputs if block is None else block(inputs)
    x = keras.layers.Conv2D(filters, kernel_size, activation="relu", dtype=dtype, name="conv")(x)
    x = keras.layers.MaxPooling2D(pool_size, dtype=dtype, name="pool")(x)
    x = keras.layers.Flatten(dtype=dtype, name="flatten")(x)
    x = keras.layers.Dense(dense_units, activation="relu", dtype=dtype, name="dense")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, dtype=dtype, name="dropout")(x)
    outputs = keras.layers.Dense(
        num_classes, activation="softmax", dtype=dtype, name="predictions"
    )(x)
    return keras.Model(inputs, outputs, name=v.check_name("name", name))
