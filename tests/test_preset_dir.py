"""Preset directories: a trained model with the preset record and metadata beside it."""

import json
import os

import keras
import numpy as np
import pytest
from harness import forward

import keras_bigmodel
import keras_bigmodel as kbm
import zoo


def test_preset_directory_roundtrip_after_training(tmp_path):
    model = zoo.build("attention_rnn", input_shape=(None, 8), mask_value=0.0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 8, 8)).astype("float32")
    y = keras.utils.to_categorical(rng.integers(0, 10, 16), 10)
    model.fit(x, y, epochs=2, verbose=0)
    zoo.save_preset(model, tmp_path / "trained")
    assert sorted(os.listdir(tmp_path / "trained")) == ["model.keras", "preset.json"]
    meta = json.loads((tmp_path / "trained" / "preset.json").read_text())
    assert meta["name"] == "attention_rnn"
    assert meta["config"]["mask_value"] == 0.0 and meta["config"]["input_shape"] == [None, 8]
    assert meta["parameters"] == model.count_params()
    assert {"keras", "keras_bigmodel", "backend"} <= set(meta["created_with"])
    restored = zoo.load_preset(tmp_path / "trained")
    np.testing.assert_allclose(forward(restored, x), forward(model, x), atol=1e-6)
    assert restored.optimizer.iterations.numpy() == model.optimizer.iterations.numpy()


def test_load_preset_by_name_gives_fresh_weights():
    model = zoo.load_preset("fusion", compile=False)
    assert model.count_params() == 22 and not model.compiled
    with pytest.raises(zoo.UnknownPresetError, match="Did you mean 'fusion'"):
        zoo.load_preset("fusoin")


def test_load_preset_detects_mismatched_files(tmp_path):
    zoo.save_preset(zoo.build("fusion"), tmp_path / "a")
    zoo.save_preset(zoo.build("fusion", mode="sum"), tmp_path / "b")
    os.replace(tmp_path / "b" / "model.keras", tmp_path / "a" / "model.keras")
    with pytest.raises(kbm.ModelFileError, match="SHA-256"):
        zoo.load_preset(tmp_path / "a")
    (tmp_path / "c").mkdir()
    with pytest.raises(kbm.ModelFileError, match=r"no preset\.json"):
        zoo.load_preset(tmp_path / "c")
    (tmp_path / "c" / "preset.json").write_text("{not json")
    with pytest.raises(kbm.ModelFileError, match="not valid JSON"):
        zoo.load_preset(tmp_path / "c")
    (tmp_path / "c" / "preset.json").write_text('{"name": 3}')
    with pytest.raises(kbm.ModelFileError, match="must hold a JSON object"):
        zoo.load_preset(tmp_path / "c")
    with pytest.raises(ValueError, match="only apply when building"):
        zoo.load_preset(tmp_path / "a", num_classes=3)
    with pytest.raises(kbm.ModelFileError, match="not a preset directory"):
        zoo.load_preset(tmp_path / "missing" / "dir")


def test_save_preset_records_custom_models_and_refuses_bad_arguments(tmp_path):
    inputs = keras.Input((3,))
    custom = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    zoo.save_preset(custom, tmp_path / "custom", config={"note": "hand-made"})
    assert zoo.read_preset_metadata(str(tmp_path / "custom"))["name"] == "custom"
    with pytest.raises(FileExistsError):
        zoo.save_preset(custom, tmp_path / "custom", overwrite=False)
    with pytest.raises(TypeError, match=r"`model` must be a keras\.Model"):
        zoo.save_preset("model", tmp_path / "x")
    with pytest.raises(ValueError, match="JSON-serializable"):
        zoo.save_preset(custom, tmp_path / "y", config={"f": object()})


def test_failed_save_preset_leaves_the_previous_preset_and_no_strays(tmp_path, monkeypatch):
    directory = tmp_path / "preset"
    zoo.save_preset(zoo.build("fusion"), directory)
    before = {p.name: p.read_bytes() for p in directory.iterdir()}

    def fail(model, fileobj):
        fileobj.write(b"partial")
        raise OSError("No space left on device")

    monkeypatch.setattr(keras_bigmodel._compat, "save_model_to_file", fail)
    with pytest.raises(OSError, match="No space left"):
        zoo.save_preset(zoo.build("fusion", mode="sum"), directory)
    assert {p.name: p.read_bytes() for p in directory.iterdir()} == before
    monkeypatch.undo()
    assert zoo.load_preset(directory).get_layer("fusion").__class__.__name__ == "FusionConcat"
