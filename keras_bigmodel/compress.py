"""Model compression (the documents' section on dynamic int8 quantization, and 3.1).

- `quantize`: Keras's own `Model.quantize` (int8 weights with per-channel scales and
  dynamically quantized activations), on a copy, for models holding this
  package's layers too; the result saves and reloads.
- `export_tflite`: TensorFlow's TFLite converter with dynamic-range, float16 or no
  quantization (TensorFlow backend only).
- `size_report`: parameters, float32 bytes, bytes in memory and bytes as stored.
- `distill`: knowledge distillation of a large model into a small one with
  `keras.distillation`, for models that output probabilities.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from typing import Any

import keras
import numpy as np
from keras import ops

from keras_bigmodel.preconditions import check_model, require_tensorflow
from keras_bigmodel.saving import atomic_path, copy_model, load_model, save_model

QUANTIZATION_MODES = ("int8", "int4")
TFLITE_QUANTIZATIONS = ("dynamic", "float16", None)


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
        raise ValueError(f"`mode` must be one of {list(QUANTIZATION_MODES)}. Received: mode={mode!r}")
    if not isinstance(inplace, bool):
        raise TypeError(f"`inplace` must be a bool. Received: inplace={inplace!r}")
    quantizable = [
        layer for layer in model._flatten_layers()
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


def _static_signature(model: keras.Model, batch_size: int):
    import tensorflow as tf

    def spec(tensor):
        shape = (batch_size,) + tuple(tensor.shape[1:])
        if any(d is None for d in shape):
            raise ValueError(
                f"TFLite needs static shapes, but input '{tensor.name}' has shape "
                f"{tuple(tensor.shape)}; rebuild the model with a fixed size (e.g. "
                f"zoo.build(..., input_shape=(8, 8)))"
            )
        return tf.TensorSpec(shape, tensor.dtype, name=tensor.name)

    return [keras.tree.map_structure(spec, model.input)]


def export_tflite(
    model: keras.Model,
    path: str | os.PathLike,
    quantization: str | None = "dynamic",
    batch_size: int = 1,
) -> str:
    """Converts a model to a TFLite flatbuffer (TensorFlow backend only).

    The model is first exported as a SavedModel with a static input signature
    (TFLite cannot convert an LSTM whose batch dimension is unknown), then
    converted with `tf.lite.TFLiteConverter`. The file is written atomically.

    Args:
        model: A built `keras.Model` whose inputs have static shapes apart from
            the batch dimension.
        path: Destination `.tflite` path.
        quantization: `"dynamic"` (int8 weights, the documents' dynamic
            quantization), `"float16"` (float16 weights) or `None`.
        batch_size: The fixed batch size of the converted model.

    Returns:
        The path written.
    """
    require_tensorflow("kbm.compress.export_tflite", "TFLite conversion is part of TensorFlow")
    check_model(model)
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"`path` must be a str or os.PathLike. Received: path={path!r}")
    path = os.fspath(path)
    if not path.endswith(".tflite"):
        raise ValueError(f"`path` must end in '.tflite'. Received: path={path!r}")
    if quantization not in TFLITE_QUANTIZATIONS:
        raise ValueError(
            f"`quantization` must be one of {list(TFLITE_QUANTIZATIONS)}. "
            f"Received: quantization={quantization!r}"
        )
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"`batch_size` must be a positive integer. Received: batch_size={batch_size!r}")
    import tensorflow as tf

    signature = _static_signature(model, batch_size)
    with tempfile.TemporaryDirectory() as tmp:
        saved_model = os.path.join(tmp, "saved_model")
        model.export(saved_model, format="tf_saved_model", input_signature=signature, verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(saved_model)
        if quantization is not None:
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if quantization == "float16":
            converter.target_spec.supported_types = [tf.float16]
        flatbuffer = converter.convert()
    with atomic_path(path) as tmp_path:
        with open(tmp_path, "wb") as f:
            f.write(flatbuffer)
    return path


def run_tflite(path: str | os.PathLike, inputs) -> Any:
    """Runs a `.tflite` file on `inputs` (an array, or a dict keyed by input name for
    several inputs) with TensorFlow's interpreter; returns the outputs as a list,
    ordered by output name."""
    require_tensorflow("kbm.compress.run_tflite", "the TFLite interpreter is part of TensorFlow")
    import tensorflow as tf

    with warnings.catch_warnings():
        # TF announces that tf.lite.Interpreter moves to the ai_edge_litert package.
        warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated")
        interpreter = tf.lite.Interpreter(model_path=os.fspath(path))
    runner = interpreter.get_signature_runner()
    names = list(runner.get_input_details())
    if isinstance(inputs, dict):
        feed = dict(inputs)
    elif len(names) == 1:
        feed = {names[0]: inputs}
    else:
        raise ValueError(f"The model takes several inputs; pass a dict keyed by {sorted(names)}")
    unknown = sorted(set(feed) - set(names))
    if unknown:
        raise ValueError(f"Unknown input name(s) {unknown}; the model takes {names}")
    outputs = runner(**{k: np.asarray(v, dtype="float32") for k, v in feed.items()})
    return [outputs[k] for k in sorted(outputs)]


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
            return {"parameters": None, "float32_bytes": None, "weight_bytes": None,
                    "stored_bytes": stored, "stored_vs_float32": None, "dtypes": None}
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
        nbytes = int(np.prod(variable.shape, dtype=np.int64)) * np.dtype(
            "float16" if dtype == "bfloat16" else dtype).itemsize
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


@keras.saving.register_keras_serializable(package="keras_bigmodel")
class ProbabilityDistillation(keras.distillation.DistillationLoss):
    """Temperature-scaled KL distillation for models that output probabilities.

    `keras.distillation.LogitsDistillation` expects logits; the zoo's models end
    in softmax. Since `log p` differs from the logits by a constant per example,
    `softmax(log p / T)` is exactly the tempered teacher distribution.
    """

    def __init__(self, temperature: float = 3.0):
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or temperature <= 0:
            raise ValueError(f"`temperature` must be a positive number. Received: temperature={temperature!r}")
        self.temperature = float(temperature)

    def compute_loss(self, teacher_outputs, student_outputs, **kwargs):
        def tempered(p):
            p = ops.cast(p, "float32")
            return ops.softmax(ops.log(ops.clip(p, 1e-7, 1.0)) / self.temperature, axis=-1)

        losses = keras.tree.map_structure(
            lambda t, s: ops.mean(keras.losses.kl_divergence(tempered(t), tempered(s))),
            teacher_outputs, student_outputs,
        )
        return ops.sum(ops.stack(keras.tree.flatten(losses))) * self.temperature**2

    def get_config(self):
        return {"temperature": self.temperature}


def distill(
    teacher: keras.Model,
    student: keras.Model,
    x,
    y,
    temperature: float = 3.0,
    student_loss_weight: float = 0.5,
    epochs: int = 5,
    batch_size: int = 32,
    loss="categorical_crossentropy",
    optimizer="adam",
    validation_data=None,
    verbose: int | str = "auto",
) -> keras.Model:
    """Trains `student` to match `teacher`'s tempered predictions and the labels.

    Uses `keras.distillation.Distiller` with `ProbabilityDistillation`; the
    teacher is frozen. Returns the trained student (the same object).
    """
    check_model(teacher, "teacher")
    check_model(student, "student")
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"`epochs` must be a positive integer. Received: epochs={epochs!r}")
    distiller = keras.distillation.Distiller(
        teacher=teacher,
        student=student,
        distillation_losses=ProbabilityDistillation(temperature),
        student_loss_weight=student_loss_weight,
    )
    distiller.compile(optimizer=optimizer, loss=loss)
    distiller.fit(x, y, epochs=epochs, batch_size=batch_size, validation_data=validation_data,
                  verbose=verbose)
    return distiller.student
