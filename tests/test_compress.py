"""kbm.compress: int8 quantization, TFLite export, size reports and distillation."""

import os

import keras
import numpy as np
import pytest
from harness import assert_outputs_close, forward

import keras_bigmodel as kbm
import zoo
from keras_bigmodel import _compat
from keras_bigmodel.data import Digits, load_digits


@pytest.fixture(scope="module")
def digits():
    return load_digits()


def _accuracy(model, x, y):
    return float(np.mean(np.argmax(model.predict(x, verbose=0), axis=-1) == y))


def test_default_cnn_int8_file_is_under_030x_float32(tmp_path):
    model = zoo.build("cnn")
    quantized = kbm.compress.quantize(model)
    f32 = os.path.getsize(kbm.save_model(model, tmp_path / "f32.keras"))
    i8 = os.path.getsize(kbm.save_model(quantized, tmp_path / "i8.keras"))
    assert i8 <= 0.30 * f32, (i8, f32, i8 / f32)
    report = kbm.compress.size_report(tmp_path / "i8.keras")
    assert report["stored_bytes"] == i8
    assert report["dtypes"]["int8"] >= 3_686_400  # the 28,800 x 128 dense kernel


def test_quantize_copies_by_default_and_keeps_outputs_close():
    model = zoo.build("attention_rnn", **zoo.get_preset("attention_rnn").tiny)
    x = np.random.default_rng(0).uniform(size=(6, 8, 4)).astype("float32")
    before = forward(model, x)
    quantized = kbm.compress.quantize(model)
    assert quantized is not model
    assert all(layer.quantization_mode is None for layer in _compat.all_layers(model))
    np.testing.assert_array_equal(forward(model, x), before)
    assert {
        layer.name for layer in _compat.all_layers(quantized) if layer.quantization_mode == "int8"
    } >= {
        "W",
        "V",
        "predictions",
    }
    assert_outputs_close(forward(quantized, x), before, atol=0.02)
    assert quantized.compiled and quantized.loss == "categorical_crossentropy"
    assert len(quantized.optimizer.variables) <= 2  # no optimizer state copied along


def test_quantize_inplace_and_int4():
    model = zoo.build("multitask", trunk_units=(16,))
    same = kbm.compress.quantize(model, inplace=True)
    assert same is model and model.get_layer("trunk_0").quantization_mode == "int8"
    int4 = kbm.compress.quantize(zoo.build("multitask", trunk_units=(16,)), mode="int4")
    assert int4.get_layer("trunk_0").quantization_mode == "int4"


def test_quantize_errors():
    with pytest.raises(
        ValueError, match=r"`mode` must be one of \['int8', 'int4'\]. Received: mode='int3'"
    ):
        kbm.compress.quantize(zoo.build("fusion"), mode="int3")
    inputs = keras.Input((4, 4, 1))
    conv_only = keras.Model(inputs, keras.layers.Conv2D(2, 3)(inputs))
    with pytest.raises(ValueError, match="no layer Keras can quantize"):
        kbm.compress.quantize(conv_only)
    with pytest.raises(ValueError, match="already quantized"):
        kbm.compress.quantize(kbm.compress.quantize(zoo.build("fusion")))
    with pytest.raises(TypeError, match=r"`model` must be a keras\.Model"):
        kbm.compress.quantize("model")
    with pytest.raises(ValueError, match="must be built"):
        kbm.compress.quantize(keras.Sequential([keras.layers.Dense(2)]))


@pytest.fixture(scope="module")
def trained_cnn(digits):
    """The documents' CNN, half width, trained on the real digits (also the distillation
    teacher; 0.955-0.969 test accuracy on the three backends)."""
    keras.utils.set_random_seed(0)
    model = zoo.build("cnn", input_shape=(8, 8, 1), filters=16, dense_units=64)
    model.fit(digits.x_train, Digits.one_hot(digits.y_train), epochs=15, batch_size=32, verbose=0)
    return model


def test_int8_cnn_on_real_digits_keeps_accuracy_within_one_point(digits, trained_cnn):
    f32 = _accuracy(trained_cnn, digits.x_test, digits.y_test)
    i8 = _accuracy(kbm.compress.quantize(trained_cnn), digits.x_test, digits.y_test)
    assert f32 >= 0.95, f32
    assert abs(f32 - i8) <= 0.01, (f32, i8)


def test_size_report_counts_parameters_and_bytes(tmp_path):
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(3)(inputs))
    report = kbm.compress.size_report(model)
    assert report["parameters"] == 15 and report["float32_bytes"] == 60
    assert report["weight_bytes"] == 60 and report["dtypes"] == {"float32": 60}
    path = kbm.save_model(model, tmp_path / "m.keras")
    assert kbm.compress.size_report(path)["stored_bytes"] == os.path.getsize(path)
    quantized = kbm.compress.size_report(kbm.compress.quantize(model))
    assert quantized["dtypes"]["int8"] == 12  # the 4 x 3 kernel, one byte each
    with pytest.raises(FileNotFoundError):
        kbm.compress.size_report(tmp_path / "missing.keras")
    with pytest.raises(TypeError, match="`model_or_path` must be"):
        kbm.compress.size_report(42)


def test_probability_distillation_loss_equals_numpy_kl():
    rng = np.random.default_rng(0)
    teacher = rng.dirichlet(np.ones(5), size=4).astype("float32")
    student = rng.dirichlet(np.ones(5), size=4).astype("float32")
    t = 2.5
    loss = float(
        keras.ops.convert_to_numpy(
            kbm.compress.ProbabilityDistillation(t).compute_loss(teacher, student)
        )
    )

    def tempered(p):
        z = np.log(p) / t
        e = np.exp(z - z.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)

    pt, ps = tempered(teacher.astype("float64")), tempered(student.astype("float64"))
    expected = t**2 * np.mean(np.sum(pt * np.log(pt / ps), axis=-1))
    np.testing.assert_allclose(loss, expected, rtol=1e-4)
    with pytest.raises(ValueError, match="`temperature` must be a positive number"):
        kbm.compress.ProbabilityDistillation(0)


def test_distill_a_small_cnn_from_a_large_one(digits, trained_cnn):
    keras.utils.set_random_seed(1)
    y = Digits.one_hot(digits.y_train)
    teacher = trained_cnn
    student = zoo.build("cnn", input_shape=(8, 8, 1), filters=8, dense_units=32, name="student")
    untrained = _accuracy(student, digits.x_test, digits.y_test)
    trained = kbm.compress.distill(teacher, student, digits.x_train, y, epochs=15, verbose=0)
    assert trained is student
    accuracy = _accuracy(student, digits.x_test, digits.y_test)
    assert accuracy >= 0.9 and accuracy > untrained + 0.5, (untrained, accuracy)
    assert student.count_params() < teacher.count_params() / 3
