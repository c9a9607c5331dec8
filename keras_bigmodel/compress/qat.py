"""Quantization-aware training with Keras's own fake-quantization op
(`keras.quantizers.fake_quant_with_min_max_vars`), on every backend.

`quantize_aware(model)` wraps each `Dense`, `EinsumDense` and convolution at the
model's top level in `QuantizeAwareLayer`: its input is fake-quantized to 8 bits
between a trainable minimum and maximum (so `fit` learns the activation scale, through
the op's gradient), its kernel between -max|w| and +max|w| (int8, symmetric, narrow range:
what the int8 exports use), per output channel for convolutions and per tensor for
dense kernels (as TensorFlow Model Optimization does). On TensorFlow the op is
TensorFlow's `FakeQuantWithMinMaxVars`, which the LiteRT converter reads:
`export_tflite(qat_model, ..., "int8", representative_data=x)` quantizes each
wrapped layer's input with the learned range. `export_onnx(qat_model, ..., "int8",
calibration_data=x)` exports the float model and gives onnxruntime's static
quantization the learned input ranges and the kernels' int8 scales (`learned_int8`) for
the tensors of each wrapped layer, on every backend. `strip_quantize_aware` returns the
plain float model.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from keras_bigmodel import _compat
from keras_bigmodel.compress._scope import call_arguments, call_with_values, clone_layers
from keras_bigmodel.validation import check_model

__all__ = [
    "QAT_LAYERS",
    "QuantizeAwareLayer",
    "learned_int8",
    "quantize_aware",
    "strip_quantize_aware",
]

QAT_LAYERS = (
    keras.layers.Dense,
    keras.layers.EinsumDense,
    keras.layers.Conv1D,
    keras.layers.Conv2D,
    keras.layers.Conv3D,
)


def _fake_quant_kernel(kernel, per_channel: bool):
    """Symmetric int8 in narrow range, per output channel (the last axis) or per
    tensor. Dense kernels are per tensor, as TensorFlow Model Optimization does: the
    LiteRT converter transposes a dense kernel to (outputs, inputs) and refuses a
    per-channel axis there ("'tfl.transpose' op has mismatched quantized axes")."""
    magnitude = ops.abs(ops.stop_gradient(kernel))
    if per_channel:
        bound = ops.max(magnitude, axis=tuple(range(len(kernel.shape) - 1)))
    else:
        bound = ops.max(magnitude)
    bound = ops.maximum(bound, 1e-8)
    return keras.quantizers.fake_quant_with_min_max_vars(
        kernel, -bound, bound, num_bits=8, narrow_range=True, axis=-1 if per_channel else None
    )


@keras.saving.register_keras_serializable(package="keras_bigmodel")
class QuantizeAwareLayer(keras.layers.Wrapper):
    """Runs a layer on a fake-quantized input with a fake-quantized kernel.

    Args:
        layer: A `Dense`, `EinsumDense` or convolution layer.
        input_range: The initial `(min, max)` of the input's 8-bit range; `fit`
            trains both.

    Call arguments:
        As the wrapped layer's.

    Returns:
        The wrapped layer's output.
    """

    def __init__(self, layer, input_range=(-6.0, 6.0), **kwargs):
        if not isinstance(layer, QAT_LAYERS):
            raise ValueError(
                f"`layer` must be one of {[c.__name__ for c in QAT_LAYERS]}. Received: "
                f"layer={layer!r}"
            )
        low, high = _check_range(input_range)
        kwargs.setdefault("name", layer.name)
        super().__init__(layer, **kwargs)
        self.input_range = (low, high)
        self._passes = call_arguments(layer)

    def build(self, input_shape=None):
        super().build(input_shape)
        low, high = self.input_range
        self.input_min = self.add_weight(
            name="input_min", shape=(), initializer=keras.initializers.Constant(low)
        )
        self.input_max = self.add_weight(
            name="input_max", shape=(), initializer=keras.initializers.Constant(high)
        )
        self.built = True

    def call(self, inputs, training=None):
        kwargs = {"training": training} if "training" in self._passes else {}
        x = keras.quantizers.fake_quant_with_min_max_vars(
            inputs, self.input_min, self.input_max, num_bits=8
        )
        per_channel = not isinstance(self.layer, (keras.layers.Dense, keras.layers.EinsumDense))
        replace = {id(self.layer.kernel): lambda k: _fake_quant_kernel(k, per_channel)}
        return call_with_values(self.layer, x, replace, **kwargs)

    def compute_output_shape(self, input_shape):
        return self.layer.compute_output_shape(input_shape)

    def compute_output_spec(self, inputs, *args, **kwargs):
        return self.layer.compute_output_spec(inputs)

    def get_config(self):
        return {**super().get_config(), "input_range": list(self.input_range)}


def _check_range(value) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(
            f"`input_range` must be two numbers (min, max). Received: input_range={value!r}"
        ) from None
    if not low <= 0.0 <= high or low == high:
        raise ValueError(
            f"`input_range` must hold 0 and have min < max. Received: input_range={value!r}"
        )
    return low, high


def quantize_aware(model: keras.Model, calibration_data=None) -> keras.Model:
    """A copy of `model` that trains with int8 fake quantization (see the module).

    Args:
        model: A built functional or Sequential float `keras.Model`.
        calibration_data: Optional inputs like the model's: each wrapped layer's
            input range starts at the range seen on them (else at (-6, 6)).

    Returns:
        The model to train (compiled as `model` was, without optimizer state).

    Raises:
        ValueError: A subclassed model, an already wrapped model, or nothing to wrap.

    Example:

    ```python
    qat = kbm.compress.quantize_aware(model, calibration_data=x[:256])
    qat.fit(x, y, epochs=1)
    kbm.compress.export_tflite(qat, "qat.tflite", "int8", representative_data=x[:256])
    ```
    """
    check_model(model)
    if not (_compat.is_functional(model) or isinstance(model, keras.Sequential)):
        raise ValueError(
            f"quantize_aware needs a functional or Sequential model; model '{model.name}' "
            f"is a {type(model).__name__}"
        )
    if any(isinstance(layer, QuantizeAwareLayer) for layer in _compat.all_layers(model)):
        raise ValueError(f"Model '{model.name}' is already quantization-aware")
    names = [layer.name for layer in model.layers if isinstance(layer, QAT_LAYERS)]
    if not names:
        raise ValueError(
            f"Model '{model.name}' has no layer to train quantization-aware at its top "
            f"level ({[c.__name__ for c in QAT_LAYERS]})"
        )
    ranges = {}
    if calibration_data is not None:
        probe = keras.Model(model.input, [model.get_layer(n).input for n in names])
        seen = probe.predict(calibration_data, verbose=0)
        seen = seen if isinstance(seen, list) else [seen]
        for name, values in zip(names, seen):
            values = np.asarray(values)
            low, high = min(float(values.min()), 0.0), max(float(values.max()), 0.0)
            ranges[name] = (low, high if high > low else low + 1.0)

    def wrap(layer):
        if layer.name not in names:
            return layer
        return QuantizeAwareLayer(layer, input_range=ranges.get(layer.name, (-6.0, 6.0)))

    return clone_layers(model, wrap)


def strip_quantize_aware(model: keras.Model) -> keras.Model:
    """The float model of a `quantize_aware` one (the wrapped layers, trained).

    Raises:
        ValueError: A model without `QuantizeAwareLayer`.
    """
    check_model(model)
    if not any(isinstance(layer, QuantizeAwareLayer) for layer in model.layers):
        raise ValueError(f"Model '{model.name}' has no QuantizeAwareLayer; nothing to strip")

    def unwrap(layer):
        return layer.layer if isinstance(layer, QuantizeAwareLayer) else layer

    return clone_layers(model, unwrap)


def learned_int8(model: keras.Model) -> list[dict]:
    """The int8 quantization that a `quantize_aware` model trained, layer by layer, as
    an int8 runtime stores it.

    The input range `[min, max]` is nudged as `keras.quantizers.fake_quant_with_min_max_vars`
    does (TensorFlow's FakeQuant): uint8 scale `(max - min) / 255` and zero point
    `round(clip(-min / scale, 0, 255))`; the kernel is symmetric int8 in narrow range,
    scale `max|w| / 127` per tensor (dense) or per output channel (convolutions).

    Args:
        model: A model with `QuantizeAwareLayer`s at its top level.

    Returns:
        One dict per wrapped layer: `"layer"` (its name), `"kernel"` (the float
        kernel, a NumPy array), `"per_channel"` (bool), `"kernel_scale"` (a float,
        or one per output channel: the kernel's last axis), `"input_scale"` (float)
        and `"input_zero_point"` (int in [0, 255]).

    Raises:
        ValueError: A model without `QuantizeAwareLayer`, or a layer whose learned
            range is empty (min >= max: the training diverged).

    Example:

    ```python
    for entry in learned_int8(qat):
        print(entry["layer"], entry["input_scale"], entry["input_zero_point"])
    ```
    """
    check_model(model)
    layers = [layer for layer in model.layers if isinstance(layer, QuantizeAwareLayer)]
    if not layers:
        raise ValueError(f"Model '{model.name}' has no QuantizeAwareLayer")
    found = []
    for layer in layers:
        low = float(ops.convert_to_numpy(layer.input_min))
        high = float(ops.convert_to_numpy(layer.input_max))
        if not high > low:
            raise ValueError(
                f"Layer '{layer.name}' learned an empty input range: min {low} >= max "
                f"{high}, which no int8 scale represents (the training diverged; a smaller "
                f"learning rate keeps min < max)"
            )
        scale = (high - low) / 255.0
        kernel = np.asarray(ops.convert_to_numpy(layer.layer.kernel), dtype="float32")
        per_channel = not isinstance(layer.layer, (keras.layers.Dense, keras.layers.EinsumDense))
        if per_channel:
            bound = np.abs(kernel).max(axis=tuple(range(kernel.ndim - 1)))
        else:
            bound = np.abs(kernel).max()
        found.append(
            {
                "layer": layer.name,
                "kernel": kernel,
                "per_channel": per_channel,
                "kernel_scale": np.maximum(bound, 1e-8).astype("float32") / 127.0,
                "input_scale": scale,
                "input_zero_point": int(np.round(np.clip(-low / scale, 0.0, 255.0))),
            }
        )
    return found
