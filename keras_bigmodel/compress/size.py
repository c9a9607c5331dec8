"""`size_report`: parameters, bytes in memory, bytes as stored and gzip'd."""

from __future__ import annotations

import os
import tempfile

import keras
import numpy as np

from keras_bigmodel.saving import load_model, save_model
from keras_bigmodel.validation import check_model

__all__ = ["size_report"]


def size_report(model_or_path: keras.Model | str | os.PathLike) -> dict:
    """Sizes of a model: parameters, float32 bytes, bytes in memory, bytes as stored.

    Args:
        model_or_path: A `keras.Model`, a `.keras` file (loaded through the safe
            loader) or a `.tflite` file.

    Returns:
        A dict with `parameters`, `float32_bytes` (4 bytes a parameter),
        `weight_bytes` (bytes of the variables as they are held, e.g. int8),
        `stored_bytes` (the `.keras`/`.tflite` file, or the model saved to one),
        `stored_vs_float32` (their ratio) and `dtypes` (bytes per variable dtype).
        For a `.tflite` file only `stored_bytes` is known; the rest is `None`.
    """
    if isinstance(model_or_path, (str, os.PathLike)):
        path = os.fspath(model_or_path)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"No model file at {path!r}")
        stored = os.path.getsize(path)
        if path.endswith(".tflite"):
            return {
                "parameters": None,
                "float32_bytes": None,
                "weight_bytes": None,
                "stored_bytes": stored,
                "stored_vs_float32": None,
                "dtypes": None,
            }
        model = load_model(path, compile=False)
    elif isinstance(model_or_path, keras.Model):
        model = check_model(model_or_path)
        with tempfile.TemporaryDirectory() as tmp:
            stored = os.path.getsize(save_model(model, os.path.join(tmp, "m.keras")))
    else:
        raise TypeError(
            "`model_or_path` must be a keras.Model or a path. Received: "
            f"{type(model_or_path).__name__}"
        )
    dtypes: dict[str, int] = {}
    for variable in model.weights:
        dtype = keras.backend.standardize_dtype(variable.dtype)
        nbytes = (
            int(np.prod(variable.shape, dtype=np.int64))
            * np.dtype("float16" if dtype == "bfloat16" else dtype).itemsize
        )
        dtypes[dtype] = dtypes.get(dtype, 0) + nbytes
    parameters = int(sum(int(np.prod(v.shape, dtype=np.int64)) for v in model.weights))
    return {
        "parameters": parameters,
        "float32_bytes": 4 * parameters,
        "weight_bytes": sum(dtypes.values()),
        "stored_bytes": stored,
        "stored_vs_float32": stored / max(4 * parameters, 1),
        "dtypes": dtypes,
    }
