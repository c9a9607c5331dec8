"""CompositeLayer: dtype policy maps keyed as Keras documents them, cloned initializers."""

import keras
import numpy as np
import pytest
from harness import to_numpy

import keras_bigmodel as kbm
from keras_bigmodel import _compat
from keras_bigmodel.layers import AttentionLayer, Fusion, MultiTaskHead, TaskHead
from keras_bigmodel.layers.base import clone_initializer

X_SEQ = np.random.default_rng(0).normal(size=(3, 5, 6)).astype("float32")
X_VEC = np.random.default_rng(1).normal(size=(3, 6)).astype("float32")

LAYERS = {
    "attention": (lambda **kw: AttentionLayer(4, **kw), X_SEQ, 2),
    "task_head": (lambda **kw: TaskHead(3, hidden_units=(4,), **kw), X_VEC, 2),
    "multi_task_head": (
        lambda **kw: MultiTaskHead({"a": {"units": 2, "hidden_units": [3]}, "b": 3}, **kw),
        X_VEC,
        3,
    ),
    "fusion": (lambda **kw: Fusion("attention", units=4, **kw), [X_VEC, X_VEC[:, :4]], 4),
}


def _dense_leaves(layer):
    return [
        sub
        for sub in _compat.all_layers(layer, include_self=False)
        if isinstance(sub, keras.layers.Dense)
    ]


@pytest.mark.parametrize("name", list(LAYERS))
def test_policy_map_keyed_by_layer_path_quantizes_the_sublayers(name):
    """The way keras-hub's run_quantization_test builds a map: from the built layer's
    `Layer.path`s, then a new instance of the same name takes it."""
    make, x, dense_count = LAYERS[name]
    reference = make(name=name)
    reference(x)
    policy_map = keras.dtype_policies.DTypePolicyMap("float32")
    for sub in _dense_leaves(reference):
        policy_map[sub.path] = keras.dtype_policies.get("int8_from_float32")
    assert len(policy_map) == dense_count and all("/" in key for key in policy_map)
    layer = make(name=name, dtype=policy_map)
    out = to_numpy(layer(x))
    modes = {sub.path: sub.quantization_mode for sub in _dense_leaves(layer)}
    assert set(modes.values()) == {"int8"}, modes
    for value in keras.tree.flatten(out):
        assert np.all(np.isfinite(value))


def test_policy_map_keys_may_be_regular_expressions_or_relative():
    layer = AttentionLayer(
        4,
        name="att",
        dtype=keras.dtype_policies.DTypePolicyMap(
            "float32", {"att/.*": keras.dtype_policies.get("int8_from_float32")}
        ),
    )
    layer(X_SEQ)
    assert layer.W.quantization_mode == "int8" and layer.V.quantization_mode == "int8"
    relative = AttentionLayer(
        4,
        dtype=keras.dtype_policies.DTypePolicyMap(
            "float32", {"W": keras.dtype_policies.get("int8_from_float32")}
        ),
    )
    relative(X_SEQ)
    assert relative.W.quantization_mode == "int8" and relative.V.quantization_mode is None


def test_a_path_keyed_quantized_layer_saves_and_reloads(tmp_path):
    make, x, _ = LAYERS["multi_task_head"]
    reference = make(name="heads")
    reference(x)
    policy_map = keras.dtype_policies.DTypePolicyMap(
        "float32",
        {
            sub.path: keras.dtype_policies.get("int8_from_float32")
            for sub in _dense_leaves(reference)
        },
    )
    inputs = keras.Input((6,))
    model = keras.Model(inputs, make(name="heads", dtype=policy_map)(inputs))
    expected = to_numpy(model(x))
    restored = kbm.load_model(kbm.save_model(model, tmp_path / "m.keras"))
    for key, value in to_numpy(restored(x)).items():
        np.testing.assert_allclose(value, expected[key], atol=1e-6)
    assert {sub.quantization_mode for sub in _dense_leaves(restored.get_layer("heads"))} == {"int8"}


def test_sublayers_start_from_different_weights_even_with_a_seeded_initializer():
    seeded = keras.initializers.GlorotUniform(seed=7)
    a, b = clone_initializer(seeded, "expert_0"), clone_initializer(seeded, "expert_1")
    assert not np.allclose(to_numpy(a((4, 4))), to_numpy(b((4, 4))))
    np.testing.assert_allclose(
        to_numpy(clone_initializer(seeded, "expert_0")((4, 4))), to_numpy(a((4, 4)))
    )  # and reproducibly so
    layer = TaskHead(4, hidden_units=(4, 4), kernel_initializer=seeded)
    layer(np.zeros((1, 4), "float32"))
    first, second = (to_numpy(d.kernel) for d in layer.hidden_layers)
    assert not np.allclose(first, second)


COMPOSITES = {
    "AttentionLayer": lambda **kw: AttentionLayer(4, **kw),
    "TaskHead": lambda **kw: TaskHead(3, **kw),
    "MultiTaskHead": lambda **kw: MultiTaskHead({"a": 2}, **kw),
    "Fusion": lambda **kw: Fusion("gated", units=4, **kw),
    "MixtureOfExperts": lambda **kw: kbm.layers.MixtureOfExperts(["a", "b"], **kw),
    "ProgressiveLayeredExtraction": (
        lambda **kw: kbm.layers.ProgressiveLayeredExtraction(["a", "b"], **kw)
    ),
}


def test_every_composite_layer_is_listed_here():
    composites = {
        name
        for name in kbm.layers.__all__
        if isinstance(getattr(kbm.layers, name), type)
        and issubclass(getattr(kbm.layers, name), kbm.layers.CompositeLayer)
        and name not in ("CompositeLayer", "FusionConcat")  # FusionConcat is a Fusion
    }
    assert composites == set(COMPOSITES)


@pytest.mark.backend_independent
@pytest.mark.parametrize("name", sorted(COMPOSITES))
def test_dense_options_are_kept_where_taken_and_refused_elsewhere(name):
    make = COMPOSITES[name]
    options = {"kernel_initializer": "ones", "bias_regularizer": "l2"}
    if not getattr(kbm.layers, name).takes_dense_options:
        # As a plain Keras layer refuses an argument it does not know.
        with pytest.raises(ValueError, match=r"Unrecognized keyword arguments.*kernel_init"):
            make(**options)
        return
    config = make(**options).get_config()
    assert config["kernel_initializer"]["class_name"] == "Ones"
    assert config["bias_regularizer"]["class_name"] == "L2"
    restored = type(make()).from_config(config)
    assert isinstance(restored.kernel_initializer, keras.initializers.Ones)
    assert isinstance(restored.bias_regularizer, keras.regularizers.L2)
    with pytest.raises(ValueError, match=r"Unrecognized keyword arguments.*kernel_size"):
        make(kernel_size=3)
