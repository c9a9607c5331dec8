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
def test_quantize_aware_errors(tmp_path):
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
    # A range that training turned over has no int8 scale: the int8 export says so.
    qat = kbm.compress.quantize_aware(model)
    layer = next(la for la in qat.layers if isinstance(la, QuantizeAwareLayer))
    layer.input_min.assign(0.5)
    layer.input_max.assign(-0.25)
    with pytest.raises(
        ValueError,
        match=rf"Layer '{layer.name}' learned an empty input range: min 0.5 >= max -0.25",
    ):
        kbm.compress.export_onnx(qat, tmp_path / "q.onnx", quantization="int8")


def test_onnx_int8_of_a_quantize_aware_model_uses_its_learned_scales(tmp_path):
    """export_onnx(qat, "int8") gives each wrapped layer's input the range it learned
    (scale (max - min) / 255, zero point -min / scale) and its kernel the int8 values
    it trained with, on every backend's exporter; the file then computes what the
    quantization-aware model computes."""
    import onnx
    from onnx import numpy_helper

    keras.utils.set_random_seed(1)
    rng = np.random.default_rng(1)
    x = rng.uniform(size=(32, 6, 6, 1)).astype("float32")
    y = keras.utils.to_categorical(rng.integers(0, 3, size=32), 3)
    inputs = keras.Input((6, 6, 1), name="image")
    hidden = keras.layers.Conv2D(3, 3, activation="relu", name="conv")(inputs)
    outputs = keras.layers.Dense(3, activation="softmax", name="dense")(
        keras.layers.Flatten()(hidden)
    )
    # Ranges started on inputs half as large, then trained: they differ from the
    # ranges a calibration on `x` finds.
    qat = kbm.compress.quantize_aware(keras.Model(inputs, outputs), calibration_data=x[:4] * 0.5)
    qat.compile(  # jitted on JAX: its eager steps compile op by op, 4x slower here
        optimizer=keras.optimizers.Adam(0.01),
        loss="categorical_crossentropy",
        jit_compile=keras.backend.backend() == "jax",
    )
    for _ in range(3):
        qat.train_on_batch(x, y)
    path = kbm.compress.export_onnx(
        qat, tmp_path / "qat.onnx", quantization="int8", calibration_data=x
    )

    graph = onnx.load(path).graph
    values = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    producer = {o: n for n in graph.node for o in n.output}

    def dequantized(name):  # the DequantizeLinear writing `name`, its scale and zero point
        node = producer[name]
        assert node.op_type == "DequantizeLinear", node
        scale, zero = (values[node.input[i]] for i in (1, 2))
        return node, scale, zero

    seen = {}
    for node in graph.node:
        if node.op_type not in ("Conv", "Gemm", "MatMul"):
            continue
        weight_dq, w_scale, w_zero = dequantized(node.input[1])
        assert not w_zero.any()  # symmetric int8 kernels
        q_weight = values[weight_dq.input[0]].astype("float32")
        if node.op_type == "Conv":  # one scale per output channel, ONNX's axis 0
            w_scale = w_scale.reshape((-1,) + (1,) * (q_weight.ndim - 1))
        weight = q_weight * w_scale
        _, a_scale, a_zero = dequantized(node.input[0])
        for layer in qat.layers:
            if not isinstance(layer, QuantizeAwareLayer):
                continue
            kernel = keras.ops.convert_to_numpy(layer.layer.kernel)
            bound = np.abs(kernel).max(axis=(0, 1, 2) if layer.name == "conv" else None)
            q_kernel = np.round(kernel / bound * 127) * bound / 127
            if weight.size == kernel.size and np.allclose(
                np.sort(weight, axis=None), np.sort(q_kernel, axis=None), atol=1e-7
            ):
                low = float(keras.ops.convert_to_numpy(layer.input_min))
                high = float(keras.ops.convert_to_numpy(layer.input_max))
                seen[layer.name] = (float(a_scale), int(a_zero), low, high)
    assert sorted(seen) == ["conv", "dense"], seen
    for name, (scale, zero, low, high) in seen.items():
        assert scale == pytest.approx((high - low) / 255, rel=1e-6), (name, scale, low, high)
        assert zero == int(np.round(np.clip(-low / ((high - low) / 255), 0, 255))), name
    # The first layer sees the model's input: a calibration on `x` gives it [0, max x].
    assert abs(seen["conv"][0] / (x.max() / 255) - 1) > 0.1, (seen["conv"], x.max())

    got = kbm.compress.run_onnx(path, x)[0]
    want = qat.predict(x, verbose=0)
    plain = kbm.compress.strip_quantize_aware(qat).predict(x, verbose=0)
    np.testing.assert_allclose(got, want, atol=0.02)
    assert np.abs(plain - want).max() > 0.05  # the float model is not what it computes


@pytest.mark.backend_independent
def test_learned_scales_find_a_kernel_by_its_values_in_any_layout():
    """The ONNX side of the QAT export: a dense kernel stored transposed (a Gemm with
    transB) is found by its values, its input's scale also goes to the tensor before
    an Identity, and a layer whose kernel no Conv/Gemm/MatMul reads is reported."""
    from onnx import TensorProto, helper, numpy_helper

    from keras_bigmodel.compress.export import _learned_overrides

    kernel = np.arange(6, dtype="float32").reshape(3, 2) - 2.5
    graph = helper.make_graph(
        [
            helper.make_node("Identity", ["x"], ["xi"], name="id"),
            helper.make_node("Gemm", ["xi", "w"], ["y"], name="gemm", transB=1),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 2])],
        [numpy_helper.from_array(kernel.T.copy(), "w")],
    )
    entry = {
        "layer": "dense",
        "kernel": kernel,
        "per_channel": False,
        "kernel_scale": np.float32(2.5 / 127),
        "input_scale": 0.01,
        "input_zero_point": 3,
    }
    missing = dict(entry, layer="other", kernel=kernel + 1)
    with pytest.warns(UserWarning, match="calibrates quantization-aware layer 'other'"):
        overrides = _learned_overrides(helper.make_model(graph), [entry, missing], set())
    assert sorted(overrides) == ["w", "x", "xi"]
    assert overrides["w"] == [{"scale": pytest.approx(2.5 / 127), "zero_point": 0}]
    for name in ("x", "xi"):
        (activation,) = overrides[name]
        assert float(activation["scale"]) == pytest.approx(0.01)
        assert int(activation["zero_point"]) == 3
    # Excluded (float) nodes pass nothing upstream.
    assert sorted(_learned_overrides(helper.make_model(graph), [entry], {"id"})) == ["w", "xi"]
