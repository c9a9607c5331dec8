"""Hand-written plain-Keras blocks that the presets' `plain_keras` twins use: the
networks as a user following the documents would write them, without this package.
The benchmarks time each preset against its twin."""

from __future__ import annotations

import keras
from keras import ops

__all__ = ["DocumentsAttentionLayer", "HandGatedFusion"]


class DocumentsAttentionLayer(keras.layers.Layer):
    """The documents' section 2.2 `AttentionLayer`, with tf.* replaced by keras.ops."""

    def __init__(self, units):
        super().__init__()
        self.W = keras.layers.Dense(units)
        self.V = keras.layers.Dense(1)

    def call(self, inputs):
        score = self.V(ops.tanh(self.W(inputs)))
        attention_weights = ops.softmax(score, axis=1)
        context_vector = attention_weights * inputs
        return ops.sum(context_vector, axis=1)


class HandGatedFusion(keras.layers.Layer):
    """A gated multimodal unit for two branches, written directly with keras.ops."""

    def __init__(self, units):
        super().__init__()
        self.units = units
        self.h1 = keras.layers.Dense(units, activation="tanh")
        self.h2 = keras.layers.Dense(units, activation="tanh")
        self.gate = keras.layers.Dense(2 * units)

    def call(self, inputs):
        a, b = inputs
        h = ops.stack([self.h1(a), self.h2(b)], axis=-2)
        z = ops.reshape(self.gate(ops.concatenate([a, b], -1)), (-1, 2, self.units))
        return ops.sum(ops.softmax(z, axis=-2) * h, axis=-2)
