"""NumPy references that layer tests compare against: the formulas computed another way."""

import numpy as np
from keras import ops


def weight(variable) -> np.ndarray:
    """A Keras variable as a float64 NumPy array."""
    return np.asarray(ops.convert_to_numpy(variable), dtype="float64")


def softmax(z, axis=-1):
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def dense(layer, x, activation=None):
    """What a Keras Dense layer computes, from its kernel and bias."""
    y = np.asarray(x, dtype="float64") @ weight(layer.kernel) + weight(layer.bias)
    if activation == "relu":
        return np.maximum(y, 0)
    if activation == "softmax":
        return softmax(y)
    if activation == "tanh":
        return np.tanh(y)
    return y
