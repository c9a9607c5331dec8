"""The zoo: registry, the documents' architectures layer for layer, preset directories."""

import json
import os

import keras
import numpy as np
import pytest

import keras_bigmodel as kbm
import zoo
from harness import forward
from keras_bigmodel.layers import AttentionLayer, Fusion, FusionConcat, MultiTaskHead

PRESETS = ["attention_rnn", "cnn", "crossmodal", "fusion", "multitask", "rnn"]


def test_list_presets_is_sorted_and_complete():
    assert zoo.list_presets() == PRESETS


@pytest.mark.parametrize("name", PRESETS)
def test_describe_and_build_defaults(name):
    info = zoo.describe(name)
    assert {"description", "builder", "config"} <= set(info)
    assert info["description"] and callable(info["builder"])
    assert info["builder_path"] == f"zoo.{info['builder'].__module__.split('.')[-1]}.{name}"
    model = zoo.build(name)
    assert isinstance(model, keras.Model) and not isinstance(model, keras.Sequential)
    assert model.compiled
    assert model.optimizer.__class__.__name__ == "Adam"


def _summary(model):
    lines = []
    model.summary(print_fn=lambda line, **kwargs: lines.append(line))
    return "\n".join(lines)


def test_cnn_is_the_documents_cnn_layer_for_layer():
    model = zoo.build("cnn")
    reference = keras.Sequential([
        keras.Input((64, 64, 3)),
        keras.layers.Conv2D(32, (3, 3), activation="relu"),
        keras.layers.MaxPooling2D(pool_size=(2, 2)),
        keras.layers.Flatten(),
        keras.layers.Dense(128, activation="relu"),
        keras.layers.Dense(10, activation="softmax"),
    ])
    assert model.count_params() == reference.count_params() == 3_938_570
    ours = [l for l in model.layers if not isinstance(l, keras.layers.InputLayer)]
    assert [type(l) for l in ours] == [type(l) for l in reference.layers]
    assert [w.shape for w in model.weights] == [w.shape for w in reference.weights]
    assert model.loss == "categorical_crossentropy"
    assert "3,938,570" in _summary(model)


def test_rnn_is_the_documents_rnn():
    model = zoo.build("rnn", input_shape=(20, 6))
    reference = keras.Sequential([keras.Input((20, 6)), keras.layers.LSTM(50),
                                  keras.layers.Dense(10, activation="softmax")])
    assert model.count_params() == reference.count_params()
    assert [w.shape for w in model.weights] == [w.shape for w in reference.weights]


def test_multitask_is_the_documents_model_with_named_outputs():
    model = zoo.build("multitask")
    assert model.count_params() == 10_255
    assert isinstance(model.get_layer("heads"), MultiTaskHead)
    out = model.predict(np.zeros((2, 64), "float32"), verbose=0)
    assert sorted(out) == ["task1", "task2"]
    assert out["task1"].shape == (2, 10) and out["task2"].shape == (2, 5)
    assert "10,255" in _summary(model)


def test_fusion_is_the_documents_fusion():
    model = zoo.build("fusion")
    assert model.count_params() == 22
    assert isinstance(model.get_layer("fusion"), FusionConcat)
    assert tuple(model.output.shape) == (None, 2)


def test_attention_rnn_and_crossmodal_use_the_layers():
    assert isinstance(zoo.build("attention_rnn").get_layer("attention"), AttentionLayer)
    model = zoo.build("crossmodal")
    assert isinstance(model.get_layer("fusion"), Fusion)
    assert isinstance(model.get_layer("sequence_attention"), AttentionLayer)
    assert sorted(t.name for t in model.inputs) == ["image", "sequence"]


@pytest.mark.parametrize("name", PRESETS)
def test_every_preset_trains_on_synthetic_data(name):
    keras.utils.set_random_seed(0)
    # Adam's default step (1e-3) overshoots on the CNN's 30,752-wide Dense layer within
    # a few full-batch steps on some backends' initial weights; 1e-4 descends on all.
    model = zoo.build(name, optimizer=keras.optimizers.Adam(1e-4))
    rng = np.random.default_rng(0)
    # image-like data in [0, 1]; the class is decided by whether the mean is above 1/2
    x = keras.tree.map_structure(
        lambda t: rng.uniform(size=(32,) + tuple(t.shape[1:])).astype("float32"), model.input)
    signal = np.mean([np.reshape(a, (32, -1)).mean(1) for a in keras.tree.flatten(x)], axis=0)
    y = keras.tree.map_structure(
        lambda t: keras.utils.to_categorical((signal > 0.5).astype(int), t.shape[-1]),
        model.output)
    history = model.fit(x, y, epochs=8, batch_size=32, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0], history.history["loss"]


def test_overrides_change_the_architecture():
    model = zoo.build("cnn", input_shape=(8, 8, 1), num_classes=3, filters=4, dense_units=16)
    assert tuple(model.input.shape) == (None, 8, 8, 1)
    assert tuple(model.output.shape) == (None, 3)
    mt = zoo.build("multitask", num_classes={"task2": 2}, trunk_units=[32, 16])
    assert tuple(mt.output["task2"].shape) == (None, 2)
    fused = zoo.build("fusion", mode="gated", num_branches=3, branch_units=4)
    assert tuple(fused.output.shape) == (None, 4) and len(fused.inputs) == 3
    uncompiled = zoo.build("rnn", compile=False)
    assert not uncompiled.compiled
    sgd = zoo.build("rnn", optimizer="sgd", loss="mse", metrics=["mae"])
    assert sgd.optimizer.__class__.__name__ == "SGD"


@pytest.mark.parametrize("name, overrides, match", [
    ("cnn", {"num_classes": 0}, r"`num_classes`.*Received: num_classes=0"),
    ("cnn", {"input_shape": (64, 64)}, r"`input_shape` must be a shape .* rank 3"),
    ("cnn", {"input_shape": (2, 2, 3)}, r"too small"),
    ("cnn", {"augmentation": "yes"}, r"`augmentation` must be None, True or a dict"),
    ("cnn", {"dtype": "float13"}, r"`dtype` must be None or a dtype policy"),
    ("rnn", {"cell": "transformer"}, r"`cell` must be one of"),
    ("attention_rnn", {"score": "cosine"}, r"`score` must be one of"),
    ("attention_rnn", {"vocab_size": 10, "mask_value": 0.0}, r"`mask_value` applies"),
    ("multitask", {"num_classes": {"task9": 3}}, r"`num_classes` must be a dict"),
    ("multitask", {"tasks": {}}, r"`tasks` must be a non-empty dict"),
    ("fusion", {"num_branches": 1}, r"`num_branches` must be at least 2"),
    ("fusion", {"mode": "product"}, r"`mode` must be one of"),
    ("crossmodal", {"image_shape": (4, 4, 3)}, r"at least 6x6"),
    ("cnn", {"num_clases": 3}, r"Unknown override\(s\) \['num_clases'\].*Did you mean 'num_classes'"),
    ("cnn", {"compile": "yes"}, r"`compile` must be a bool"),
])
def test_bad_overrides_are_clear_errors(name, overrides, match):
    with pytest.raises(ValueError, match=match):
        zoo.build(name, **overrides)


def test_unknown_preset_lists_close_matches():
    with pytest.raises(zoo.UnknownPresetError, match=r"Unknown preset 'atention_rnn'. Did you mean 'attention_rnn'"):
        zoo.build("atention_rnn")
    with pytest.raises(KeyError):
        zoo.describe("nothing-like-it")
    with pytest.raises(TypeError, match="`name` must be a str"):
        zoo.build(3)


def test_register_your_own_preset():
    def tiny_mlp(input_shape=(16,), num_classes=3, units=32):
        inputs = keras.Input(shape=input_shape)
        x = keras.layers.Dense(units, activation="relu")(inputs)
        return keras.Model(inputs, keras.layers.Dense(num_classes, activation="softmax")(x))

    zoo.register_preset("tiny_mlp_test", tiny_mlp, description="A small MLP", units=8)
    try:
        assert "tiny_mlp_test" in zoo.list_presets()
        assert zoo.describe("tiny_mlp_test")["config"] == {
            "input_shape": (16,), "num_classes": 3, "units": 8}
        model = zoo.build("tiny_mlp_test", num_classes=5)
        assert model.count_params() == 16 * 8 + 8 + 8 * 5 + 5
        with pytest.raises(ValueError, match="already registered"):
            zoo.register_preset("tiny_mlp_test", tiny_mlp)
        with pytest.raises(ValueError, match=r"not arguments of .*allowed"):
            zoo.register_preset("tiny2", tiny_mlp, overwrite=True, depth=3)
        with pytest.raises(ValueError, match="must give every argument a default"):
            zoo.register_preset("tiny3", lambda units: None)
        with pytest.raises(TypeError, match="functional keras.Model"):
            zoo.register_preset("seq_test", lambda: keras.Sequential([keras.layers.Dense(1)]))
            zoo.build("seq_test")
    finally:
        for name in ("tiny_mlp_test", "seq_test"):
            zoo.registry._PRESETS.pop(name, None)


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
    with pytest.raises(kbm.ModelFileError, match="no preset.json"):
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
    with pytest.raises(TypeError, match="`model` must be a keras.Model"):
        zoo.save_preset("model", tmp_path / "x")
    with pytest.raises(ValueError, match="JSON-serializable"):
        zoo.save_preset(custom, tmp_path / "y", config={"f": object()})


def test_failed_save_preset_leaves_the_previous_preset_and_no_strays(tmp_path, monkeypatch):
    directory = tmp_path / "preset"
    zoo.save_preset(zoo.build("fusion"), directory)
    before = {p.name: p.read_bytes() for p in directory.iterdir()}

    def fail(model, filepath, **kwargs):
        open(filepath, "wb").write(b"partial")
        raise OSError("No space left on device")

    monkeypatch.setattr(keras.saving, "save_model", fail)
    with pytest.raises(OSError, match="No space left"):
        zoo.save_preset(zoo.build("fusion", mode="sum"), directory)
    assert {p.name: p.read_bytes() for p in directory.iterdir()} == before
    monkeypatch.undo()
    assert zoo.load_preset(directory).get_layer("fusion").__class__.__name__ == "FusionConcat"
