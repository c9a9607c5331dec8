"""kbm.compress.quantize_aware: fake quantization that fit trains (the input ranges
move), outputs equal to a NumPy fake quantization, save/reload, and (TensorFlow) a
LiteRT int8 export that uses the learned ranges."""

import keras
import numpy as np
import pytest

import keras_bigmodel as kbm
import zoo
from keras_bigmodel.compress.qat import QuantizeAwareLayer


def _fake_quant(x, low, high, levels=255):
    """TensorFlow's FakeQuantWithMinMaxVars (nudged zero point), in NumPy."""
    scale = (high - low) / levels
    zero = np.round(-low / scale)
    low, high = -zero * scale, (levels - zero) * scale
    return np.round((np.clip(x, low, high) - low) / scale) * scale + low


def test_quantize_aware_trains_its_ranges_and_reloads(tmp_path):
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(64, 16)).astype("float32")
    y = keras.utils.to_categorical(rng.integers(0, 3, size=64), 3)
    model = zoo.build("multitask", input_shape=(16,), trunk_units=(8,), tasks={"t": 3})
    # Calibrated on inputs half as large: the others fall outside the range, whose
    # gradient then moves it (inside the range, values pass straight through).
    qat = kbm.compress.quantize_aware(model, calibration_data=x[:4] * 0.5)
    layer = qat.get_layer("trunk_0")
    assert isinstance(layer, QuantizeAwareLayer)
    high = float(x[:4].max() * 0.5)
    assert layer.input_range[0] == 0.0 and layer.input_range[1] == pytest.approx(high)
    # The forward pass against NumPy: the input quantized on the calibrated range,
    # the kernel symmetric per tensor with 127 steps a side.
    kernel = keras.ops.convert_to_numpy(layer.layer.kernel)
    bias = keras.ops.convert_to_numpy(layer.layer.bias)
    bound = np.abs(kernel).max()
    q_kernel = np.round(kernel / bound * 127) * bound / 127
    q_x = _fake_quant(x[:4], 0.0, high)
    probe = keras.Model(qat.input, layer.output)
    np.testing.assert_allclose(
        probe.predict(x[:4], verbose=0), np.maximum(q_x @ q_kernel + bias, 0), atol=1e-5
    )
    before = [float(keras.ops.convert_to_numpy(v)) for v in (layer.input_min, layer.input_max)]
    qat.compile(
        optimizer=keras.optimizers.Adam(0.05), loss="categorical_crossentropy", jit_compile=False
    )
    qat.fit(x, {"t": y}, epochs=2, batch_size=16, verbose=0)
    after = [float(keras.ops.convert_to_numpy(v)) for v in (layer.input_min, layer.input_max)]
    assert after != before  # fit learns the range
    restored = kbm.load_model(kbm.save_model(qat, tmp_path / "qat.keras"))
    np.testing.assert_allclose(
        restored.predict(x, verbose=0)["t"], qat.predict(x, verbose=0)["t"], atol=1e-6
    )
    plain = kbm.compress.strip_quantize_aware(qat)
    assert not any(isinstance(la, QuantizeAwareLayer) for la in plain.layers)
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(plain.get_layer("trunk_0").kernel),
        keras.ops.convert_to_numpy(layer.layer.kernel),
    )
    if keras.backend.backend() != "tensorflow":
        return
    from ai_edge_litert.interpreter import Interpreter

    path = kbm.compress.export_tflite(qat, tmp_path / "qat.tflite", "int8", representative_data=x)
    interpreter = Interpreter(model_path=str(path))
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    scales = [
        tensors[op["inputs"][0]]["quantization"][0]
        for op in interpreter._get_ops_details()
        if op["op_name"] == "FULLY_CONNECTED"
    ]
    # The first dense layer's int8 input scale is the learned range over 255 steps.
    assert scales[0] == pytest.approx((after[1] - after[0]) / 255, rel=1e-3), (scales, after)


@pytest.mark.backend_independent
def test_quantize_aware_errors():
    model = zoo.build("fusion")
    with pytest.raises(ValueError, match="already quantization-aware"):
        kbm.compress.quantize_aware(kbm.compress.quantize_aware(model))
    inputs = keras.Input((4,))
    pool = keras.Model(inputs, keras.layers.Activation("relu")(inputs))
    with pytest.raises(ValueError, match="has no layer to train quantization-aware"):
        kbm.compress.quantize_aware(pool)
    with pytest.raises(ValueError, match=r"`input_range` must hold 0 and have min < max"):
        QuantizeAwareLayer(keras.layers.Dense(2), input_range=(1.0, 2.0))
    with pytest.raises(ValueError, match="has no QuantizeAwareLayer"):
        kbm.compress.strip_quantize_aware(model)
