"""int8 exports (LiteRT full integer, ONNX static QDQ) against Keras's float outputs,
the runtimes that serve them (`open_runtime`, `RuntimeModel`), and the op-coverage
count against multiply-adds counted by hand."""

import json
import os

import keras
import numpy as np
import pytest
from export_helpers import keras_outputs, sample_inputs, small_preset

import keras_bigmodel as kbm

BACKEND = keras.backend.backend()
# A convolution, an LSTM with attention (crossmodal), two named inputs and dict
# outputs; on JAX and PyTorch, whose exporters are slower, two inputs and dict outputs
# (the conv int8 path is in test_op_coverage_counts_multiply_adds_by_kind;
# benchmarks/int8.py runs the cnn, attention_rnn and multitask presets).
ONNX_PRESETS = (
    ("cnn", "crossmodal", "fusion", "multitask")
    if BACKEND == "tensorflow"
    else ("fusion", "multitask")
)
LITERT_PRESETS = ("rnn", "fusion", "multitask")  # an LSTM, two inputs, dict outputs


def _close(got, want, atol, what):
    assert len(got) == len(want), what
    for g, w in zip(got, want):
        assert g.shape == w.shape, what
        np.testing.assert_allclose(g, w, atol=atol, err_msg=what)


def test_int8_onnx_matches_keras_and_runs_every_product_in_int8(tmp_path):
    for name in ONNX_PRESETS:
        model = small_preset(name)
        x = sample_inputs(model, batch=24)
        path = kbm.compress.export_onnx(
            model, tmp_path / f"{name}.onnx", quantization="int8", calibration_data=x
        )
        runtime = kbm.compress.open_runtime(path)
        got = keras.tree.flatten(runtime.predict(x, batch_size=10))  # 10 + 10 + 4
        # int8 activations of probabilities in [0, 1]: steps of 1/255 or so.
        _close(got, keras_outputs(model, x), 0.03, name)
        coverage = kbm.compress.op_coverage(path)
        assert coverage["int8_share"] == 1.0 and coverage["macs"] > 0, (name, coverage)
        assert runtime.output_names == kbm.compress.export.output_names(model), name


@pytest.mark.tensorflow_only
def test_int8_litert_matches_keras_with_float_io(tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    for name in LITERT_PRESETS:
        model = small_preset(name)
        x = sample_inputs(model, batch=24)
        path = kbm.compress.export_tflite(
            model, tmp_path / f"{name}.tflite", quantization="int8", representative_data=x
        )
        runtime = kbm.compress.open_runtime(path)
        assert runtime.batch_size == 1  # converted at batch 1; run at 32 (resized or padded)
        _close(keras.tree.flatten(runtime.predict(x)), keras_outputs(model, x), 0.03, name)
        assert kbm.compress.op_coverage(path)["int8_share"] == 1.0, name
        details = Interpreter(model_path=path).get_signature_runner()
        # Float in, float out: the file quantizes and dequantizes at its edges.
        assert {d["dtype"] for d in details.get_input_details().values()} == {np.float32}
        assert {d["dtype"] for d in details.get_output_details().values()} == {np.float32}
    assert runtime.output_names == ["task1", "task2"]
    # Multiply-adds counted from the LiteRT file against the hand count.
    x = np.random.default_rng(0).normal(size=(16, 6, 6, 2)).astype("float32")
    path = kbm.compress.export_tflite(
        _conv_dense(), tmp_path / "conv.tflite", "int8", representative_data=x
    )
    report = kbm.compress.op_coverage(path)
    assert report["macs"] == report["int8_macs"] == HAND_COUNTED_MACS, report
    assert sorted(o["type"] for o in report["ops"]) == ["CONV_2D", "FULLY_CONNECTED"]


def test_int8_exports_need_calibration_data(tmp_path):
    model = small_preset("fusion")
    with pytest.raises(ValueError, match="int8 quantization needs `calibration_data`"):
        kbm.compress.export_onnx(model, tmp_path / "m.onnx", quantization="int8")
    with pytest.raises(ValueError, match=r"`quantization` must be one of \['dynamic', 'int8'\]"):
        kbm.compress.export_onnx(model, tmp_path / "m.onnx", quantization="int4")
    with pytest.raises(ValueError, match=r"Missing input\(s\) \['input_2'\]"):
        kbm.compress.export_onnx(
            model, tmp_path / "m.onnx", quantization="int8", calibration_data={"input_1": 1}
        )
    assert os.listdir(tmp_path) == []


def _conv_dense():
    inputs = keras.Input((6, 6, 2), name="image")
    h = keras.layers.Conv2D(3, 3, name="conv")(inputs)  # 4 x 4 x 3 outputs, 18 MACs each
    h = keras.layers.Flatten()(h)
    outputs = keras.layers.Dense(5, activation="softmax", name="out")(h)  # 48 MACs each
    return keras.Model(inputs, outputs)


HAND_COUNTED_MACS = 4 * 4 * 3 * (3 * 3 * 2) + 48 * 5  # 1104 for one example


def test_op_coverage_counts_multiply_adds_by_kind(tmp_path):
    model = _conv_dense()
    x = np.random.default_rng(0).normal(size=(16, 6, 6, 2)).astype("float32")
    plain = kbm.compress.export_onnx(model, tmp_path / "f.onnx")
    int8 = kbm.compress.export_onnx(
        model, tmp_path / "q.onnx", quantization="int8", calibration_data=x
    )
    dynamic = kbm.compress.export_onnx(model, tmp_path / "d.onnx", quantization="dynamic")
    for path, kind in ((plain, "float"), (int8, "int8")):
        report = kbm.compress.op_coverage(path)
        assert report["macs"] == HAND_COUNTED_MACS, (path, report)
        assert {o["kind"] for o in report["ops"]} == {kind}
    assert kbm.compress.op_coverage(plain)["int8_share"] == 0.0
    # onnxruntime's dynamic quantization: int8 kernels, activations quantized on the fly
    report = kbm.compress.op_coverage(dynamic)
    assert report["dynamic_macs"] == report["macs"] == HAND_COUNTED_MACS
    assert report["int8_share"] == 1.0 and report["static_int8_share"] == 0.0
    with pytest.raises(ValueError, match=r"`path` must end in '.onnx' or '.tflite'"):
        kbm.compress.op_coverage(tmp_path / "m.keras")
    with pytest.raises(FileNotFoundError, match="No model file"):
        kbm.compress.op_coverage(tmp_path / "missing.onnx")


def test_open_runtime_takes_arrays_lists_and_dicts_at_any_batch_size(tmp_path):
    model = small_preset("fusion")  # two inputs
    x = sample_inputs(model, batch=7)
    want = keras_outputs(model, x)[0]
    fixed = kbm.compress.export_onnx(model, tmp_path / "fixed.onnx", batch_size=4)
    runtime = kbm.compress.open_runtime(fixed, threads=1)
    assert runtime.batch_size == 4 and runtime.input_names == ["input_1", "input_2"]
    by_name = dict(zip(runtime.input_names, x))
    for inputs in (x, tuple(x), by_name):
        np.testing.assert_allclose(runtime.predict(inputs), want, atol=1e-5)
    np.testing.assert_allclose(runtime.predict(x, batch_size=3), want, atol=1e-5)  # 3+3+1
    np.testing.assert_allclose(runtime(x), want, atol=1e-5)
    assert runtime.run(x)[0].shape == (7, 2)  # pieces of 4, the last one padded
    assert "batch 4" in repr(runtime)
    with pytest.raises(ValueError, match=r"must hold 2 arrays for the inputs"):
        runtime.predict(x[:1])
    with pytest.raises(ValueError, match="same number of examples"):
        runtime.predict([x[0], x[1][:3]])
    with pytest.raises(ValueError, match="`batch_size` must be a positive integer"):
        runtime.predict(x, batch_size=0)
    with pytest.raises(TypeError, match="must be numeric"):
        runtime.predict({"input_1": np.array([["a"]]), "input_2": x[1][:1]})
    with pytest.raises(ValueError, match=r"`path` must end in one of \['.onnx', '.tflite'\]"):
        kbm.compress.open_runtime(tmp_path / "m.keras")
    with pytest.raises(FileNotFoundError, match="No ONNX file"):
        kbm.compress.open_runtime(tmp_path / "missing.onnx")
    with pytest.raises(ValueError, match="`threads` must be a positive integer"):
        kbm.compress.open_runtime(fixed, threads=0)


def test_runtime_model_stands_in_for_the_keras_model(tmp_path):
    model = small_preset("multitask")
    x = sample_inputs(model, batch=6)
    directory = tmp_path / "exported"
    directory.mkdir()
    path = kbm.compress.export_onnx(model, directory / "model.onnx")
    kbm.compress.write_runtime_record(model, str(directory))
    assert kbm.compress.runtime_file(str(directory)) == str(path)
    stand_in = kbm.compress.load_runtime_model(path)
    assert sorted(stand_in.output) == ["task1", "task2"]
    assert stand_in.preset["name"] == "multitask" and stand_in.name == model.name
    assert tuple(stand_in.input.shape) == tuple(model.input.shape)
    got = stand_in.predict(x, batch_size=4, verbose=0)
    want = model.predict(x, verbose=0)
    for task in want:
        np.testing.assert_allclose(got[task], want[task], atol=1e-5)
    record = json.loads((directory / "runtime.json").read_text())
    record["outputs"][0]["name"] = "task9"
    (directory / "runtime.json").write_text(json.dumps(record))
    with pytest.raises(kbm.ModelFileError, match="names the inputs"):
        kbm.compress.load_runtime_model(path)


def test_int8_onnx_of_a_recurrent_model_quantizes_its_products_and_keeps_the_gates_float(
    tmp_path,
):
    """The cell's gates and state stay float (their int8 rounding would add up over the
    unrolled steps); every matrix product still runs in int8."""
    import onnx

    keras.utils.set_random_seed(0)
    steps = keras.Input((6, 4), name="steps")
    model = keras.Model(
        steps,
        keras.layers.Dense(3, activation="softmax")(keras.layers.LSTM(8)(steps)),
    )
    x = np.random.default_rng(0).normal(size=(32, 6, 4)).astype("float32")
    path = kbm.compress.export_onnx(
        model, tmp_path / "lstm.onnx", quantization="int8", calibration_data=x
    )
    graph = onnx.load(path).graph
    producers = {o: n for n in graph.node for o in n.output}
    readers: dict[str, set] = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, set()).add(node.op_type)
    gates = {"Sigmoid", "Tanh", "Mul", "Add"}
    assert gates <= {n.op_type for n in graph.node}
    products = {"Conv", "Gemm", "MatMul"}
    quantized_products = 0
    for q in (n for n in graph.node if n.op_type == "QuantizeLinear"):
        source = producers.get(q.input[0])
        dq = next(
            n for n in graph.node if n.op_type == "DequantizeLinear" and n.input[0] in q.output
        )
        users = readers.get(dq.output[0], set())
        quantized_products += bool(users & products)
        # a gate's output (the state, the hidden vector) is rounded to int8 only where a
        # matrix product reads it; with every operator quantized, each gate is
        if source is not None and source.op_type in gates:
            assert users <= products, (source.op_type, users)
    assert quantized_products, "no matrix product reads int8 tensors"
    assert kbm.compress.op_coverage(path)["int8_share"] == 1.0
    got = kbm.compress.open_runtime(path).predict(x, batch_size=16)
    _close([got], keras_outputs(model, x), 0.03, "lstm int8")
