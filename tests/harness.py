"""The one contract harness that every layer and every zoo preset passes.

A `Case` builds a fresh functional model around the thing under test and knows its
sample inputs. Each `check_*` below asserts one clause of the contract (CONTRIBUTING.md,
"Adding a layer" and "Adding a preset", says how a new layer or preset joins it):

- `serialization`: get_config -> from_config -> get_config is the same JSON, and
  `serialize_keras_object` round-trips to an equal object of the same class;
- `saving`: a `.keras` file reloads in safe mode, with plain Keras and with
  `kbm.load_model`, with identical outputs; `save_weights`/`load_weights` restore a
  scrambled model;
- `training`: compiled with XLA (it must really be on, unless a Keras layer forbids
  it) on JAX, and for each layer file's first case on TensorFlow; the first compiled
  step computes the loss the eager model gives, and a few steps lower it;
- `dtypes`: under mixed_float16 and bfloat16 every output and every sublayer
  computes in the policy's dtype, outputs stay close to float32, and the
  mixed_float16 model reloads with its policy on every sublayer;
- `int8`: `quantize("int8")` turns weights into int8 (for cases that hold Dense
  layers), keeps outputs close, and saves, reloads and saves again;
- `variable_sizes`: another batch size, and other sizes along symbolic `None`
  dimensions, give outputs of the right shapes;
- `weights` (layers): the layer holds exactly the trainable and non-trainable
  weights it declares, as Keras's `run_layer_test` checks;
- `preset_directory` (presets): `zoo.save_preset` -> `zoo.load_preset` predicts
  the same and records the preset from the model itself.

Layer test files declare their cases and get the checks with
`test_contract = layer_contract(CASES)` (from `harness`); preset cases come from the registry.

Which clauses run where: `serialization` and `weights` are Python-level facts and run in
the TensorFlow pass only (marked `backend_independent`); the TensorFlow pass runs every
other clause on every case; JAX and PyTorch run `saving` and `training` on every case
and the rest on a sample: each layer file's first case and each preset's tiny
configuration (see `EVERY_CASE`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import zlib
from collections.abc import Callable
from typing import Any

import keras
import numpy as np
import pytest
from keras import ops

import keras_bigmodel as kbm
from keras_bigmodel import _compat

UNDER_TEST = "under_test"


@dataclasses.dataclass
class Case:
    """A model around the object under test.

    Attributes:
        id: Test id.
        build: `build(dtype=None)` returns a fresh, uncompiled functional model.
        inputs: Sample inputs (array, list or dict of arrays).
        alt_inputs: Inputs of another batch size whose `None` dimensions have other
            sizes, to prove the model takes them.
        layer_name: Name of the layer under test (layer cases), or None (presets).
        quantizable: Whether the model holds layers `quantize("int8")` converts.
        stochastic: Whether training-mode outputs are random (dropout), so that the
            compiled step's loss cannot be compared with an eager one.
        targets: Training targets; default: random, shaped like the outputs.
        loss: Loss of the training check.
        learning_rate: Adam's learning rate in the training check.
        bfloat16_policy: The policy of the bfloat16 check.
        trainable_weights / non_trainable_weights: How many weights the layer
            must hold once built (layer cases; the check runs when
            `trainable_weights` is given).
        variant: For presets: a configuration beyond the preset's `tiny` one.
        first: The first case of its layer test file (set by `layer_contract`): the
            one that runs every clause on every backend (see `EVERY_CASE`).
        prepare: For presets: makes `inputs`, `alt_inputs`, `targets` and `loss`
            from the built model on first use, so that collection builds nothing.
    """

    id: str
    build: Callable[..., keras.Model]
    inputs: Any
    alt_inputs: Any = None
    layer_name: str | None = None
    quantizable: bool = True
    stochastic: bool = False
    targets: Any = None
    loss: Any = "mse"
    learning_rate: float = 0.01
    bfloat16_policy: str = "bfloat16"
    trainable_weights: int | None = None
    non_trainable_weights: int = 0
    prepare: Callable[[], dict] | None = None
    variant: bool = False
    first: bool = False

    def __repr__(self):
        return self.id

    def ready(self) -> Case:
        """Fills what `prepare` makes lazily (sample inputs of a preset's model)."""
        if self.prepare is not None:
            for key, value in self.prepare().items():
                setattr(self, key, value)
            self.prepare = None
        return self


# ------------------------------------------------------------------ utilities
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


def _under_test(case: Case, model: keras.Model):
    return model if case.layer_name is None else model.get_layer(case.layer_name)


def _targets(case: Case, outputs, seed=0):
    if case.targets is not None:
        return case.targets
    rng = np.random.default_rng(seed)
    return keras.tree.map_structure(
        lambda o: rng.uniform(-1, 1, size=o.shape).astype("float32"), outputs
    )


def _scale(outputs) -> float:
    return max(float(np.abs(e).max()) for e in keras.tree.flatten(outputs)) + 1e-3


# --------------------------------------------------------------------- checks
def check_serialization(case: Case, tmp_path) -> None:
    model = case.build()
    obj = _under_test(case, model)
    config = obj.get_config()
    expected = canonical_json(config)  # before from_config, which may consume the dict
    source = json.loads(json.dumps(keras.saving.serialize_keras_object(config)))
    clone = obj.__class__.from_config(source if case.layer_name else dict(config))
    assert canonical_json(clone.get_config()) == expected
    serialized = keras.saving.serialize_keras_object(obj)
    restored = keras.saving.deserialize_keras_object(json.loads(json.dumps(serialized)))
    assert type(restored) is type(obj)
    assert canonical_json(restored.get_config()) == expected
    if case.layer_name is not None:
        assert serialized["registered_name"].startswith("keras_bigmodel>"), serialized


def check_saving(case: Case, tmp_path) -> None:
    keras.utils.set_random_seed(1)
    model = case.build()
    expected = forward(model, case.inputs)
    path = kbm.save_model(model, os.path.join(tmp_path, "model.keras"))
    plain = keras.saving.load_model(path, safe_mode=True)
    assert_outputs_close(forward(plain, case.inputs), expected, msg="keras reload")
    ours = kbm.load_model(path)
    assert_outputs_close(forward(ours, case.inputs), expected, msg="kbm reload")
    assert type(_under_test(case, ours)) is type(_under_test(case, model))
    weights_path = os.path.join(tmp_path, "model.weights.h5")
    model.save_weights(weights_path)
    rng = np.random.default_rng(3)
    for w in plain.weights:  # scramble a model of the same architecture, then restore it
        dtype = keras.backend.standardize_dtype(w.dtype)
        if "float" in dtype:
            w.assign(rng.normal(size=w.shape).astype(dtype))
    plain.load_weights(weights_path)
    assert_outputs_close(forward(plain, case.inputs), expected, msg="weights file")


def _with_trainable_stem(case: Case) -> keras.Model:
    """The case's model with a trainable Dense in front of each float input, so that
    even weightless layers (concat, mean, ...) are trained *through*."""
    inner = case.build()
    new_inputs = keras.tree.map_structure(
        lambda t: keras.Input(batch_shape=t.shape, dtype=t.dtype, name=t.name), inner.input
    )

    def stem(t):
        if "float" not in str(t.dtype):
            return t
        return keras.layers.Dense(t.shape[-1])(t)

    return keras.Model(new_inputs, inner(keras.tree.map_structure(stem, new_inputs)))


def check_training(case: Case, tmp_path) -> None:
    keras.utils.set_random_seed(4)
    model = _with_trainable_stem(case) if case.layer_name else case.build()
    eager = model(case.inputs, training=True)
    targets = _targets(case, to_numpy(eager))
    # XLA wherever it is cheap enough to prove: JAX always compiles every case with XLA;
    # on TensorFlow, each layer file's first case does (its further cases, and the
    # presets, train in graph mode, Keras's own default on a CPU: TensorFlow's XLA
    # compiler costs about a second per tiny layer model on 2 CPUs and up to a minute
    # per preset, and every case's XLA path is the one JAX proves). On PyTorch, Keras's
    # default is eager (torch.compile is opt-in).
    backend = keras.backend.backend()
    jit = backend == "jax" or (backend == "tensorflow" and case.first)
    model.compile(
        optimizer=keras.optimizers.Adam(case.learning_rate), loss=case.loss, jit_compile=jit
    )
    # Keras falls back to no XLA when a layer says it cannot be compiled; that may only
    # happen because of Keras's own layers, never this package's.
    blockers = [layer for layer in _compat.all_layers(model) if not layer.supports_jit]
    assert not [b for b in blockers if type(b).__module__.startswith("keras_bigmodel")], blockers
    assert model.jit_compile is (jit and not blockers), (model.jit_compile, blockers)

    def loss(outputs):
        return float(
            ops.convert_to_numpy(
                model.compute_loss(x=case.inputs, y=targets, y_pred=outputs, training=False)
            )
        )

    before = loss(model(case.inputs, training=False))
    first = float(model.train_on_batch(case.inputs, targets, return_dict=True)["loss"])
    if not case.stochastic:
        # The first compiled step's loss is computed before its update: the compiled
        # forward pass must agree with the eager one.
        np.testing.assert_allclose(first, loss(eager), rtol=1e-4, atol=1e-5)
    for _ in range(4):
        model.train_on_batch(case.inputs, targets)
    after = loss(model(case.inputs, training=False))
    assert np.isfinite(after) and after < before, f"loss did not fall: {before} -> {after}"


def check_dtypes(case: Case, tmp_path) -> None:
    keras.utils.set_random_seed(5)
    reference = case.build()
    expected = forward(reference, case.inputs)
    # A `DTypePolicy` object (what keras-hub's `run_precision_test` passes, and the
    # documented type) and a policy name: both forms must build, train and save.
    for policy, compute, tol in (
        (keras.dtype_policies.DTypePolicy("mixed_float16"), "float16", 3e-2),
        (case.bfloat16_policy, "bfloat16", 1e-1),
    ):
        model = case.build(dtype=policy)
        policy = keras.dtype_policies.get(policy).name
        for source, target in zip(reference.weights, model.weights):
            target.assign(ops.cast(source, target.dtype))
        outputs = model(case.inputs, training=False)
        for out in keras.tree.flatten(outputs):
            assert keras.backend.standardize_dtype(out.dtype) == compute, (policy, out.dtype)
        if case.layer_name is not None:
            layer = model.get_layer(case.layer_name)
            for sub in _compat.all_layers(layer):
                if isinstance(sub, (keras.Sequential, keras.layers.InputLayer)):
                    continue  # containers and inputs have no computation of their own
                assert sub.compute_dtype == compute, (policy, sub.name, sub.compute_dtype)
        actual = to_numpy(outputs)
        assert_outputs_close(actual, expected, atol=tol * _scale(expected), msg=policy)
        if compute == "bfloat16":
            continue  # policies are saved and restored by name: one reload proves it
        path = os.path.join(tmp_path, f"{policy}.keras")
        restored = kbm.load_model(kbm.save_model(model, path))
        assert_outputs_close(forward(restored, case.inputs), actual, msg=f"{policy} reload")
        if case.layer_name is not None:
            names = {
                sub.dtype_policy.name
                for sub in _compat.all_layers(restored.get_layer(case.layer_name))
                if not isinstance(sub, (keras.Sequential, keras.layers.InputLayer))
            }
            assert names == {policy}, names


def check_int8(case: Case, tmp_path) -> None:
    keras.utils.set_random_seed(7)
    model = case.build()
    expected = forward(model, case.inputs)
    model.quantize("int8")

    def int8_layers(m):
        return [layer for layer in _compat.all_layers(m) if layer.quantization_mode == "int8"]

    assert int8_layers(model), "quantize('int8') quantized nothing"
    if case.layer_name is not None:
        assert int8_layers(model.get_layer(case.layer_name)), (
            "no Dense inside the layer under test was quantized"
        )
    quantized = forward(model, case.inputs)
    assert_outputs_close(quantized, expected, atol=0.05 * _scale(expected), msg="int8 vs float32")
    path = kbm.save_model(model, os.path.join(tmp_path, "int8.keras"))
    restored = kbm.load_model(path)
    assert_outputs_close(forward(restored, case.inputs), quantized, msg="kbm")
    assert len(int8_layers(restored)) == len(int8_layers(model)), "kbm"
    if keras.backend.backend() != "tensorflow" or case.variant:
        return
    # In the TensorFlow pass, for every layer case and each preset's tiny configuration
    # (what follows is about configs and policies, the same on every backend and for a
    # preset's options): it saves again (a quantized sublayer holding a raw policy map
    # cannot), plain Keras reads what this package wrote, and a policy map built at
    # construction gives the same int8 layers (tests/test_registry.py builds from a map
    # on every backend).
    again = kbm.save_model(restored, os.path.join(tmp_path, "int8-again.keras"))
    plain = keras.saving.load_model(again)
    assert_outputs_close(forward(plain, case.inputs), quantized, msg="keras, saved again")
    assert len(int8_layers(plain)) == len(int8_layers(model)), "keras"
    check_int8_policy_map(case, tmp_path, [layer.path for layer in int8_layers(model)])


def check_int8_policy_map(case: Case, tmp_path, paths) -> None:
    """int8 asked for at construction, as keras-hub's `run_quantization_test` does: a
    `DTypePolicyMap` keyed by `Layer.path` gives the layers `quantize` converts an
    `int8_from_float32` policy; exactly those are int8, and the file reloads."""
    policy_map = keras.dtype_policies.DTypePolicyMap("float32")
    for path in paths:
        policy_map[path] = keras.dtype_policies.get("int8_from_float32")
    model = case.build(dtype=policy_map)
    built = sorted(
        layer.path for layer in _compat.all_layers(model) if layer.quantization_mode == "int8"
    )
    assert built == sorted(paths), (built, sorted(paths))
    outputs = forward(model, case.inputs)
    assert all(np.all(np.isfinite(out)) for out in keras.tree.flatten(outputs))
    path = kbm.save_model(model, os.path.join(tmp_path, "int8-map.keras"))
    restored = kbm.load_model(path)
    assert_outputs_close(forward(restored, case.inputs), outputs, msg="policy map, reloaded")


def check_variable_sizes(case: Case, tmp_path) -> None:
    model = case.build()
    outputs = forward(model, case.alt_inputs)
    batch = len(keras.tree.flatten(case.alt_inputs)[0])
    for out, sym in zip(keras.tree.flatten(outputs), keras.tree.flatten(model.output)):
        assert out.shape[0] == batch
        for got, want in zip(out.shape[1:], sym.shape[1:]):
            assert want is None or got == want, (out.shape, sym.shape)
        assert np.all(np.isfinite(out))


def check_weights(case: Case, tmp_path) -> None:
    layer = case.build().get_layer(case.layer_name)
    assert len(layer.trainable_weights) == case.trainable_weights, [
        w.path for w in layer.trainable_weights
    ]
    assert len(layer.non_trainable_weights) == case.non_trainable_weights, [
        w.path for w in layer.non_trainable_weights
    ]


def check_preset_directory(case: Case, tmp_path) -> None:
    import zoo

    keras.utils.set_random_seed(8)
    model = case.build()
    expected = forward(model, case.inputs)
    directory = os.path.join(tmp_path, "preset")
    zoo.save_preset(model, directory)
    metadata = zoo.read_preset_metadata(directory)
    assert metadata["parameters"] == model.count_params()
    assert metadata["name"] == kbm.models.provenance(model)["name"]
    restored = zoo.load_preset(directory)
    assert kbm.models.provenance(restored) == kbm.models.provenance(model)
    assert_outputs_close(forward(restored, case.inputs), expected)


CHECKS = {
    "serialization": check_serialization,
    "saving": check_saving,
    "training": check_training,
    "dtypes": check_dtypes,
    "int8": check_int8,
    "variable_sizes": check_variable_sizes,
    "weights": check_weights,
    "preset_directory": check_preset_directory,
}


def applicable(case: Case) -> list[str]:
    """The checks that apply to a case (none is skipped at run time); `_marks` marks
    those that JAX and PyTorch run on a sample of the cases only (`EVERY_CASE`)."""
    names = ["serialization", "saving", "training", "dtypes", "variable_sizes"]
    if case.quantizable:
        names.append("int8")
    if case.layer_name is not None and case.trainable_weights is not None:
        names.append("weights")
    if case.layer_name is None:
        names.append("preset_directory")
    return names


# Clauses about configs and weight counts: Python-level facts that no backend changes,
# checked once, in the TensorFlow pass (tests/conftest.py).
BACKEND_INDEPENDENT = ("serialization", "weights")
# What every case proves on every backend: that it saves and reloads, and trains (with
# XLA on JAX). The other clauses run on every case in the TensorFlow pass and, on JAX
# and PyTorch, on a sample: each layer file's first case and each preset's tiny
# configuration (marked `sampled`, deselected there with a summary line). A preset's
# variants and a layer's further cases differ by options whose code is backend-neutral
# Keras ops; JAX compiles every new shape of every eager op (about 40 ms each on 2
# CPUs), which made these clauses a fifth of the JAX pass.
EVERY_CASE = ("saving", "training")


def _marks(case: Case, check: str) -> list:
    if check in BACKEND_INDEPENDENT:
        return [pytest.mark.backend_independent]
    sample = case.first if case.layer_name is not None else not case.variant
    if check not in EVERY_CASE and not sample:
        return [pytest.mark.sampled]
    return []


def parametrize(cases: list[Case]) -> list:
    return [
        pytest.param(case, check, id=f"{case.id}-{check}", marks=_marks(case, check))
        for case in cases
        for check in applicable(case)
    ]


def layer_contract(cases: list[Case]):
    """A parametrized test running every applicable check on every case (the first
    case is the file's sample, see `EVERY_CASE`)."""
    if cases:
        cases[0].first = True

    @pytest.mark.parametrize("case, check", parametrize(cases))
    def test_contract(case, check, tmp_path):
        CHECKS[check](case.ready(), str(tmp_path))

    return test_contract


# ---------------------------------------------------------------- case makers
def case_seed(case_id: str) -> int:
    """A seed of the case's own, stable across runs (ids of equal length differ)."""
    return zlib.crc32(case_id.encode())


def _data(shapes, seed):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=s).astype("float32") for s in shapes]


def layer_case(
    case_id,
    make_layer,
    input_shapes,
    batch=4,
    alt_size=9,
    masking=False,
    call_kwargs=None,
    names=None,
    **case_fields,
) -> Case:
    """A case that puts `make_layer(dtype=..., name=...)` on `keras.Input`s of
    `input_shapes` (without batch; `None` marks a variable dimension, 6 in the sample
    inputs and `alt_size` in the alternative ones). With `names`, the layer is called
    on a dict of named inputs."""

    def concrete(size, n):
        return [(n,) + tuple(size if d is None else d for d in s) for s in input_shapes]

    arrays = _data(concrete(6, batch), seed=case_seed(case_id))
    if masking:  # pad the tail of some sequences with zeros, which Masking masks out
        for a in arrays:
            a[1, 4:] = 0.0
            a[2, 1:] = 0.0
    alt = _data(concrete(alt_size, batch + 3), seed=1)

    def pack(values):
        if names is not None:
            return dict(zip(names, values))
        return values[0] if len(values) == 1 else values

    def build(dtype=None):
        symbols = [
            keras.Input(shape=s, name=None if names is None else names[i])
            for i, s in enumerate(input_shapes)
        ]
        x = [keras.layers.Masking(0.0)(t) for t in symbols] if masking else symbols
        layer = make_layer(dtype=dtype, name=UNDER_TEST)
        out = layer(pack(x), **(call_kwargs or {}))
        return keras.Model(pack(symbols), out)

    return Case(
        case_id, build, pack(arrays), alt_inputs=pack(alt), layer_name=UNDER_TEST, **case_fields
    )


def _sample(tensor, size, batch, rng):
    shape = (batch,) + tuple(size if d is None else d for d in tensor.shape[1:])
    if "int" in str(tensor.dtype):
        return rng.integers(1, 10, size=shape).astype("int32")
    return rng.uniform(size=shape).astype("float32")  # image-like data in [0, 1]


def preset_cases() -> list[Case]:
    """Every registered preset, in every configuration its registration asks to prove
    (`tiny` and its `variants`), as harness cases. Nothing is built until a test runs."""
    import zoo

    cases = []
    for name in zoo.list_presets():
        for config_name, config in zoo.get_preset(name).test_configs().items():
            case = _preset_case(f"{name}-{config_name}", name, config)
            case.variant = config_name != "tiny"
            cases.append(case)
    return cases


def _preset_case(case_id, name, config) -> Case:
    import zoo

    spec = zoo.get_preset(name)

    def build(dtype=None):
        extra = {} if dtype is None else {"dtype": dtype}
        return zoo.build(name, compile=False, **config, **extra)

    def prepare():
        model = build()
        rng = np.random.default_rng(case_seed(case_id))
        loss = spec.compile_defaults["loss"]

        def target(t):
            if "binary" in str(loss):
                return rng.integers(0, 2, size=(4, t.shape[-1])).astype("float32")
            classes = rng.integers(0, t.shape[-1], size=4)
            return keras.utils.to_categorical(classes, t.shape[-1]).astype("float32")

        return {
            "inputs": keras.tree.map_structure(lambda t: _sample(t, 6, 4, rng), model.input),
            "alt_inputs": keras.tree.map_structure(lambda t: _sample(t, 11, 7, rng), model.input),
            "targets": keras.tree.map_structure(target, model.output),
            "loss": {k: loss for k in model.output} if isinstance(model.output, dict) else loss,
        }

    stochastic = any(
        config.get(k) for k in ("dropout", "modality_dropout", "attention_dropout", "augmentation")
    )
    return Case(
        case_id,
        build,
        None,
        loss=spec.compile_defaults["loss"],
        learning_rate=1e-2,
        bfloat16_policy="mixed_bfloat16",
        stochastic=stochastic,
        prepare=prepare,
    )
