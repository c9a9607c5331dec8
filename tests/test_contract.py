"""Every zoo preset, in every configuration its registration names, passes the contract
(tests/harness.py); every layer the package exports has contract cases of its own."""

import importlib
import os
import pkgutil

import keras
import pytest
from harness import CHECKS, assert_outputs_close, forward, parametrize, preset_cases

import keras_bigmodel.layers
import zoo

LAYER_TESTS = os.path.join(os.path.dirname(__file__), "layers")


@pytest.mark.parametrize("case, check", parametrize(preset_cases()))
def test_preset_contract(case, check, tmp_path):
    CHECKS[check](case.ready(), str(tmp_path))


@pytest.mark.tensorflow_only
@pytest.mark.parametrize("name", zoo.list_presets())
def test_preset_exports_a_savedmodel_that_predicts_the_same(name, tmp_path):
    import tensorflow as tf

    case = next(c for c in preset_cases() if c.id == f"{name}-tiny").ready()
    model = case.build()
    expected = forward(model, case.inputs)
    model.export(str(tmp_path / "saved_model"), format="tf_saved_model", verbose=False)
    served = tf.saved_model.load(str(tmp_path / "saved_model"))
    assert_outputs_close(forward_served(served, case.inputs), expected, atol=1e-5)


def forward_served(served, inputs):
    return keras.tree.map_structure(lambda t: t.numpy(), served.serve(inputs))


def test_every_exported_layer_has_contract_cases():
    covered = set()
    for info in pkgutil.iter_modules([LAYER_TESTS]):
        module = importlib.import_module(f"layers.{info.name}")
        for case in getattr(module, "CASES", []):
            covered.add(type(case.build().get_layer(case.layer_name)))
    layers = {getattr(keras_bigmodel.layers, name) for name in keras_bigmodel.layers.__all__}
    layers = {
        cls
        for cls in layers
        if isinstance(cls, type)
        and issubclass(cls, keras.layers.Layer)
        and cls is not keras_bigmodel.layers.CompositeLayer
    }
    missing = sorted(cls.__name__ for cls in layers - covered)
    assert not missing, f"layers without contract cases in tests/layers/: {missing}"


def test_every_preset_declares_what_the_project_needs():
    for name in zoo.list_presets():
        spec = zoo.get_preset(name)
        assert spec.tiny, f"{name}: no `tiny` test configuration"
        assert spec.data is not None, f"{name}: no data view"
        model = zoo.build(name, compile=False, **spec.tiny)
        assert [t.name for t in keras.tree.flatten(model.inputs)] == [
            i.name for i in spec.data.inputs
        ], name


@pytest.mark.backend_independent
def test_every_layer_a_module_lists_is_exported_by_the_package():
    """keras_bigmodel.layers imports its layers by name (one registration path); a
    layer a module lists in `__all__` but the package does not import is caught here."""
    for info in pkgutil.iter_modules(keras_bigmodel.layers.__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"keras_bigmodel.layers.{info.name}")
        for name in module.__all__:
            obj = getattr(module, name)
            if isinstance(obj, type) and issubclass(obj, keras.layers.Layer):
                assert getattr(keras_bigmodel.layers, name, None) is obj, (info.name, name)
                assert name in keras_bigmodel.layers.__all__, name
