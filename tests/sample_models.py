"""Models the tests share: a user's own model built around the package's layers."""

from __future__ import annotations

import keras
import numpy as np

import keras_bigmodel as kbm


def user_model(experts: bool = False) -> keras.Model:
    """A user's model: plain Keras layers around the package's layers (attention,
    fusion, concatenation and task heads; with `experts=True`, a mixture of experts
    before the heads)."""
    seq = keras.Input(shape=(None, 6), name="sequence")
    vec = keras.Input(shape=(5,), name="vector")
    h = keras.layers.LSTM(8, return_sequences=True)(keras.layers.Masking()(seq))
    pooled = kbm.layers.AttentionLayer(4)(h)
    fused = kbm.layers.Fusion("gated", units=8)([pooled, keras.layers.Dense(8)(vec)])
    both = kbm.layers.FusionConcat()([fused, vec])
    heads = kbm.layers.MultiTaskHead({"label": {"units": 3, "activation": "softmax"}, "score": 1})
    if experts:
        both = kbm.layers.MixtureOfExperts(["label", "score"], num_experts=3, expert_units=(4,))(
            both
        )
    return keras.Model({"sequence": seq, "vector": vec}, heads(both))


def user_inputs() -> dict:
    """Inputs for `user_model`: four sequences (one padded with zeros) and vectors."""
    rng = np.random.default_rng(0)
    seq = rng.normal(size=(4, 7, 6)).astype("float32")
    seq[1, 5:] = 0.0
    return {"sequence": seq, "vector": rng.normal(size=(4, 5)).astype("float32")}
