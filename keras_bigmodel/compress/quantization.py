"""`quantize`: Keras's own int8/int4 weight quantization (`Model.quantize`), on a copy."""

from __future__ import annotations

import warnings

import keras

from keras_bigmodel import _compat
from keras_bigmodel.saving import copy_model
from keras_bigmodel.validation import check_model

__all__ = ["QUANTIZATION_MODES", "quantize"]

QUANTIZATION_MODES = ("int8", "int4")


def quantize(model: keras.Model, mode: str = "int8", inplace: bool = False) -> keras.Model:
    """Quantizes a model's weights with Keras's `Model.quantize`.

    Keras quantizes leaf `Dense`, `EinsumDense` and `Embedding` layers, including
    those inside this package's layers (their policies travel in the layers'
    configs, so the result saves and reloads); convolutions and recurrent cells
    stay float.

    Args:
        model: A built `keras.Model`.
        mode: `"int8"` (default; the documents' dynamic int8 quantization) or
            `"int4"`.
        inplace: If `False` (default) the model is copied first and left as it was.

    Returns:
        The quantized model, compiled like `model` was (without optimizer state).

    Raises:
        ValueError: Unknown mode, or a model with nothing Keras can quantize.

    Example:

    ```python
    import keras_bigmodel as kbm, zoo
    model = zoo.build("cnn")
    small = kbm.compress.quantize(model, mode="int8")
    kbm.save_model(small, "cnn-int8.keras")     # ~0.24x the float32 file
    ```
    """
    check_model(model)
    if mode not in QUANTIZATION_MODES:
        raise ValueError(
            f"`mode` must be one of {list(QUANTIZATION_MODES)}. Received: mode={mode!r}"
        )
    if not isinstance(inplace, bool):
        raise TypeError(f"`inplace` must be a bool. Received: inplace={inplace!r}")
    quantizable = [
        layer
        for layer in _compat.all_layers(model)
        if isinstance(layer, (keras.layers.Dense, keras.layers.EinsumDense, keras.layers.Embedding))
    ]
    if not quantizable:
        raise ValueError(
            f"Model '{model.name}' has no layer Keras can quantize (Dense, EinsumDense, "
            f"Embedding); nothing to do for mode={mode!r}"
        )
    if any(layer.quantization_mode for layer in quantizable):
        raise ValueError(f"Model '{model.name}' is already quantized")
    target, compile_config = (model, None) if inplace else copy_model(model)
    with warnings.catch_warnings():
        # Keras warns once per layer without a quantize() (Input, Conv2D, LSTM, ...).
        warnings.filterwarnings("ignore", message="Layer .* does not have a `quantize` method")
        target.quantize(mode)
    if compile_config:
        target.compile(**keras.saving.deserialize_keras_object(compile_config))
    return target
