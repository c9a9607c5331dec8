"""Exports to runtimes outside Keras, float or int8.

- `export_tflite`: a LiteRT (TFLite) flatbuffer through Keras's own
  `model.export(format="litert")`: float, float16, dynamic-range int8, or full-integer
  int8 calibrated on `representative_data` (convolutions, dense layers and what else
  LiteRT's built-in int8 kernels cover). The conversion is TensorFlow's, so this needs
  the TensorFlow backend (TensorFlow-only module code is imported lazily); the file
  runs anywhere the LiteRT interpreter does.
- `export_onnx`: an ONNX file through Keras's own `model.export(format="onnx")`
  (TensorFlow: tf2onnx; JAX: jax2onnx; PyTorch: torch.onnx), float, dynamic int8, or
  static QDQ int8 with per-channel weights and activations calibrated on
  `calibration_data` by onnxruntime's own quantization tools.
"""

from __future__ import annotations

import os
import tempfile
import warnings

import keras
import numpy as np

from keras_bigmodel import _compat
from keras_bigmodel.saving import atomic_path
from keras_bigmodel.validation import (
    check_choice,
    check_model,
    check_path,
    check_positive_int,
    require_tensorflow,
)

__all__ = [
    "ONNX_BACKENDS",
    "ONNX_QUANTIZATIONS",
    "TFLITE_QUANTIZATIONS",
    "export_onnx",
    "export_tflite",
]

TFLITE_QUANTIZATIONS = ("dynamic", "float16", "int8", None)
ONNX_QUANTIZATIONS = ("dynamic", "int8", None)
ONNX_BACKENDS = {
    "tensorflow": "tf2onnx",
    "jax": "jax2onnx",
    "torch": "torch.onnx (TorchScript exporter; onnxscript is not needed)",
}
# At most this many calibration examples are used (min/max calibration converges fast).
MAX_CALIBRATION_EXAMPLES = 512


# ---------------------------------------------------------------------- helpers
def raw_column_layers(model: keras.Model) -> list[str]:
    """The names of the layers in `model` that read a table's raw columns (a
    `TabularEncoding`): full-integer int8 cannot quantize their input on one scale."""
    return [
        layer.name
        for layer in _compat.all_layers(model)
        if getattr(layer, "takes_raw_columns", False)
    ]


def output_names(model: keras.Model) -> list[str]:
    """The model's output names in the order of `keras.tree.flatten(model.output)`:
    the sorted keys of a dict-output model, else `model.output_names`."""
    if isinstance(model.output, dict):
        return sorted(model.output)
    return list(model.output_names)


def input_names(model: keras.Model) -> list[str]:
    """The model's input names in the order of `keras.tree.flatten(model.input)`."""
    if isinstance(model.input, dict):
        return sorted(model.input)
    return [t.name for t in keras.tree.flatten(model.input)]


def _check_destination(path, suffix: str) -> str:
    path = check_path("path", path)
    if not path.endswith(suffix):
        raise ValueError(f"`path` must end in '{suffix}'. Received: path={path!r}")
    return path


def _static_signature(model: keras.Model, batch_size: int, what: str):
    """One `tf.TensorSpec` per model input, with a fixed batch size."""
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


def calibration_batches(model: keras.Model, data, name: str, batch_size: int) -> list[dict]:
    """`data` (an array, a list in input order or a dict by input name, as the model
    takes) as a list of `{input name: float32 batch}` of `batch_size` examples (the
    last one dropped if short, unless it is the only one)."""
    from keras_bigmodel.compress.runtime import as_feed

    if data is None:
        raise ValueError(
            f"int8 quantization needs `{name}`: examples like the model's inputs "
            f"(e.g. {MAX_CALIBRATION_EXAMPLES // 4}-{MAX_CALIBRATION_EXAMPLES} training "
            f"examples) to calibrate the activations' ranges. Received: {name}=None"
        )
    feed = as_feed(input_names(model), data, name)
    sizes = {k: len(v) for k, v in feed.items()}
    if len(set(sizes.values())) != 1 or not next(iter(sizes.values())):
        raise ValueError(
            f"`{name}` must hold the same positive number of examples for every input. "
            f"Received: {sizes}"
        )
    count = min(next(iter(sizes.values())), MAX_CALIBRATION_EXAMPLES)
    starts = list(range(0, count - batch_size + 1, batch_size)) or [0]
    return [{k: v[s : s + batch_size] for k, v in feed.items()} for s in starts]


def _at_training_size(model: keras.Model) -> keras.Model:
    """A model whose `ImagePreprocessing` front takes images of any size, as the same
    layers and weights with a static input of the size it was trained at (where the
    front only rescales: Keras's antialiased resize has no ONNX conversion); any other
    model as it is."""
    from keras_bigmodel.data.image_preprocessing import at_training_size

    return at_training_size(model)


def _serving_model(model: keras.Model) -> keras.Model:
    """The same layers with the outputs as a dict keyed by `output_names(model)`, so
    that converted files name their outputs like the model (a LiteRT signature names
    a lone output 'output_0' otherwise)."""
    outputs = dict(zip(output_names(model), keras.tree.flatten(model.output)))
    return keras.Model(model.input, outputs, name=model.name)


def _unrolled(model: keras.Model) -> keras.Model:
    """A copy of `model` whose recurrent layers are unrolled (`unroll=True`), for a
    static number of steps. TensorFlow's int8 calibrator crashes the process (a
    segmentation fault in `calibrator._feed_tensors`) on the `WHILE` loop that a
    rolled LSTM converts to; unrolled, the cell's products become fully connected
    operators that LiteRT runs in int8."""

    def unroll(config: dict) -> dict:
        config = dict(config)
        if "cell" in config or config.get("unroll") is False:
            config["unroll"] = True
        for key in ("layer", "backward_layer"):
            if isinstance(config.get(key), dict) and "config" in config[key]:
                config[key] = dict(config[key], config=unroll(config[key]["config"]))
        return config

    recurrent = (keras.layers.RNN, keras.layers.Bidirectional)
    if not any(isinstance(layer, recurrent) for layer in _compat.all_layers(model)):
        return model
    if any(None in tuple(t.shape[1:]) for t in keras.tree.flatten(model.input)):
        return model  # unrolling needs a known number of steps
    if not _compat.is_functional(model):
        raise ValueError(
            f"int8 LiteRT conversion of recurrent layers needs a functional model; model "
            f"'{model.name}' is a {type(model).__name__}"
        )

    def clone(layer):
        if isinstance(layer, recurrent):
            return layer.__class__.from_config(unroll(layer.get_config()))
        return layer  # shared: only the recurrent layers change

    copy = keras.models.clone_model(model, clone_function=clone)
    for old, new in zip(model.layers, copy.layers):
        if isinstance(old, recurrent):
            new.set_weights(old.get_weights())
    return copy


# ----------------------------------------------------------------------- LiteRT
def export_tflite(
    model: keras.Model,
    path: str | os.PathLike,
    quantization: str | None = "dynamic",
    batch_size: int = 1,
    representative_data=None,
) -> str:
    """Converts a model to a LiteRT (TFLite) flatbuffer with Keras's own exporter.

    Runs `model.export(path, format="litert")` with a static input signature
    (batch `batch_size`) and only LiteRT's built-in operators: with an unknown
    batch size, Keras's exporter turns an LSTM into TensorFlow "Flex" operators
    that the LiteRT interpreter cannot run ("Node number 0 (FlexTensorListReserve)
    failed to prepare"). The file's outputs are named like the model's (the task
    names of a dict-output model, else the output layer's name). The conversion
    is TensorFlow's, so this needs the TensorFlow backend (`.keras` files load on
    every backend); the file runs anywhere the LiteRT interpreter does
    (`open_runtime`). Written atomically.

    `quantization="int8"` is full-integer post-training quantization: int8
    weights (per channel) and int8 activations whose ranges are calibrated on
    `representative_data`, with float32 input and output (the file quantizes
    the input and dequantizes the output itself). Operators without an int8
    kernel in LiteRT stay float (`op_coverage` says what share of the
    multiply-adds runs in int8). A model from `quantize_aware` converts with the
    ranges it learned (its fake-quantization nodes); `representative_data` is
    then still used for anything they do not cover.

    A model with an `ImagePreprocessing` front (raw images of any size, e.g. one
    that `keras-bigmodel train` fitted to an image folder) is converted at the size
    it was trained at: the file takes raw pixels of that size.

    Args:
        model: A built `keras.Model` whose inputs have static shapes apart from
            the batch dimension (or an `ImagePreprocessing` front).
        path: Destination `.tflite` path.
        quantization: `"int8"` (full integer, needs `representative_data`),
            `"dynamic"` (int8 weights, activations quantized on the fly: the
            documents' dynamic quantization), `"float16"` (float16 weights) or
            `None`.
        batch_size: The fixed batch size of the converted model (the runtime
            resizes it or pads to it for other batch sizes).
        representative_data: For `"int8"`: inputs like the model's (an array, a
            list in input order or a dict by input name), e.g. a few hundred
            training examples.

    Returns:
        The path written.

    Raises:
        UnsupportedBackendError: Keras does not run on TensorFlow.
        ValueError: Bad arguments, an input with an unknown non-batch size, or
            `"int8"` without `representative_data`.

    Example:

    ```python
    path = kbm.compress.export_tflite(model, "cnn.tflite", "int8", representative_data=x[:256])
    probabilities = kbm.compress.open_runtime(path).predict(x)
    ```
    """
    require_tensorflow("kbm.compress.export_tflite", "TFLite conversion is part of TensorFlow")
    check_model(model)
    model = _at_training_size(model)
    path = _check_destination(path, ".tflite")
    if quantization is not None:
        check_choice("quantization", quantization, [q for q in TFLITE_QUANTIZATIONS if q])
    batch_size = check_positive_int("batch_size", batch_size)
    import tensorflow as tf

    options = {"target_spec": {"supported_ops": [tf.lite.OpsSet.TFLITE_BUILTINS]}}
    if quantization is not None:
        options["optimizations"] = [tf.lite.Optimize.DEFAULT]
    if quantization == "float16":
        options["target_spec"]["supported_types"] = [tf.float16]
    if quantization == "int8":
        raw = raw_column_layers(model)
        if raw:
            raise ValueError(
                f"quantization='int8' (full integer) would quantize the raw table columns "
                f"that layer '{raw[0]}' standardizes on one int8 scale (columns near 4000 "
                f"and near 17 cannot share one); use quantization='dynamic' (int8 weights, "
                f"float activations) or kbm.compress.export_onnx(quantization='int8'), which "
                f"keeps the input preprocessing in float. Received: quantization='int8' "
                f"for model '{model.name}'"
            )
    serving = _serving_model(_unrolled(model) if quantization == "int8" else model)
    signature = _static_signature(serving, batch_size, "LiteRT")
    attempts = [options]
    if quantization == "int8":
        batches = calibration_batches(model, representative_data, "representative_data", batch_size)

        def representative_dataset():
            yield from batches  # dicts by input name, as the signature takes them

        options["representative_dataset"] = representative_dataset
        # Strict full-integer first; if some operator has no int8 kernel (the
        # converter refuses), let that operator stay float.
        strict = dict(options, target_spec={"supported_ops": [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]})
        mixed = dict(
            options,
            target_spec={
                "supported_ops": [
                    tf.lite.OpsSet.TFLITE_BUILTINS_INT8,
                    tf.lite.OpsSet.TFLITE_BUILTINS,
                ]
            },
        )
        attempts = [strict, mixed]
    with atomic_path(path, suffix=".tflite") as tmp_path:
        for i, converter_options in enumerate(attempts):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    serving.export(
                        tmp_path,
                        format="litert",
                        input_signature=signature,
                        verbose=False,
                        **converter_options,
                    )
                break
            except Exception:
                if i == len(attempts) - 1:
                    raise
    return path


# ------------------------------------------------------------------------- ONNX
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


class _CalibrationReader:
    """onnxruntime's `CalibrationDataReader` protocol over a list of feeds."""

    def __init__(self, batches: list[dict]):
        self._batches = batches
        self._next = 0

    def get_next(self):
        if self._next >= len(self._batches):
            return None
        self._next += 1
        return self._batches[self._next - 1]

    def rewind(self):
        self._next = 0


# Operators that hold the model's weights: everything before the first of them is the
# model's input preprocessing (a table's standardization and lookups, a rescaling).
_WEIGHT_OPS = {"Conv", "ConvTranspose", "Gemm", "MatMul", "Einsum", "LSTM", "GRU", "RNN"}


def _input_prefix(path: str) -> list[str]:
    """Names the nodes that no weight operator feeds (naming unnamed nodes in the file):
    the input preprocessing, which static quantization must leave in float. Quantizing
    it puts raw columns of different scales (a body mass near 4000 and a bill depth near
    17) on one int8 scale: a tabular model's accuracy fell from 0.99 to 0.51."""
    import onnx

    model = onnx.load(path)
    renamed, reached, prefix = False, set(), []
    for i, node in enumerate(model.graph.node):
        if not node.name:
            node.name, renamed = f"kbm_node_{i}", True
        if node.op_type in _WEIGHT_OPS or any(t in reached for t in node.input):
            reached.update(node.output)
        else:
            prefix.append(node.name)
    if renamed:
        onnx.save(model, path)
    return prefix


# Operators that pass a tensor's values through unchanged (or only rearranged): a
# fake-quantized tensor is still on its int8 grid after them, so the learned range of
# a layer's input holds for the tensors before them too.
_SHAPE_OPS = {"Cast", "Flatten", "Identity", "Reshape", "Squeeze", "Transpose", "Unsqueeze"}
_KERNEL_OPS = {"Conv", "Gemm", "MatMul"}


def _learned_overrides(model, learned: list[dict], excluded: set[str]) -> dict:
    """onnxruntime `TensorQuantOverrides` that give each quantization-aware layer's
    tensors in the ONNX graph `model` the int8 scales it learned (`learned_int8`).

    A layer's kernel is found as the initializer of a `Conv`, `Gemm` or `MatMul` node
    that holds the same values (exporters transpose convolution kernels to ONNX's
    (out, in, ...) layout); that node's other input is the layer's input, which
    gets the learned uint8 scale and zero point, as do the tensors it comes from
    through operators that only rearrange values (`Transpose`, `Reshape`, ...). The
    kernel gets the layer's symmetric int8 scale (per tensor for dense kernels, per
    output channel, ONNX's axis 0, for convolutions).

    Raises:
        ValueError: A convolution's kernel is read by a node that is not a `Conv`.

    Warns:
        UserWarning: No such node reads a layer's kernel (it is calibrated instead).
    """
    from onnx import numpy_helper

    graph = model.graph
    initializers = {t.name: t for t in graph.initializer}
    producers = {o: n for n in graph.node for o in n.output}
    overrides = {}
    for entry in learned:
        kernel = np.sort(entry["kernel"], axis=None)
        matches = []
        for node in graph.node:
            if node.op_type not in _KERNEL_OPS or node.name in excluded:
                continue
            for position, name in enumerate(node.input[:2]):
                tensor = initializers.get(name)
                if tensor is None or int(np.prod(tensor.dims)) != kernel.size:
                    continue
                weight = numpy_helper.to_array(tensor)
                if np.array_equal(np.sort(weight, axis=None), kernel):
                    matches.append((node, position, weight))
        if not matches:
            warnings.warn(
                f"The int8 ONNX file calibrates quantization-aware layer "
                f"'{entry['layer']}' instead of using its learned scales: no "
                f"{sorted(_KERNEL_OPS)} node of the exported graph reads its kernel (e.g. "
                f"PyTorch writes an EinsumDense as an Einsum, which onnxruntime's static "
                f"quantization leaves float)",
                stacklevel=3,
            )
        for node, position, weight in matches:  # several: a layer called more than once
            _override_layer(overrides, entry, node, position, weight, producers, excluded)
    return overrides


def _override_layer(overrides, entry, node, position, weight, producers, excluded) -> None:
    """Adds the overrides of one layer whose kernel is input `position` of `node`."""
    scale = np.asarray(entry["kernel_scale"], dtype="float32")
    name = node.input[position]
    if entry["per_channel"]:
        if node.op_type != "Conv" or weight.shape[0] != scale.size:
            raise ValueError(
                f"Quantization-aware layer '{entry['layer']}' has {scale.size} per-channel "
                f"kernel scales, but its kernel in the ONNX graph is the weight of a "
                f"{node.op_type} of shape {weight.shape}"
            )
        overrides[name] = [{"axis": 0, "scale": float(scale[0]), "zero_point": 0}]
        overrides[name] += [{"scale": float(v), "zero_point": 0} for v in scale[1:]]
    else:
        overrides[name] = [{"scale": float(scale), "zero_point": 0}]
    activation = {  # onnxruntime needs NumPy values for activations
        "scale": np.array(entry["input_scale"], dtype="float32"),
        "zero_point": np.array(entry["input_zero_point"], dtype="uint8"),
    }
    tensor = node.input[1 - position]
    while True:
        overrides[tensor] = [dict(activation)]
        source = producers.get(tensor)
        if source is None or source.op_type not in _SHAPE_OPS or source.name in excluded:
            return
        tensor = source.input[0]


# What static quantization converts in a recurrent model: its matrix products only. The
# cell's gates (sigmoid, tanh, the products and sums of the state) stay float, so that
# the int8 rounding of the state does not add up over the unrolled steps: on the digits'
# attention_rnn (TensorFlow, 450 test rows) top-1 agreement with Keras float32 went from
# 0.971 to 0.989, and the file ran 5-9% faster (fewer quantize/dequantize pairs).
_RECURRENT_INT8_OPS = ["Conv", "Gemm", "MatMul"]


def _quantize_onnx(
    source: str,
    destination: str,
    quantization: str,
    batches,
    learned: list[dict] | None = None,
    products_only: bool = False,
) -> None:
    import onnx
    from onnxruntime import quantization as q

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if quantization == "dynamic":
            q.quantize_dynamic(source, destination, weight_type=q.QuantType.QInt8)
            return
        prepared = source + ".prep.onnx"
        try:
            q.quant_pre_process(source, prepared, skip_symbolic_shape=True)
        except Exception:  # the optimizer of some graphs; calibrate the raw one
            prepared = source
    preprocessing = _input_prefix(prepared)
    extra = {}
    if learned:
        overrides = _learned_overrides(onnx.load(prepared), learned, set(preprocessing))
        extra["TensorQuantOverrides"] = overrides
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        q.quantize_static(
            prepared,
            destination,
            _CalibrationReader(batches),
            quant_format=q.QuantFormat.QDQ,
            per_channel=True,
            activation_type=q.QuantType.QUInt8,
            weight_type=q.QuantType.QInt8,
            calibrate_method=q.CalibrationMethod.MinMax,
            nodes_to_exclude=preprocessing,
            op_types_to_quantize=_RECURRENT_INT8_OPS if products_only else None,
            extra_options=extra,
        )


def export_onnx(
    model: keras.Model,
    path: str | os.PathLike,
    batch_size: int | None = None,
    opset_version: int | None = None,
    quantization: str | None = None,
    calibration_data=None,
) -> str:
    """Exports a model's forward pass to ONNX with Keras's own `model.export`.

    Keras converts through tf2onnx on TensorFlow, jax2onnx on JAX and
    `torch.onnx` on PyTorch (see `ONNX_BACKENDS`); this function calls the model
    once first (Keras's JAX exporter refuses a model that was never called),
    names the graph's outputs after the model's (`"task1"`, ..., or the output
    layer's name), repairs the 4D `MaxPool` that jax2onnx writes for
    `MaxPooling2D` and onnxruntime refuses, and writes the file atomically.
    Exporting needs no network.

    `quantization="int8"` is onnxruntime's static quantization in QDQ format:
    int8 weights with per-channel scales, uint8 activations whose ranges are
    calibrated (min/max) on `calibration_data`; onnxruntime runs the QDQ pairs
    around a convolution or matrix product as one int8 kernel. In a model with
    recurrent layers (unrolled for the export) only the matrix products are
    quantized: the cell's gates and state stay float, so that rounding does not
    add up over the steps. `"dynamic"` is
    onnxruntime's dynamic quantization (int8 weights, activations quantized on
    the fly; it also covers ONNX `LSTM` nodes). A `quantize_aware` model is
    exported as its float model (`strip_quantize_aware`); with `"int8"`, each
    wrapped layer's input gets the range it learned and its kernel the int8 scales
    it trained with (`qat.learned_int8`), the other tensors calibrated ranges. A
    model with an `ImagePreprocessing` front (raw images of any size) is exported at
    the size it was trained at, where the front only rescales (Keras's antialiased
    resize has no ONNX conversion on TensorFlow or PyTorch): the file takes raw
    pixels of that size.

    Args:
        model: A built, float32 `keras.Model`.
        path: Destination `.onnx` path.
        batch_size: A fixed batch size, or `None` (default) for a dynamic one.
        opset_version: The ONNX opset, or `None` for the exporter's default.
        quantization: `None` (float32, default), `"int8"` (static, needs
            `calibration_data`) or `"dynamic"`.
        calibration_data: For `"int8"`: inputs like the model's (an array, a
            list in input order or a dict by input name).

    Returns:
        The path written.

    Raises:
        ValueError: Bad arguments, a model that is not float32, or (int8 of a
            `quantize_aware` model) a learned range that is empty.
        ImportError: The backend's converter is not installed (tf2onnx, jax2onnx).

    Example:

    ```python
    path = kbm.compress.export_onnx(model, "cnn.onnx", quantization="int8", calibration_data=x)
    probabilities = kbm.compress.open_runtime(path).predict(x)
    ```
    """
    check_model(model)
    model = _at_training_size(model)
    path = _check_destination(path, ".onnx")
    batch_size = check_positive_int("batch_size", batch_size, allow_none=True)
    opset_version = check_positive_int("opset_version", opset_version, allow_none=True)
    if quantization is not None:
        check_choice("quantization", quantization, [q for q in ONNX_QUANTIZATIONS if q])
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
    from keras_bigmodel.compress.qat import (
        QuantizeAwareLayer,
        learned_int8,
        strip_quantize_aware,
    )

    learned = None
    if any(isinstance(layer, QuantizeAwareLayer) for layer in model.layers):
        if quantization == "int8":
            learned = learned_int8(model)  # the scales it trained, for onnxruntime
        model = strip_quantize_aware(model)
    batches, recurrent = None, False
    if quantization == "int8":
        batches = calibration_batches(model, calibration_data, "calibration_data", batch_size or 32)
        # onnxruntime's static quantization leaves ONNX `LSTM` nodes float; unrolled,
        # the cell's products are matrix products it quantizes (and only those).
        unrolled = _unrolled(model)
        recurrent, model = unrolled is not model, unrolled
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
        _name_outputs(proto.graph, output_names(model))
        if quantization is None:
            onnx.save(proto, tmp_path)
        else:
            with tempfile.TemporaryDirectory() as work:
                float_path = os.path.join(work, "float.onnx")
                onnx.save(proto, float_path)
                _quantize_onnx(
                    float_path, tmp_path, quantization, batches, learned, products_only=recurrent
                )
    return path
