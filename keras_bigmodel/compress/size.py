"""`size_report`: parameters, bytes in memory, bytes as stored and gzip'd."""

from __future__ import annotations

import gzip
import os
import tempfile

import keras
import numpy as np

from keras_bigmodel.saving import load_model, save_model
from keras_bigmodel.validation import check_model

__all__ = ["gzip_size", "size_report"]


def gzip_size(path: str | os.PathLike) -> int:
    """The size of the file gzip'd (level 9), read in 1 MiB pieces: what pruning's
    zeros save in a download or a store."""
    size = 0

    class _Count:
        def write(self, data):
            nonlocal size
            size += len(data)
            return len(data)

        def flush(self):
            pass

    with open(path, "rb") as source, gzip.GzipFile(fileobj=_Count(), mode="wb", mtime=0) as out:
        while chunk := source.read(1 << 20):
            out.write(chunk)
    return size


def size_report(model_or_path: keras.Model | str | os.PathLike) -> dict:
    """Sizes of a model: parameters, float32 bytes, bytes in memory, bytes as stored.

    Args:
        model_or_path: A `keras.Model`, a `.keras` file (loaded through the safe
            loader), or a `.tflite` / `.onnx` file.

    Returns:
        A dict with `parameters`, `float32_bytes` (4 bytes a parameter),
        `weight_bytes` (bytes of the variables as they are held, e.g. int8),
        `stored_bytes` (the `.keras`/`.tflite` file, or the model saved to one),
        `stored_vs_float32` (their ratio), `gzip_bytes` (that file gzip'd: pruned
        zeros compress) and `dtypes` (bytes per variable dtype). For a `.tflite`
        or `.onnx` file only `stored_bytes` and `gzip_bytes` are known; the rest
        is `None`.
    """
    if isinstance(model_or_path, (str, os.PathLike)):
        path = os.fspath(model_or_path)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"No model file at {path!r}")
        stored, packed = os.path.getsize(path), gzip_size(path)
        if path.endswith((".tflite", ".onnx")):
            return {
                "gzip_bytes": packed,
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
            saved = save_model(model, os.path.join(tmp, "m.keras"))
            stored, packed = os.path.getsize(saved), gzip_size(saved)
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
        "gzip_bytes": packed,
        "dtypes": dtypes,
    }
