"""Model compression (the documents' section on dynamic int8 quantization, and 3.1).

- `quantize`: Keras's own `Model.quantize` (int8 weights with per-channel scales and
  dynamically quantized activations), on a copy, for models holding this
  package's layers too; the result saves and reloads.
- `export_tflite` / `run_tflite`: a LiteRT (TFLite) flatbuffer through Keras's own
  `model.export(format="litert")`, with dynamic-range, float16 or no quantization
  (conversion needs the TensorFlow backend), run with the LiteRT interpreter
  (`ai_edge_litert`, on any backend).
- `export_onnx` / `run_onnx`: an ONNX file through Keras's own
  `model.export(format="onnx")` (TensorFlow: tf2onnx; JAX: jax2onnx; PyTorch:
  torch.onnx), run with onnxruntime.
- `size_report`: parameters, float32 bytes, bytes in memory and bytes as stored.
- `distill`: knowledge distillation of a large model into a small one with
  `keras.distillation`, for models that output probabilities.
"""

from __future__ import annotations

import os
import tempfile
import warnings

import keras
import numpy as np
from keras import ops

from keras_bigmodel import _compat
from keras_bigmodel.saving import atomic_path, copy_model, load_model, save_model
from keras_bigmodel.validation import (
    check_choice,
    check_model,
    check_path,
    check_positive_int,
    require_tensorflow,
)

__all__ = [
    "ONNX_BACKENDS",
    "ProbabilityDistillation",
    "distill",
    "export_onnx",
    "export_tflite",
    "quantize",
    "run_onnx",
    "run_tflite",
    "size_report",
]

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


def _static_signature(model: keras.Model, batch_size: int, what: str):
    """One `keras.InputSpec`-like spec per model input, with a fixed batch size."""
    import tensorflow as tf

    def spec(tensor):
        shape = (batch_size,) + tuple(tensor.shape[1:])
        if any(d is None for d in shape):
            raise ValueError(
                f"{what} needs static shapes, but input '{tensor.name}' has shape "
                f"{tuple(tensor.shape)}; rebuild the model with a fixed size (e.g. "
                f"zoo.build(..., input_shape=(8, 8)))"
            )
        return tf.TensorSpec(shape, tensor.dtype, name=tensor.name)

    return [keras.tree.map_structure(spec, model.input)]


def _check_destination(path, suffix: str) -> str:
    path = check_path("path", path)
    if not path.endswith(suffix):
        raise ValueError(f"`path` must end in '{suffix}'. Received: path={path!r}")
    return path


def export_tflite(
    model: keras.Model,
    path: str | os.PathLike,
    quantization: str | None = "dynamic",
    batch_size: int = 1,
) -> str:
    """Converts a model to a LiteRT (TFLite) flatbuffer with Keras's own exporter.

    Runs `model.export(path, format="litert")` with a static input signature
    (batch `batch_size`) and only LiteRT's built-in operators: with an unknown
    batch size, Keras's exporter turns an LSTM into TensorFlow "Flex" operators
    that the LiteRT interpreter cannot run ("Node number 0 (FlexTensorListReserve)
    failed to prepare"). The conversion is TensorFlow's, so this needs the
    TensorFlow backend (`.keras` files load on every backend); the file runs
    anywhere the LiteRT interpreter does (`run_tflite`). Written atomically.

    Args:
        model: A built `keras.Model` whose inputs have static shapes apart from
            the batch dimension.
        path: Destination `.tflite` path.
        quantization: `"dynamic"` (int8 weights, the documents' dynamic
            quantization), `"float16"` (float16 weights) or `None`.
        batch_size: The fixed batch size of the converted model.

    Returns:
        The path written.

    Raises:
        UnsupportedBackendError: Keras does not run on TensorFlow.
        ValueError: Bad arguments or an input with an unknown non-batch size.

    Example:

    ```python
    path = kbm.compress.export_tflite(zoo.build("rnn"), "rnn.tflite")
    (probabilities,) = kbm.compress.run_tflite(path, x[:1])
    ```
    """
    require_tensorflow("kbm.compress.export_tflite", "TFLite conversion is part of TensorFlow")
    check_model(model)
    path = _check_destination(path, ".tflite")
    if quantization is not None:
        check_choice("quantization", quantization, [q for q in TFLITE_QUANTIZATIONS if q])
    batch_size = check_positive_int("batch_size", batch_size)
    import tensorflow as tf

    converter_options = {"target_spec": {"supported_ops": [tf.lite.OpsSet.TFLITE_BUILTINS]}}
    if quantization is not None:
        converter_options["optimizations"] = [tf.lite.Optimize.DEFAULT]
    if quantization == "float16":
        converter_options["target_spec"]["supported_types"] = [tf.float16]
    signature = _static_signature(model, batch_size, "LiteRT")
    with atomic_path(path, suffix=".tflite") as tmp_path:
        model.export(
            tmp_path, format="litert", input_signature=signature, verbose=False, **converter_options
        )
    return path


def _feed(names: list[str], inputs, runtime: str) -> dict:
    if isinstance(inputs, dict):
        feed = dict(inputs)
    elif len(names) == 1:
        feed = {names[0]: inputs}
    elif isinstance(inputs, (list, tuple)) and len(inputs) == len(names):
        feed = dict(zip(names, inputs))
    else:
        raise ValueError(
            f"The {runtime} model takes several inputs; pass a dict keyed by {sorted(names)}"
            f" (or a list in that order: {names})"
        )
    unknown = sorted(set(feed) - set(names))
    if unknown:
        raise ValueError(f"Unknown input name(s) {unknown}; the model takes {names}")
    missing = sorted(set(names) - set(feed))
    if missing:
        raise ValueError(f"Missing input(s) {missing}; the model takes {names}")
    return {k: np.asarray(v, dtype="float32") for k, v in feed.items()}


def run_tflite(path: str | os.PathLike, inputs) -> list:
    """Runs a `.tflite` file with the LiteRT interpreter (`ai_edge_litert`).

    Works on every backend: it needs the `ai-edge-litert` package, not TensorFlow.

    Args:
        path: A `.tflite` file, e.g. from `export_tflite`.
        inputs: An array, or for several inputs a dict keyed by input name (or a
            list in the order of the sorted names).

    Returns:
        The outputs as a list of NumPy arrays, ordered by output name (the
        order of `keras.tree.flatten` on a dict-output model's outputs).

    Raises:
        ValueError: Inputs that do not match the model's.
        FileNotFoundError: No file at `path`.
    """
    from ai_edge_litert.interpreter import Interpreter

    path = check_path("path", path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No LiteRT file at {path!r}")
    runner = Interpreter(model_path=path).get_signature_runner()
    feed = _feed(sorted(runner.get_input_details()), inputs, "LiteRT")
    outputs = runner(**feed)
    return [outputs[k] for k in sorted(outputs)]


ONNX_BACKENDS = {
    "tensorflow": "tf2onnx",
    "jax": "jax2onnx",
    "torch": "torch.onnx (TorchScript exporter; onnxscript is not needed)",
}


def _output_names(model: keras.Model) -> list[str]:
    if isinstance(model.output, dict):
        return sorted(model.output)  # the order of keras.tree.flatten
    return list(model.output_names)


def _fix_jax_max_pool(graph) -> int:
    """jax2onnx writes a 2D max pooling of an NHWC tensor as a 4D `MaxPool` over
    (N, H, W, C) of a 6D tensor, which onnxruntime refuses ("Unsupported pooling
    size"). Each such node becomes Squeeze -> Transpose to NCHW -> 2D MaxPool ->
    Transpose back -> Unsqueeze, with the same input and output names."""
    import onnx
    from onnx import helper

    fixed = 0
    nodes = list(graph.node)
    for node in nodes:
        if node.op_type != "MaxPool":
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        kernel = list(attrs.get("kernel_shape", []))
        strides = list(attrs.get("strides", [1] * len(kernel)))
        pads = list(attrs.get("pads", [0] * 2 * len(kernel)))
        dilations = list(attrs.get("dilations", [1] * len(kernel)))
        if (
            len(kernel) != 4
            or kernel[0] != 1
            or kernel[3] != 1
            or strides[0] != 1
            or strides[3] != 1
            or any(pads[i] for i in (0, 3, 4, 7))
            or dilations[0] != 1
            or dilations[3] != 1
            or len(node.output) != 1
        ):
            continue
        base = f"{node.name or node.output[0]}_kbm"
        axes = f"{base}_axes"
        graph.initializer.append(helper.make_tensor(axes, onnx.TensorProto.INT64, [2], [0, 1]))
        pool = {
            "kernel_shape": kernel[1:3],
            "strides": strides[1:3],
            "pads": [pads[1], pads[2], pads[5], pads[6]],
            "dilations": dilations[1:3],
        }
        replacement = [
            helper.make_node("Squeeze", [node.input[0], axes], [f"{base}_nhwc"]),
            helper.make_node("Transpose", [f"{base}_nhwc"], [f"{base}_nchw"], perm=[0, 3, 1, 2]),
            helper.make_node("MaxPool", [f"{base}_nchw"], [f"{base}_pooled"], **pool),
            helper.make_node("Transpose", [f"{base}_pooled"], [f"{base}_out"], perm=[0, 2, 3, 1]),
            helper.make_node("Unsqueeze", [f"{base}_out", axes], [node.output[0]]),
        ]
        index = list(graph.node).index(node)
        graph.node.remove(node)
        for offset, new in enumerate(replacement):
            graph.node.insert(index + offset, new)
        fixed += 1
    return fixed


def _name_outputs(graph, names: list[str]) -> None:
    """Gives the graph's outputs the model's output names (backends name them
    'Identity:0', '390' or 'softmax_out_0'), through Identity nodes."""
    from onnx import helper

    if len(graph.output) != len(names):
        return
    taken = {t for n in graph.node for t in list(n.input) + list(n.output)}
    taken |= {i.name for i in graph.input} | {i.name for i in graph.initializer}
    for output, name in zip(graph.output, names):
        if output.name == name or name in taken:
            continue
        graph.node.append(helper.make_node("Identity", [output.name], [name]))
        output.name = name


def export_onnx(
    model: keras.Model,
    path: str | os.PathLike,
    batch_size: int | None = None,
    opset_version: int | None = None,
) -> str:
    """Exports a model's forward pass to ONNX with Keras's own `model.export`.

    Keras converts through tf2onnx on TensorFlow, jax2onnx on JAX and
    `torch.onnx` on PyTorch (see `ONNX_BACKENDS`); this function calls the model
    once first (Keras's JAX exporter refuses a model that was never called),
    names the graph's outputs after the model's (`"task1"`, ..., or the output
    layer's name), repairs the 4D `MaxPool` that jax2onnx writes for
    `MaxPooling2D` and onnxruntime refuses, and writes the file atomically.
    Exporting needs no network.

    Args:
        model: A built, float32 `keras.Model`.
        path: Destination `.onnx` path.
        batch_size: A fixed batch size, or `None` (default) for a dynamic one.
        opset_version: The ONNX opset, or `None` for the exporter's default.

    Returns:
        The path written.

    Raises:
        ValueError: Bad arguments, or a model that is not float32.
        ImportError: The backend's converter is not installed (tf2onnx, jax2onnx).

    Example:

    ```python
    path = kbm.compress.export_onnx(zoo.build("multitask"), "multitask.onnx")
    task1, task2 = kbm.compress.run_onnx(path, x)     # onnxruntime
    ```
    """
    check_model(model)
    path = _check_destination(path, ".onnx")
    batch_size = check_positive_int("batch_size", batch_size, allow_none=True)
    opset_version = check_positive_int("opset_version", opset_version, allow_none=True)
    policies = sorted(
        {
            layer.dtype_policy.name
            for layer in _compat.all_layers(model)
            if layer.dtype_policy.name != "float32"
        }
    )
    if policies:
        raise ValueError(
            f"ONNX export needs a float32 model (as Keras's exporter does); model "
            f"'{model.name}' has layers with the dtype policies {policies}"
        )
    import onnx

    specs = keras.tree.map_structure(
        lambda t: keras.InputSpec(
            shape=(batch_size,) + tuple(t.shape[1:]), dtype=t.dtype, name=t.name
        ),
        model.input,
    )
    # Call it once: Keras's JAX exporter needs a model that was called.
    model(
        keras.tree.map_structure(
            lambda t: np.zeros((1,) + tuple(t.shape[1:]), keras.backend.standardize_dtype(t.dtype)),
            model.input,
        )
    )
    with atomic_path(path, suffix=".onnx") as tmp_path:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporters' deprecation chatter
            model.export(
                tmp_path,
                format="onnx",
                input_signature=[specs],
                opset_version=opset_version,
                verbose=False,
            )
        proto = onnx.load(tmp_path)
        _fix_jax_max_pool(proto.graph)
        _name_outputs(proto.graph, _output_names(model))
        onnx.save(proto, tmp_path)
    return path


def run_onnx(path: str | os.PathLike, inputs) -> list:
    """Runs an `.onnx` file with onnxruntime on the CPU.

    Args:
        path: An `.onnx` file, e.g. from `export_onnx`.
        inputs: An array, or for several inputs a dict keyed by input name (or a
            list in the model's input order).

    Returns:
        The outputs as a list of NumPy arrays, in the graph's output order (for
        `export_onnx` files, the order of `keras.tree.flatten(model.output)`).

    Raises:
        ValueError: Inputs that do not match the model's.
        FileNotFoundError: No file at `path`.
    """
    import onnxruntime

    path = check_path("path", path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No ONNX file at {path!r}")
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    feed = _feed([i.name for i in session.get_inputs()], inputs, "ONNX")
    return session.run(None, feed)


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


@keras.saving.register_keras_serializable(package="keras_bigmodel")
class ProbabilityDistillation(keras.distillation.DistillationLoss):
    """Temperature-scaled KL distillation for models that output probabilities.

    `keras.distillation.LogitsDistillation` expects logits; the zoo's models end
    in softmax. Since `log p` differs from the logits by a constant per example,
    `softmax(log p / T)` is exactly the tempered teacher distribution.
    """

    def __init__(self, temperature: float = 3.0):
        if (
            isinstance(temperature, bool)
            or not isinstance(temperature, (int, float))
            or temperature <= 0
        ):
            raise ValueError(
                f"`temperature` must be a positive number. Received: temperature={temperature!r}"
            )
        self.temperature = float(temperature)

    def compute_loss(self, teacher_outputs, student_outputs, **kwargs):
        def tempered(p):
            p = ops.cast(p, "float32")
            return ops.softmax(ops.log(ops.clip(p, 1e-7, 1.0)) / self.temperature, axis=-1)

        losses = keras.tree.map_structure(
            lambda t, s: ops.mean(keras.losses.kl_divergence(tempered(t), tempered(s))),
            teacher_outputs,
            student_outputs,
        )
        return ops.sum(ops.stack(keras.tree.flatten(losses))) * self.temperature**2

    def get_config(self):
        return {"temperature": self.temperature}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


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
    distiller.fit(
        x, y, epochs=epochs, batch_size=batch_size, validation_data=validation_data, verbose=verbose
    )
    return distiller.student
