"""Attention pooling over a recurrent encoder (the documents' section 2.2)."""

from __future__ import annotations

import keras

from keras_bigmodel import validation as v
from keras_bigmodel.layers import AttentionLayer
from zoo.presets._blocks import recurrent
from zoo.presets._plain import DocumentsAttentionLayer
from zoo.registry import preset
from zoo.views import DataView, ModelInput

__all__ = ["attention_rnn", "plain_attention_rnn"]


def plain_attention_rnn() -> keras.Model:
    """The default network with the documents' own attention code, in plain Keras."""
    inputs = keras.Input((8, 8))
    x = keras.layers.LSTM(50, return_sequences=True)(inputs)
    x = DocumentsAttentionLayer(32)(x)
    return keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(x))


@preset(
    "attention_rnn",
    description="Sequence encoder (LSTM, return_sequences) -> AttentionLayer (the documents' "
    "additive attention) -> Dense(softmax).",
    tiny={"input_shape": (None, 4), "units": 6, "attention_units": 4, "num_classes": 3},
    variants={
        "masked_scaled_dot": {"mask_value": 0.0, "score": "scaled_dot"},
        "tokens": {
            "input_shape": (None,),
            "vocab_size": 20,
            "embedding_dim": 4,
            "cell": "gru",
            "bidirectional": True,
        },
    },
    data=DataView(inputs=(ModelInput("sequence", "sequence"),)),
    plain_keras=plain_attention_rnn,
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
    num_classes = v.check_positive_int("num_classes", num_classes)
    units = v.check_positive_int("units", units)
    attention_units = v.check_positive_int("attention_units", attention_units)
    dtype = v.check_dtype_policy("dtype", dtype)
    vocab_size = v.check_positive_int("vocab_size", vocab_size, allow_none=True)
    if vocab_size is not None:
        if mask_value is not None:
            raise ValueError(
                "`mask_value` applies to float sequences; with `vocab_size`, token 0 is the "
                f"padding. Received: mask_value={mask_value!r}, vocab_size={vocab_size!r}"
            )
        shape = v.check_shape("input_shape", input_shape, 1, 1, allow_none=True)
        inputs = keras.Input(shape=shape, dtype="int32", name="tokens")
        x = keras.layers.Embedding(
            vocab_size,
            v.check_positive_int("embedding_dim", embedding_dim),
            mask_zero=True,
            dtype=dtype,
            name="embedding",
        )(inputs)
    else:
        shape = v.check_shape("input_shape", input_shape, 2, 2, allow_none=True)
        if shape[1] is None:
            raise ValueError(
                f"`input_shape` needs a known feature size. Received: input_shape={input_shape!r}"
            )
        inputs = keras.Input(shape=shape, name="sequence")
        x = inputs
        if mask_value is not None:
            mask_value = v.check_number("mask_value", mask_value)
            x = keras.layers.Masking(mask_value, name="masking")(x)
    x = recurrent(
        cell, units, True, v.check_bool("bidirectional", bidirectional), dtype, "encoder"
    )(x)
    x = AttentionLayer(
        attention_units, score=score, dropout=attention_dropout, dtype=dtype, name="attention"
    )(x)
    outputs = keras.layers.Dense(
        num_classes, activation="softmax", dtype=dtype, name="predictions"
    )(x)
    return keras.Model(inputs, outputs, name=v.check_name("name", name))
