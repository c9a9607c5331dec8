"""The preset registry: registration, overrides, compile options, integer labels, and
provenance that travels in the model and its file."""

import json
import zipfile

import keras
import numpy as np
import pytest
from harness import forward

import keras_bigmodel as kbm
import zoo
from keras_bigmodel.models import PresetModel, provenance


def test_list_presets_is_sorted_and_names_every_preset_file():
    names = zoo.list_presets()
    assert names == sorted(names)
    from zoo.presets import PRESET_MODULES

    assert set(PRESET_MODULES) <= set(names)


@pytest.mark.parametrize("name", zoo.list_presets())
def test_describe(name):
    info = zoo.describe(name)
    assert {"description", "builder", "config", "compile"} <= set(info)
    assert info["description"] and callable(info["builder"])
    assert info["builder_path"] == f"zoo.presets.{name}.{info['builder'].__name__}"


def test_build_returns_a_compiled_functional_preset_model():
    model = zoo.build("cnn", **zoo.get_preset("cnn").tiny)
    assert isinstance(model, PresetModel) and isinstance(model, keras.Model)
    assert not isinstance(model, keras.Sequential)
    assert model.compiled and model.optimizer.__class__.__name__ == "Adam"
    assert model.loss == "categorical_crossentropy"


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


@pytest.mark.parametrize(
    "name, overrides, match",
    [
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
        (
            "cnn",
            {"num_clases": 3},
            r"Unknown override\(s\) \['num_clases'\].*Did you mean 'num_classes'",
        ),
        ("cnn", {"compile": "yes"}, r"`compile` must be a bool"),
    ],
)
def test_bad_overrides_are_clear_errors(name, overrides, match):
    with pytest.raises(ValueError, match=match):
        zoo.build(name, **overrides)


def test_unknown_preset_lists_close_matches():
    with pytest.raises(
        zoo.UnknownPresetError, match=r"Unknown preset 'atention_rnn'. Did you mean 'attention_rnn'"
    ):
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
            "input_shape": (16,),
            "num_classes": 3,
            "units": 8,
        }
        model = zoo.build("tiny_mlp_test", num_classes=5)
        assert model.count_params() == 16 * 8 + 8 + 8 * 5 + 5
        with pytest.raises(ValueError, match="already registered"):
            zoo.register_preset("tiny_mlp_test", tiny_mlp)
        with pytest.raises(ValueError, match=r"not arguments of .*allowed"):
            zoo.register_preset("tiny2", tiny_mlp, overwrite=True, depth=3)
        with pytest.raises(ValueError, match="must give every argument a default"):
            zoo.register_preset("tiny3", lambda units: None)
        with pytest.raises(ValueError, match=r"`tiny` keys \['depth'\] are not arguments"):
            zoo.register_preset("tiny4", tiny_mlp, tiny={"depth": 2})
        with pytest.raises(TypeError, match=r"`data` must be a zoo.views.DataView"):
            zoo.register_preset("tiny5", tiny_mlp, data={"inputs": []})
        with pytest.raises(TypeError, match=r"functional keras\.Model"):
            zoo.register_preset("seq_test", lambda: keras.Sequential([keras.layers.Dense(1)]))
            zoo.build("seq_test")
    finally:
        for name in ("tiny_mlp_test", "seq_test"):
            zoo.registry._PRESETS.pop(name, None)


# ------------------------------------------------------------------ integer labels
def test_sparse_labels_train_on_integer_classes():
    tiny = zoo.get_preset("cnn").tiny
    model = zoo.build("cnn", labels="sparse", **tiny)
    assert model.loss == "sparse_categorical_crossentropy"
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(16, 8, 8, 1)).astype("float32")
    y = rng.integers(0, 3, size=16)
    logs = model.evaluate(x, y, verbose=0, return_dict=True)
    expected = -np.mean(np.log(forward(model, x)[np.arange(16), y]))
    np.testing.assert_allclose(logs["loss"], expected, rtol=1e-4)
    assert 0.0 <= logs["accuracy"] <= 1.0
    assert provenance(model)["labels"] == "sparse"
    multitask = zoo.build("multitask", labels="sparse", **zoo.get_preset("multitask").tiny)
    assert multitask.loss == {
        "task1": "sparse_categorical_crossentropy",
        "task2": "sparse_categorical_crossentropy",
    }
    with pytest.raises(ValueError, match=r"`labels` must be one of \['categorical', 'sparse'\]"):
        zoo.build("cnn", labels="integers")


# -------------------------------------------------------------- outputs by task name
def test_multitask_outputs_are_named_by_task():
    model = zoo.build("multitask")
    assert model.output_names == ["task1", "task2"]
    lines = []
    model.summary(print_fn=lambda line, **kwargs: lines.append(line))
    text = "\n".join(lines)
    assert "task1" in text and "task2" in text and "(None, 10)" in text


def test_label_dict_must_match_the_tasks():
    model = zoo.build("multitask", **zoo.get_preset("multitask").tiny)
    x = np.zeros((4, 12), "float32")
    bad = {"task1": np.eye(3)[[0, 1, 2, 0]], "task_3": np.eye(2)[[0, 1, 0, 1]]}
    for call in (model.fit, model.evaluate):
        with pytest.raises(
            ValueError,
            match=r"label dict's keys \['task1', 'task_3'\] do not "
            r"match the model's outputs \['task1', 'task2'\]",
        ):
            call(x, bad, verbose=0)
    with pytest.raises(ValueError, match=r"missing: \['task2'\]"):
        model.train_on_batch(x, {"task1": bad["task1"]})


def test_plain_keras_names_outputs_by_layer():
    """Control: in a plain keras.Model, Keras names outputs after the layer that made
    them, so a MultiTaskHead gives one name twice; PresetModel reports the tasks."""
    inputs = keras.Input((4,))
    outputs = kbm.layers.MultiTaskHead({"a": 2, "b": 3}, name="heads")(inputs)
    assert keras.Model(inputs, outputs).output_names == ["heads", "heads"]
    assert PresetModel(inputs, outputs).output_names == ["a", "b"]


# --------------------------------------------------------------------- provenance
def test_provenance_travels_in_the_file_through_copy_quantize_and_reload(tmp_path):
    tiny = zoo.get_preset("attention_rnn").tiny
    model = zoo.build("attention_rnn", **tiny)
    record = provenance(model)
    assert record["name"] == "attention_rnn"
    assert record["config"]["units"] == tiny["units"]
    assert record["config"]["input_shape"] == [None, 4]
    assert record["keras_bigmodel"] == kbm.__version__
    path = kbm.save_model(model, tmp_path / "m.keras")
    with zipfile.ZipFile(path) as archive:
        config = json.loads(archive.read("config.json"))
    assert config["config"]["preset"] == record  # in the file itself, not in a process table
    assert provenance(keras.saving.load_model(path)) == record
    copy, _ = kbm.saving.copy_model(model)
    assert provenance(copy) == record
    int8 = kbm.compress.quantize(model)
    assert provenance(int8) == {**record, "quantization": ["int8"]}
    reloaded = kbm.load_model(kbm.save_model(int8, tmp_path / "int8.keras"))
    assert provenance(reloaded)["quantization"] == ["int8"]
    plain = keras.Model(model.input, model.output)
    assert provenance(plain) is None
    assert zoo.registry.origin_of(model)["name"] == "attention_rnn"


def test_preset_model_argument_errors():
    inputs = keras.Input((3,))
    with pytest.raises(ValueError, match=r"`preset` must be a dict with a 'name'"):
        PresetModel(inputs, inputs, preset={"config": {}})
    with pytest.raises(ValueError, match=r"`preset` must be JSON-serializable"):
        PresetModel(inputs, inputs, preset={"name": "x", "config": {"f": object()}})


def test_policy_objects_are_recorded_and_rebuild_the_same_model():
    """The policy objects keras-hub's harness passes are recorded as their Keras
    serialization, and the recorded config builds the same policies again."""
    policy_map = keras.dtype_policies.DTypePolicyMap("mixed_bfloat16")
    policy_map["predictions"] = keras.dtype_policies.get("int8_from_float32")
    model = zoo.build("cnn", compile=False, input_shape=(8, 8, 1), dtype=policy_map)
    record = provenance(model)["config"]["dtype"]
    assert record["class_name"] == "DTypePolicyMap"
    json.dumps(record)  # JSON as it is stored
    again = zoo.build("cnn", compile=False, **provenance(model)["config"])
    for before, after in zip(model.layers, again.layers):
        assert before.dtype_policy.name == after.dtype_policy.name, before.name
    assert again.get_layer("predictions").quantization_mode == "int8"
    assert again.get_layer("dense").compute_dtype == "bfloat16"
    with pytest.raises(ValueError, match=r"`dtype` must be None or a dtype policy.*dtype=3"):
        zoo.build("cnn", dtype=3)


def test_keras_cannot_save_a_quantized_dense_holding_a_policy_map(tmp_path):
    """The plain-Keras control behind `_compat.resolve_policy_maps`: a Dense built with a
    raw `DTypePolicyMap` that quantizes it fails to save in Keras 3.15, the same Dense
    given the resolved policy saves. When this starts passing, the workaround can go."""
    policy_map = keras.dtype_policies.DTypePolicyMap("float32")
    policy_map["dense"] = keras.dtype_policies.get("int8_from_float32")
    inputs = keras.Input((4,))
    raw = keras.Model(inputs, keras.layers.Dense(3, name="dense", dtype=policy_map)(inputs))
    with pytest.raises(ValueError, match="Invalid dtype"):
        raw.save(str(tmp_path / "raw.keras"))
    inputs = keras.Input((4,))
    resolved = keras.layers.Dense(3, name="dense", dtype=policy_map["dense"])
    keras.Model(inputs, resolved(inputs)).save(str(tmp_path / "resolved.keras"))
    assert resolved.quantization_mode == "int8"


def test_nan_labels_are_refused_where_the_loss_cannot_leave_them_out():
    """multitask compiles with the documents' categorical cross-entropy, which cannot
    skip a missing label: NaN labels are refused before training (mmoe and ple compile
    with masked_crossentropy and leave them out: tests/multitask/test_multitask_fit.py)."""
    model = zoo.build("multitask", **zoo.get_preset("multitask").tiny)
    x = np.zeros((4, 12), "float32")
    y = {"task1": np.eye(3, dtype="float32")[[0, 1, 2, 0]], "task2": np.eye(2)[[0, 1, 0, 1]]}
    y["task1"][1] = np.nan
    with pytest.raises(ValueError, match=r"fit: the labels of 'task1' hold NaN.*masked_cross"):
        model.fit(x, y, epochs=1, verbose=0)
    with pytest.raises(ValueError, match=r"train_on_batch: the labels of 'task1' hold NaN"):
        model.train_on_batch(x, y)
    model.compile(
        "adam",
        loss={
            "task1": kbm.multitask.losses.masked_crossentropy,
            "task2": "categorical_crossentropy",
        },
    )
    assert np.all(np.isfinite(model.train_on_batch(x, y)))
