"""Preconditions shared by the public functions: a built model, the TensorFlow backend."""

from __future__ import annotations

import keras


class UnsupportedBackendError(RuntimeError):
    """A TensorFlow-only feature was called while Keras runs on another backend."""


def require_tensorflow(feature: str, why: str) -> None:
    """Raises `UnsupportedBackendError` unless Keras runs on TensorFlow."""
    backend = keras.backend.backend()
    if backend != "tensorflow":
        raise UnsupportedBackendError(
            f"{feature} needs the TensorFlow backend ({why}); this process runs Keras on "
            f"{backend!r}. Set KERAS_BACKEND=tensorflow before importing keras, or save the "
            f"model and run this step in a TensorFlow process (.keras files load on every "
            f"backend)."
        )


def check_model(model, arg: str = "model") -> keras.Model:
    if not isinstance(model, keras.Model):
        raise TypeError(
            f"`{arg}` must be a keras.Model. Received: {arg} of type {type(model).__name__}"
        )
    if not model.built:
        raise ValueError(f"`{arg}` must be built (call it on data or give it an Input) first")
    return model
