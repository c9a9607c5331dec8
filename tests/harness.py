"""The one contract harness that every layer and every zoo preset passes.

A `Case` is a function that builds a fresh functional model around the thing under
test, plus sample inputs. Each `check_*` function below takes a case and asserts one
clause of the contract in DESIGN.md; `tests/test_contract.py` runs every check on
every case, so adding a layer or a preset means adding one case.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Callable

import keras
import numpy as np
from keras import ops

import keras_bigmodel as kbm


@dataclasses.dataclass
class Case:
    """A model around the object under test.

    Attributes:
        id: Test id.
        build: `build(dtype=None)` returns a fresh, uncompiled functional model.
        inputs: Sample inputs (array, list or dict of arrays).
        alt_inputs: Inputs whose `None` dimensions (other than batch) have other
            sizes, to prove the model accepts them; `None` if it has none.
        layer_name: Name of the layer under test inside the model (layer cases), or
            `None` for presets.
        quantizable: Whether `quantize("int8")` must turn some weights into int8.
        targets: Optional training targets; default: random, shaped like outputs.
        loss: Loss used for the training check.
        learning_rate: Adam's learning rate in the training check.
        bfloat16_policy: The policy of the bfloat16 check ("bfloat16" or
            "mixed_bfloat16").
    """

    id: str
    build: Callable[..., keras.Model]
    inputs: Any
    alt_inputs: Any = None
    layer_name: str | None = None
    quantizable: bool = True
    targets: Any = None
    loss: Any = "mse"
    learning_rate: float = 0.01
    bfloat16_policy: str = "bfloat16"

    def __repr__(self):
        return self.id


def to_numpy(outputs):
    return keras.tree.map_structure(lambda t: np.asarray(ops.convert_to_numpy(t)), outputs)


def forward(model: keras.Model, inputs, training=False):
    """One eager forward pass (avoids the tracing cost of `predict` for small checks)."""
    return to_numpy(model(inputs, training=training))


def assert_outputs_close(actual, expected, atol=1e-6, rtol=0.0, msg=""):
    # A reloaded functional model returns a list where the original returned a tuple;
    # the leaves (and dict keys) are what must match.
    if isinstance(expected, dict):
        assert isinstance(actual, dict) and sorted(actual) == sorted(expected), msg
    actual, expected = keras.tree.flatten(actual), keras.tree.flatten(expected)
    assert len(actual) == len(expected), f"{msg} {len(actual)} outputs != {len(expected)}"
    for a, e in zip(actual, expected):
        a = np.asarray(a, dtype="float64")
        e = np.asarray(e, dtype="float64")
        assert a.shape == e.shape, f"{msg} shape {a.shape} != {e.shape}"
        assert np.all(np.isfinite(a)), f"{msg} non-finite values"
        np.testing.assert_allclose(a, e, atol=atol, rtol=rtol, err_msg=msg)


def canonical_json(config) -> str:
    return json.dumps(keras.saving.serialize_keras_object(config), sort_keys=True, default=str)


def _layer(case: Case, model: keras.Model) -> keras.layers.Layer:
    return model.get_layer(case.layer_name)


def _targets(case: Case, outputs, seed=0):
    if case.targets is not None:
        return case.targets
    rng = np.random.default_rng(seed)
    return keras.tree.map_structure(
        lambda o: rng.uniform(-1, 1, size=o.shape).astype("float32"), outputs
    )


# ----------------------------------------------------------------------- checks
def check_config_roundtrip(case: Case, tmp_path) -> None:
    """get_config -> from_config -> get_config is the same JSON."""
    model = case.build()
    obj = model if case.layer_name is None else _layer(case, model)
    config = obj.get_config()
    expected = canonical_json(config)  # before from_config, which may consume the dict
    clone = obj.__class__.from_config(json.loads(json.dumps(
        keras.saving.serialize_keras_object(config))) if case.layer_name else config)
    assert canonical_json(clone.get_config()) == expected


def check_serialize_roundtrip(case: Case, tmp_path) -> None:
    """serialize_keras_object -> deserialize_keras_object gives an equal object."""
    model = case.build()
    obj = model if case.layer_name is None else _layer(case, model)
    serialized = keras.saving.serialize_keras_object(obj)
    restored = keras.saving.deserialize_keras_object(json.loads(json.dumps(serialized)))
    assert type(restored) is type(obj)
    assert canonical_json(restored.get_config()) == canonical_json(obj.get_config())
    if case.layer_name is not None:
        assert serialized["registered_name"].startswith("keras_bigmodel>"), serialized


def check_keras_file_roundtrip(case: Case, tmp_path) -> None:
    """A `.keras` file reloads in safe_mode, with plain Keras and with kbm, identically."""
    keras.utils.set_random_seed(1)
    model = case.build()
    expected = forward(model, case.inputs)
    path = os.path.join(tmp_path, "model.keras")
    model.save(path)
    plain = keras.saving.load_model(path, safe_mode=True)
    assert_outputs_close(forward(plain, case.inputs), expected, atol=1e-6, msg="keras reload")
    kbm_path = os.path.join(tmp_path, "kbm.keras")
    kbm.save_model(model, kbm_path)
    ours = kbm.load_model(kbm_path)
    assert_outputs_close(forward(ours, case.inputs), expected, atol=1e-6, msg="kbm reload")
    if case.layer_name is not None:
        assert type(_layer(case, ours)) is type(_layer(case, model))


def check_weights_roundtrip(case: Case, tmp_path) -> None:
    """save_weights -> load_weights into a scrambled fresh model restores its outputs."""
    keras.utils.set_random_seed(2)
    model = case.build()
    expected = forward(model, case.inputs)
    path = os.path.join(tmp_path, "model.weights.h5")
    model.save_weights(path)
    fresh = case.build()
    rng = np.random.default_rng(3)
    for w in fresh.weights:
        if "float" in keras.backend.standardize_dtype(w.dtype):
            w.assign(rng.normal(size=w.shape).astype(keras.backend.standardize_dtype(w.dtype)))
    fresh.load_weights(path)
    assert_outputs_close(forward(fresh, case.inputs), expected, atol=1e-6)


def _with_trainable_stem(case: Case) -> keras.Model:
    """The case's model with a trainable Dense in front of each float input, so that
    even weightless layers (concat, mean, ...) are trained *through*."""
    inner = case.build()
    new_inputs = keras.tree.map_structure(
        lambda t: keras.Input(batch_shape=t.shape, dtype=t.dtype), inner.input
    )

    def stem(t):
        if "float" not in str(t.dtype):
            return t
        return keras.layers.Dense(t.shape[-1])(t)

    return keras.Model(new_inputs, inner(keras.tree.map_structure(stem, new_inputs)))


def check_training_lowers_loss(case: Case, tmp_path) -> None:
    """A few full-batch steps lower the loss (so gradients flow through the layer)."""
    keras.utils.set_random_seed(4)
    model = _with_trainable_stem(case) if case.layer_name else case.build()
    outputs = forward(model, case.inputs)
    targets = _targets(case, outputs)
    model.compile(optimizer=keras.optimizers.Adam(case.learning_rate), loss=case.loss)
    before = float(model.evaluate(case.inputs, targets, verbose=0, return_dict=True)["loss"])
    model.fit(case.inputs, targets, epochs=8, batch_size=len(keras.tree.flatten(case.inputs)[0]),
              verbose=0, shuffle=False)
    after = float(model.evaluate(case.inputs, targets, verbose=0, return_dict=True)["loss"])
    assert np.isfinite(after) and after < before, f"loss {before} -> {after}"


def _copy_weights(src: keras.Model, dst: keras.Model) -> None:
    for s, d in zip(src.weights, dst.weights):
        d.assign(ops.cast(s, d.dtype))


def check_mixed_float16(case: Case, tmp_path) -> None:
    _check_policy(case, tmp_path, "mixed_float16", "float16", tol=3e-2)


def check_bfloat16(case: Case, tmp_path) -> None:
    _check_policy(case, tmp_path, case.bfloat16_policy, "bfloat16", tol=1e-1)


def _check_policy(case: Case, tmp_path, policy: str, compute: str, tol: float) -> None:
    keras.utils.set_random_seed(5)
    reference = case.build()
    expected = forward(reference, case.inputs)
    model = case.build(dtype=policy)
    _copy_weights(reference, model)
    outputs = model(case.inputs, training=False)
    for out in keras.tree.flatten(outputs):
        assert keras.backend.standardize_dtype(out.dtype) == compute, out.dtype
    actual = to_numpy(outputs)
    scale = max(float(np.abs(e).max()) for e in keras.tree.flatten(expected)) + 1e-3
    assert_outputs_close(actual, expected, atol=tol * scale, msg=policy)
    path = os.path.join(tmp_path, f"{policy}.keras")
    kbm.save_model(model, path)
    restored = kbm.load_model(path)
    assert_outputs_close(forward(restored, case.inputs), actual, atol=1e-6, msg="reload")
    if case.layer_name is not None:
        assert _layer(case, restored).dtype_policy.name == policy


def check_jit_compile(case: Case, tmp_path) -> None:
    """Compiled with jit_compile=True, the model predicts what it does eagerly and trains."""
    keras.utils.set_random_seed(6)
    model = case.build()
    expected = forward(model, case.inputs)
    model.compile(optimizer="adam", loss=case.loss, jit_compile=True)
    # Keras silently falls back to jit_compile=False when a layer says it cannot be
    # XLA-compiled; that must only happen because of Keras's own layers, never ours.
    blockers = [l for l in model._flatten_layers() if not l.supports_jit]
    assert not [l for l in blockers if type(l).__module__.startswith("keras_bigmodel")], blockers
    assert model.jit_compile is (not blockers), (model.jit_compile, blockers)
    predicted = model.predict(case.inputs, verbose=0)
    assert_outputs_close(predicted, expected, atol=1e-5, msg="jit predict")
    targets = _targets(case, expected)
    logs = model.train_on_batch(case.inputs, targets, return_dict=True)
    assert np.isfinite(logs["loss"])


def check_int8_roundtrip(case: Case, tmp_path) -> None:
    """int8 quantization keeps outputs close, and the quantized model saves and reloads."""
    keras.utils.set_random_seed(7)
    model = case.build()
    expected = forward(model, case.inputs)
    model.quantize("int8")
    int8_layers = [l for l in model._flatten_layers() if l.quantization_mode == "int8"]
    if case.quantizable:
        assert int8_layers, "quantize('int8') quantized nothing"
    quantized = forward(model, case.inputs)
    scale = max(float(np.abs(e).max()) for e in keras.tree.flatten(expected)) + 1e-3
    assert_outputs_close(quantized, expected, atol=0.05 * scale, msg="int8 vs float32")
    for save, load, name in (
        (lambda m, p: m.save(p), lambda p: keras.saving.load_model(p), "keras"),
        (kbm.save_model, kbm.load_model, "kbm"),
    ):
        path = os.path.join(tmp_path, f"int8-{name}.keras")
        save(model, path)
        restored = load(path)
        assert_outputs_close(forward(restored, case.inputs), quantized, atol=1e-6, msg=name)
        restored_int8 = [l for l in restored._flatten_layers() if l.quantization_mode == "int8"]
        assert len(restored_int8) == len(int8_layers)
        # and it saves again (a quantized sublayer holding a raw policy map cannot)
        again = os.path.join(tmp_path, f"int8-{name}-again.keras")
        kbm.save_model(restored, again)
        assert_outputs_close(forward(kbm.load_model(again), case.inputs), quantized, atol=1e-6)


def check_none_dimensions(case: Case, tmp_path) -> None:
    """Symbolic `None` dimensions: the model accepts other sizes along them."""
    model = case.build()
    for t in keras.tree.flatten(model.input):
        assert t.shape[0] is None, "batch dimension must be None"
    for inputs in (case.inputs, case.alt_inputs):
        if inputs is None:
            continue
        outputs = forward(model, inputs)
        batch = len(keras.tree.flatten(inputs)[0])
        for out, sym in zip(keras.tree.flatten(outputs), keras.tree.flatten(model.output)):
            assert out.shape[0] == batch
            for got, want in zip(out.shape[1:], sym.shape[1:]):
                assert want is None or got == want, (out.shape, sym.shape)
            assert np.all(np.isfinite(out))


def check_preset_directory(case: Case, tmp_path) -> None:
    """zoo.save_preset -> zoo.load_preset gives the same predictions and records the preset."""
    import zoo

    keras.utils.set_random_seed(8)
    model = case.build()
    expected = forward(model, case.inputs)
    directory = os.path.join(tmp_path, "preset")
    zoo.save_preset(model, directory)
    metadata = zoo.read_preset_metadata(directory)
    assert metadata["parameters"] == model.count_params()
    assert metadata["created_with"]["keras_bigmodel"] == kbm.__version__
    restored = zoo.load_preset(directory)
    assert_outputs_close(forward(restored, case.inputs), expected, atol=1e-6)


def check_export_savedmodel(case: Case, tmp_path) -> None:
    """model.export writes a SavedModel whose serving function predicts the same."""
    import tensorflow as tf

    model = case.build()
    expected = forward(model, case.inputs)
    directory = os.path.join(tmp_path, "saved_model")
    model.export(directory, format="tf_saved_model", verbose=False)
    served = tf.saved_model.load(directory)
    first = to_numpy(served.serve(case.inputs))
    assert_outputs_close(first, expected, atol=1e-5)
    assert_outputs_close(to_numpy(served.serve(case.inputs)), first, atol=0, msg="deterministic")


PRESET_CHECKS = {"preset_directory": check_preset_directory}
TENSORFLOW_CHECKS = {"export_savedmodel": check_export_savedmodel}

CHECKS = {
    "config": check_config_roundtrip,
    "serialize": check_serialize_roundtrip,
    "keras_file": check_keras_file_roundtrip,
    "weights_file": check_weights_roundtrip,
    "training": check_training_lowers_loss,
    "mixed_float16": check_mixed_float16,
    "bfloat16": check_bfloat16,
    "jit_compile": check_jit_compile,
    "int8": check_int8_roundtrip,
    "none_dims": check_none_dimensions,
}
