"""`keras-bigmodel quantize`: a trained preset directory in, Keras int8 / ONNX int8 out,
with the before/after report measured in the same run and the data description kept,
so that `evaluate` reads the output as it reads the input."""

import json
import os

import keras
import numpy as np
import pytest

import keras_bigmodel_cli as cli
import zoo
from keras_bigmodel.cli._common import write_data_record
from keras_bigmodel.data import Digits, load_digits


def _run(capsys, *args):
    code = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A small CNN trained a little on the digits, saved as `train` saves it."""
    keras.utils.set_random_seed(0)
    digits = load_digits()
    model = zoo.build("cnn", input_shape=(8, 8, 1), filters=4, dense_units=16)
    model.compile(optimizer="adam", loss="categorical_crossentropy", jit_compile=False)
    model.fit(digits.x_train, Digits.one_hot(digits.y_train), epochs=1, verbose=0)
    directory = str(tmp_path_factory.mktemp("trained") / "cnn")
    zoo.save_preset(model, directory)
    names = [str(i) for i in range(10)]
    write_data_record(directory, {"class_names": {"label": names}, "label_columns": ["label"]})
    accuracy = float(
        np.mean(np.argmax(model.predict(digits.x_test, verbose=0), -1) == digits.y_test)
    )
    return directory, accuracy


def _table(out):
    """The report's rows: {name: (before, after)}."""
    rows = {}
    for line in out.splitlines():
        parts = line.split()
        if line.startswith("  ") and len(parts) >= 3:
            rows[" ".join(parts[:-2])] = (parts[-2], parts[-1])
    return rows


@pytest.mark.tensorflow_only
def test_quantize_a_preset_directory_to_onnx_and_evaluate_the_keras_int8(trained, capsys, tmp_path):
    directory, accuracy = trained
    out_dir = tmp_path / "int8-onnx"
    code, out, err = _run(
        capsys, "quantize", directory, "--data", "digits", "--format", "onnx", "--out", out_dir
    )
    assert code == 0, err
    assert sorted(os.listdir(out_dir)) == ["data.json", "model.onnx", "runtime.json"]
    assert json.loads((out_dir / "data.json").read_text())["label_columns"] == ["label"]
    rows = _table(out)
    before, after = rows["accuracy"]
    assert float(before) == pytest.approx(accuracy, abs=1e-4)  # measured, not copied
    assert abs(float(after) - accuracy) <= 0.03
    assert int(rows["file bytes"][0].replace(",", "")) == os.path.getsize(
        os.path.join(directory, "model.keras")
    )
    assert int(rows["file bytes"][1].replace(",", "")) == os.path.getsize(out_dir / "model.onnx")
    assert {"ms at batch 1", "ms at batch 64", "gzip'd bytes"} <= set(rows)
    assert "int8 share of multiply-adds: 100%" in out
    # evaluate and predict read the ONNX output as they read the preset directory
    code, out, err = _run(
        capsys, "evaluate", out_dir, "--data", "digits", "--out", tmp_path / "onnx.png"
    )
    assert code == 0, err
    measured = float(out.split("accuracy: ")[1].split()[0].rstrip(","))
    assert measured == pytest.approx(float(after), abs=2e-3)
    code, out, err = _run(
        capsys, "predict", out_dir, "--data", "digits", "--out", tmp_path / "p.csv"
    )
    assert code == 0, err
    assert len((tmp_path / "p.csv").read_text().splitlines()) == 451  # header + 450 digits

    keras_dir = tmp_path / "int8-keras"
    code, out, err = _run(capsys, "quantize", directory, "--format", "keras", "--out", keras_dir)
    assert code == 0, err
    assert sorted(os.listdir(keras_dir)) == ["data.json", "model.keras", "preset.json"]
    code, out, err = _run(
        capsys, "evaluate", keras_dir, "--data", "digits", "--out", tmp_path / "c.png"
    )
    assert code == 0, err
    assert "accuracy: " in out


@pytest.mark.tensorflow_only
def test_quantize_errors(trained, capsys, tmp_path):
    directory, _ = trained
    code, _, err = _run(capsys, "quantize", directory, "--format", "onnx", "--out", tmp_path / "o")
    assert code == 1 and "--format onnx calibrates int8 activations" in err
    code, _, err = _run(
        capsys, "quantize", directory, "--format", "litert", "--out", tmp_path / "m.keras"
    )
    assert code == 1 and "--out must be a directory for --format litert" in err
    code, _, err = _run(capsys, "quantize", tmp_path / "missing", "--out", tmp_path / "o")
    assert code == 1 and "No such file or directory" in err
    assert not os.path.exists(tmp_path / "o")
