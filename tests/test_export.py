"""Runtimes outside Keras: ONNX (onnxruntime) on every backend, LiteRT (the
`ai_edge_litert` interpreter) from TensorFlow, each against Keras's own outputs, with
plain-Keras controls where Keras's exporters fall short."""

import os

import keras
import numpy as np
import pytest
from export_helpers import keras_outputs, sample_inputs, small_preset

import keras_bigmodel as kbm
import zoo
from keras_bigmodel.validation import UnsupportedBackendError

BACKEND = keras.backend.backend()


# On JAX (jax2onnx, the slowest converter) the presets that hold every kind of layer
# between them: pooling (cnn), LSTM and attention (attention_rnn), image and sequence
# branches with Fusion and task heads (crossmodal), layered experts (ple), the table
# encoding (tabular). Every preset on TensorFlow and PyTorch.
JAX_ONNX_PRESETS = ("attention_rnn", "cnn", "crossmodal", "ple", "tabular")


@pytest.mark.slow
def test_onnx_matches_keras_for_every_preset(tmp_path):
    names = JAX_ONNX_PRESETS if BACKEND == "jax" else zoo.list_presets()
    for name in names:
        model = small_preset(name)
        x = sample_inputs(model, batch=3)  # the batch dimension stays dynamic
        path = kbm.compress.export_onnx(model, tmp_path / f"{name}.onnx")
        outputs = kbm.compress.run_onnx(path, x)
        expected = keras_outputs(model, x)
        assert len(outputs) == len(expected), name
        for got, want in zip(outputs, expected):
            np.testing.assert_allclose(got, want, atol=1e-5, err_msg=name)
    assert sorted(os.listdir(tmp_path)) == [f"{n}.onnx" for n in names]


def test_onnx_names_inputs_and_outputs_after_the_model(tmp_path):
    import onnxruntime

    model = small_preset("multitask")
    path = kbm.compress.export_onnx(model, tmp_path / "m.onnx", batch_size=2)
    session = onnxruntime.InferenceSession(path)
    assert [i.name for i in session.get_inputs()] == ["features"]
    assert [i.shape[0] for i in session.get_inputs()] == [2]
    assert [o.name for o in session.get_outputs()] == ["task1", "task2"]
    fusion = small_preset("fusion")
    x = sample_inputs(fusion, batch=2)
    path = kbm.compress.export_onnx(fusion, tmp_path / "f.onnx")
    by_name = kbm.compress.run_onnx(path, dict(zip(["input_1", "input_2"], x)))
    np.testing.assert_allclose(by_name[0], keras_outputs(fusion, x)[0], atol=1e-6)
    with pytest.raises(ValueError, match=r"pass a dict keyed by \['input_1', 'input_2'\]"):
        kbm.compress.run_onnx(path, x[0])
    with pytest.raises(ValueError, match=r"Unknown input name\(s\) \['image'\]"):
        kbm.compress.run_onnx(path, {"image": x[0], "input_1": x[0], "input_2": x[1]})


def test_plain_keras_max_pooling_onnx_control(tmp_path):
    """Keras's own ONNX export of a plain MaxPooling2D model: onnxruntime refuses the
    JAX one ("Unsupported pooling size", jax2onnx writes a 4D MaxPool); export_onnx
    repairs it. On TensorFlow and PyTorch both work."""
    import onnxruntime

    inputs = keras.Input((8, 8, 2), name="image")
    model = keras.Model(inputs, keras.layers.MaxPooling2D(2)(inputs))
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 2)).astype("float32")
    model(x)  # Keras's JAX exporter refuses a model never called
    raw = str(tmp_path / "raw.onnx")
    model.export(raw, format="onnx", verbose=False)
    session = onnxruntime.InferenceSession(raw)
    feed = {session.get_inputs()[0].name: x}
    if BACKEND == "jax":
        with pytest.raises(Exception, match="Unsupported pooling size"):
            session.run(None, feed)
    else:
        np.testing.assert_allclose(session.run(None, feed)[0], model(x), atol=1e-6)
    fixed = kbm.compress.export_onnx(model, tmp_path / "fixed.onnx")
    np.testing.assert_allclose(kbm.compress.run_onnx(fixed, x)[0], model(x), atol=1e-6)


def test_export_onnx_errors(tmp_path):
    model = small_preset("fusion")
    with pytest.raises(ValueError, match=r"`path` must end in '.onnx'"):
        kbm.compress.export_onnx(model, tmp_path / "m.bin")
    with pytest.raises(ValueError, match="`batch_size` must be a positive integer or None"):
        kbm.compress.export_onnx(model, tmp_path / "m.onnx", batch_size=0)
    with pytest.raises(ValueError, match="needs a float32 model"):
        kbm.compress.export_onnx(zoo.build("fusion", dtype="mixed_float16"), tmp_path / "m.onnx")
    with pytest.raises(TypeError, match=r"`model` must be a keras\.Model"):
        kbm.compress.export_onnx("model", tmp_path / "m.onnx")
    with pytest.raises(FileNotFoundError, match="No ONNX file"):
        kbm.compress.run_onnx(tmp_path / "missing.onnx", np.zeros((1, 10)))
    assert os.listdir(tmp_path) == []


# Dict outputs, and two named inputs through conv + LSTM + attention + fusion (a plain
# LSTM is in the control below, the CNN in the quantization test).
LITERT_PRESETS = ("multitask", "crossmodal")


@pytest.mark.tensorflow_only
def test_litert_interpreter_matches_keras(tmp_path):
    for name in LITERT_PRESETS:
        model = small_preset(name)
        x = sample_inputs(model, batch=1)
        path = kbm.compress.export_tflite(model, tmp_path / f"{name}.tflite", quantization=None)
        feed = (
            dict(
                zip(sorted(t.name for t in keras.tree.flatten(model.input)), keras.tree.flatten(x))
            )
            if len(model.inputs) > 1
            else x
        )
        for got, want in zip(kbm.compress.run_tflite(path, feed), keras_outputs(model, x)):
            np.testing.assert_allclose(got, want, atol=1e-5, err_msg=name)


@pytest.mark.tensorflow_only
def test_litert_quantization_shrinks_the_file_and_keeps_outputs_close(tmp_path):
    model = zoo.build("cnn", input_shape=(16, 16, 3))
    x = sample_inputs(model, batch=1)
    want = keras_outputs(model, x)[0]
    sizes = {}
    for quantization, atol in ((None, 1e-5), ("float16", 2e-3), ("dynamic", 2e-2)):
        path = kbm.compress.export_tflite(model, tmp_path / f"{quantization}.tflite", quantization)
        sizes[quantization] = os.path.getsize(path)
        np.testing.assert_allclose(kbm.compress.run_tflite(path, x)[0], want, atol=atol)
    assert sizes["dynamic"] < 0.3 * sizes[None] and sizes["float16"] < 0.55 * sizes[None]


@pytest.mark.tensorflow_only
def test_plain_keras_litert_export_of_an_lstm_needs_flex_ops(tmp_path):
    """Keras's own `export(format="litert")` with its default signature (unknown batch)
    turns an LSTM into TensorFlow Flex ops, which the LiteRT interpreter cannot run;
    export_tflite fixes the batch size and allows LiteRT's built-in ops only."""
    inputs = keras.Input((4, 3), name="sequence")
    model = keras.Model(inputs, keras.layers.LSTM(5)(inputs))
    raw = str(tmp_path / "raw.tflite")
    model.export(raw, format="litert", verbose=False)
    x = np.random.default_rng(0).uniform(size=(1, 4, 3)).astype("float32")
    with pytest.raises(RuntimeError, match=r"FlexTensorListReserve\) failed to prepare"):
        kbm.compress.run_tflite(raw, x)
    fixed = kbm.compress.export_tflite(model, tmp_path / "fixed.tflite", quantization=None)
    np.testing.assert_allclose(kbm.compress.run_tflite(fixed, x)[0], model(x), atol=1e-5)


@pytest.mark.tensorflow_only
def test_export_tflite_errors(tmp_path):
    model = small_preset("rnn")
    with pytest.raises(ValueError, match="`quantization` must be one of"):
        kbm.compress.export_tflite(model, tmp_path / "m.tflite", quantization="int2")
    with pytest.raises(ValueError, match=r"`path` must end in '.tflite'"):
        kbm.compress.export_tflite(model, tmp_path / "m.bin")
    with pytest.raises(ValueError, match="`batch_size` must be a positive integer"):
        kbm.compress.export_tflite(model, tmp_path / "m.tflite", batch_size=0)
    with pytest.raises(ValueError, match="LiteRT needs static shapes"):
        kbm.compress.export_tflite(zoo.build("rnn", input_shape=(None, 8)), tmp_path / "m.tflite")
    assert os.listdir(tmp_path) == []


@pytest.mark.not_tensorflow
def test_litert_conversion_says_it_needs_tensorflow(tmp_path):
    with pytest.raises(UnsupportedBackendError, match="needs the TensorFlow backend"):
        kbm.compress.export_tflite(small_preset("rnn"), tmp_path / "m.tflite")


@pytest.mark.tensorflow_only
def test_keras_normalization_exports_its_constants_as_onnx_inputs(tmp_path):
    """The plain-Keras control behind TabularEncoding's own standardization: a Keras
    `Normalization` layer exported through tf2onnx gets its mean and variance as extra
    graph inputs. TabularEncoding keeps them in the layer's variables and exports with
    one input (the tabular preset in the test above). When this starts failing, the
    workaround can go."""
    import onnxruntime

    inputs = keras.Input((3,), name="features")
    normalized = keras.layers.Normalization(mean=[1.0, 2.0, 3.0], variance=[1.0, 4.0, 9.0])
    model = keras.Model(inputs, keras.layers.Dense(2)(normalized(inputs)))
    model(np.zeros((1, 3), "float32"))
    path = kbm.compress.export_onnx(model, tmp_path / "norm.onnx")
    assert len(onnxruntime.InferenceSession(path).get_inputs()) == 3
    tabular = zoo.build("tabular", **zoo.get_preset("tabular").tiny)
    path = kbm.compress.export_onnx(tabular, tmp_path / "tabular.onnx")
    assert [i.name for i in onnxruntime.InferenceSession(path).get_inputs()] == ["features"]
