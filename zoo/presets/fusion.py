"""The documents' two-model fusion (their section on model fusion)."""

from __future__ import annotations

import keras
import numpy as np

from keras_bigmodel import validation as v
from keras_bigmodel.layers import Fusion, FusionConcat
from keras_bigmodel.layers.fusion_modes import FUSION_MODES
from zoo.registry import preset
from zoo.views import DataView, ModelInput

__all__ = ["fusion", "plain_fusion"]


def plain_fusion() -> keras.Model:
    """The documents' network in plain Keras."""
    input1, input2 = keras.Input((10,)), keras.Input((10,))
    dense1 = keras.layers.Dense(1, activation="sigmoid")(input1)
    dense2 = keras.layers.Dense(1, activation="sigmoid")(input2)
    return keras.Model([input1, input2], keras.layers.concatenate([dense1, dense2], axis=-1))


def digits_halves(images: np.ndarray, labels: np.ndarray):
    """The top and bottom halves of each digit as the two inputs, labelled with two
    binary facts (is the digit odd? is it at least 5?) for the two sigmoids."""
    flat = images.reshape(len(images), -1)
    half = flat.shape[1] // 2
    features = {"input_1": flat[:, :half], "input_2": flat[:, half:]}
    return features, np.stack([labels % 2, labels >= 5], axis=-1).astype("float32")


@preset(
    "fusion",
    description="The documents' model fusion: two Input(10) -> Dense(1, sigmoid) each -> "
    "FusionConcat -> (batch, 2).",
    # Two independent sigmoid outputs: each is a binary prediction.
    compile_defaults={
        "optimizer": "adam",
        "loss": "binary_crossentropy",
        "metrics": ["binary_accuracy"],
    },
    tiny={"input_shape": (6,)},
    variants={
        "attention": {"mode": "attention", "branch_units": 3},
        "gated_three": {"mode": "gated", "num_branches": 3, "branch_units": 2},
    },
    data=DataView(
        inputs=(ModelInput("input_1", "vector"), ModelInput("input_2", "vector")),
        target="binary",
        digits_view=digits_halves,
    ),
    plain_keras=plain_fusion,
)
def fusion(
    input_shape=(10,),
    num_branches=2,
    branch_units=1,
    activation="sigmoid",
    mode="concat",
    dtype=None,
    name="fusion",
) -> keras.Model:
    """Builds `num_branches` one-layer models on separate inputs and fuses their outputs.

    `mode="concat"` uses `FusionConcat` (the documents); any other `Fusion` mode
    ("sum", "mean", "max", "weighted", "gated", "attention") fuses them instead.
    """
    shape = v.check_shape("input_shape", input_shape, 1)
    num_branches = v.check_positive_int("num_branches", num_branches)
    if num_branches < 2:
        raise ValueError(
            f"`num_branches` must be at least 2. Received: num_branches={num_branches}"
        )
    branch_units = v.check_positive_int("branch_units", branch_units)
    v.check_activation("activation", activation)
    mode = v.check_choice("mode", mode, FUSION_MODES)
    dtype = v.check_dtype_policy("dtype", dtype)
    inputs = [keras.Input(shape=shape, name=f"input_{i + 1}") for i in range(num_branches)]
    branches = [
        keras.layers.Dense(
            branch_units, activation=activation, dtype=dtype, name=f"branch_{i + 1}"
        )(x)
        for i, x in enumerate(inputs)
    ]
    if mode == "concat":
        output = FusionConcat(axis=-1, dtype=dtype, name="fusion")(branches)
    else:
        output = Fusion(mode, dtype=dtype, name="fusion")(branches)
    return keras.Model(inputs, output, name=v.check_name("name", name))
