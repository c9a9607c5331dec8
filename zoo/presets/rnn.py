"""The documents' RNN: an LSTM classifier (their section 2.1.2)."""

from __future__ import annotations

import keras

from keras_bigmodel import validation as v
from zoo.presets._blocks import recurrent
from zoo.registry import preset
from zoo.views import DataView, ModelInput

__all__ = ["plain_rnn", "rnn"]


def plain_rnn() -> keras.Model:
    """The documents' network in plain Keras (8 steps of 8 features)."""
    inputs = keras.Input((8, 8))
    x = keras.layers.LSTM(50)(inputs)
    return keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(x))


@preset(
    "rnn",
    description="The documents' RNN: Input(timesteps, features) -> LSTM(50) -> Dense(10, softmax).",
    tiny={"input_shape": (None, 4), "units": 6, "num_classes": 3},
    variants={"gru_bidirectional": {"cell": "gru", "bidirectional": True}},
    data=DataView(inputs=(ModelInput("sequence", "sequence"),)),
    plain_keras=plain_rnn,
)
def rnn(
    input_shape=(8, 8),
    num_classes=10,
    units=50,
    cell="lstm",
    bidirectional=False,
    dtype=None,
    name="rnn",
) -> keras.Model:
    """Builds the documents' LSTM classifier (timesteps may be None: any length)."""
    shape = v.check_shape("input_shape", input_shape, 2, 2, allow_none=True)
    if shape[1] is None:
        raise ValueError(
            f"`input_shape` needs a known feature size. Received: input_shape={input_shape!r}"
        )
    num_classes = v.check_positive_int("num_classes", num_classes)
    units = v.check_positive_int("units", units)
    dtype = v.check_dtype_policy("dtype", dtype)
    inputs = keras.Input(shape=shape, name="sequence")
    x = recurrent(
        cell, units, False, v.check_bool("bidirectional", bidirectional), dtype, "encoder"
    )(inputs)
    outputs = keras.layers.Dense(
        num_classes, activation="softmax", dtype=dtype, name="predictions"
    )(x)
    return keras.Model(inputs, outputs, name=v.check_name("name", name))
