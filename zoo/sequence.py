"""Sequence presets: the documents' LSTM classifier (2.1.2) and attention pooling (2.2)."""

from __future__ import annotations

import keras

from keras_bigmodel.layers import AttentionLayer
from zoo._common import check_dtype, check_name, checks
from zoo.registry import preset

CELLS = {"lstm": keras.layers.LSTM, "gru": keras.layers.GRU}


def _recurrent(cell, units, return_sequences, bidirectional, dtype, name):
    layer = CELLS[checks.check_choice("cell", cell, CELLS)](
        units, return_sequences=return_sequences, dtype=dtype, name=name
    )
    if bidirectional:
        return keras.layers.Bidirectional(layer, dtype=dtype, name=f"bidirectional_{name}")
    return layer


@preset(
    "rnn",
    description="The documents' RNN: Input(timesteps, features) -> LSTM(50) -> Dense(10, softmax).",
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
    checks.check_shape("input_shape", input_shape, 2, 2, allow_none=True)
    if input_shape[1] is None:
        raise ValueError(f"`input_shape` needs a known feature size. Received: input_shape={input_shape!r}")
    num_classes = checks.check_positive_int("num_classes", num_classes)
    units = checks.check_positive_int("units", units)
    dtype = check_dtype(dtype)
    inputs = keras.Input(shape=tuple(input_shape), name="sequence")
    x = _recurrent(cell, units, False, bidirectional, dtype, "encoder")(inputs)
    outputs = keras.layers.Dense(num_classes, activation="softmax", dtype=dtype, name="predictions")(x)
    return keras.Model(inputs, outputs, name=check_name(name))


@preset(
    "attention_rnn",
    description="Sequence encoder (LSTM, return_sequences) -> AttentionLayer (the documents' "
    "additive attention) -> Dense(softmax).",
)
def attention_rnn(
    input_shape=(8, 8),
    num_classes=10,
    units=50,
    cell="lstm",
    bidirectional=False,
    attention_units=32,
    score="additive",
    attention_dropout=0.0,
    mask_value=None,
    vocab_size=None,
    embedding_dim=32,
    dtype=None,
    name="attention_rnn",
) -> keras.Model:
    """Builds an attention-pooled recurrent classifier.

    Float sequences of shape `input_shape=(timesteps, features)`; steps equal to
    `mask_value` (e.g. `0.0` padding) are masked out of the attention. With
    `vocab_size`, the input is instead integer tokens of shape `(timesteps,)`
    embedded with `Embedding(vocab_size, embedding_dim, mask_zero=True)`, so
    token 0 is padding.
    """
    num_classes = checks.check_positive_int("num_classes", num_classes)
    units = checks.check_positive_int("units", units)
    attention_units = checks.check_positive_int("attention_units", attention_units)
    dtype = check_dtype(dtype)
    vocab_size = checks.check_positive_int("vocab_size", vocab_size, allow_none=True)
    if vocab_size is not None:
        if mask_value is not None:
            raise ValueError("`mask_value` applies to float sequences; with `vocab_size`, token 0 is the padding")
        shape = checks.check_shape("input_shape", input_shape, 1, 1, allow_none=True)
        inputs = keras.Input(shape=shape, dtype="int32", name="tokens")
        x = keras.layers.Embedding(
            vocab_size, checks.check_positive_int("embedding_dim", embedding_dim),
            mask_zero=True, dtype=dtype, name="embedding",
        )(inputs)
    else:
        shape = checks.check_shape("input_shape", input_shape, 2, 2, allow_none=True)
        if shape[1] is None:
            raise ValueError(f"`input_shape` needs a known feature size. Received: input_shape={input_shape!r}")
        inputs = keras.Input(shape=shape, name="sequence")
        x = inputs
        if mask_value is not None:
            if isinstance(mask_value, bool) or not isinstance(mask_value, (int, float)):
                raise ValueError(f"`mask_value` must be a number or None. Received: mask_value={mask_value!r}")
            x = keras.layers.Masking(float(mask_value), name="masking")(x)
    x = _recurrent(cell, units, True, bidirectional, dtype, "encoder")(x)
    x = AttentionLayer(attention_units, score=score, dropout=attention_dropout, dtype=dtype,
                       name="attention")(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", dtype=dtype, name="predictions")(x)
    return keras.Model(inputs, outputs, name=check_name(name))
