"""Every object the package registers with Keras runs a contract.

Layers run the layer contract (tests/layers/, through `harness.layer_contract`) and
`PresetModel` runs the preset contract (every zoo preset builds one). Every other
registered object (losses, metrics, task weightings, distillation losses, ...) runs the
object contract here: its config round-trips as JSON, `serialize_keras_object`
round-trips to an equal object, and, used in a compiled model, the model trains (its
loss falls), saves with `kbm.save_model` and reloads with `kbm.load_model` in safe
mode with the same predictions and the same loss. `test_every_registered_object_runs_a_contract`
fails when a registered object has none of these.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib
import inspect
import os
import pkgutil
from collections.abc import Callable

import keras
import numpy as np
import pytest
from harness import canonical_json

import keras_bigmodel as kbm
import zoo
from keras_bigmodel.compress import ProbabilityDistillation
from keras_bigmodel.compress.pruning import PrunedLayer
from keras_bigmodel.compress.qat import QuantizeAwareLayer
from keras_bigmodel.data.image_preprocessing import ImagePreprocessing, with_front
from keras_bigmodel.data.tabular import TabularEncoding
from keras_bigmodel.layers import MultiTaskHead
from keras_bigmodel.layers.multi_task_head import task_outputs
from keras_bigmodel.models import PresetModel
from keras_bigmodel.multitask import (
    DynamicWeighting,
    GradientAggregator,
    MaskedMetric,
    MultiTaskModel,
    TaskLoss,
    UncertaintyWeighting,
)
from keras_bigmodel.multitask.losses import masked_crossentropy

LAYER_TESTS = os.path.join(os.path.dirname(__file__), "layers")


@dataclasses.dataclass
class ObjectCase:
    """`make()` returns the object; `model(obj)` returns `(compiled model, x, y)` that
    uses it (or None for an object with no place in a compiled model)."""

    cls: type
    make: Callable
    model: Callable | None = None
    name: str = ""

    @property
    def id(self):
        return self.name or self.cls.__name__


RNG = np.random.default_rng(20)
X = RNG.normal(size=(32, 6)).astype("float32")
Y_REG = (X[:, :1] * 2.0).astype("float32")
Y_CLS = keras.utils.to_categorical((X[:, 1] > 0).astype(int), 2).astype("float32")


def _two_task_model(compile_with):
    inputs = keras.Input((6,))
    trunk = keras.layers.Dense(8, activation="relu")(inputs)
    heads = MultiTaskHead({"reg": 1, "cls": {"units": 2, "activation": "softmax"}})(trunk)
    return inputs, heads, compile_with


def _with_task_loss(obj):
    inputs, heads, _ = _two_task_model(None)
    model = keras.Model(inputs, heads)
    model.compile(
        keras.optimizers.Adam(0.02),
        loss={"reg": obj, "cls": TaskLoss("categorical_crossentropy", task="cls")},
    )
    y_reg = Y_REG.copy()
    y_reg[::4] = np.nan  # missing labels, masked by the loss
    return model, X, {"reg": y_reg, "cls": Y_CLS}


def _with_masked_metric(obj):
    inputs, heads, _ = _two_task_model(None)
    model = keras.Model(inputs, heads)
    model.compile(
        keras.optimizers.Adam(0.02),
        loss={"reg": "mse", "cls": "categorical_crossentropy"},
        metrics={"reg": [obj]},
    )
    return model, X, {"reg": Y_REG, "cls": Y_CLS}


def _with_weighting(obj):
    inputs, heads, _ = _two_task_model(None)
    model = keras.Model(inputs, obj(heads))
    model.compile(
        keras.optimizers.Adam(0.02),
        loss=obj.losses({"reg": "mse", "cls": "categorical_crossentropy"}),
    )
    return model, X, {"reg": Y_REG, "cls": Y_CLS}


def _with_masked_crossentropy(obj):
    inputs, heads, _ = _two_task_model(None)
    model = keras.Model(inputs, heads)
    model.compile(keras.optimizers.Adam(0.02), loss={"reg": "mse", "cls": obj})
    y_cls = Y_CLS.copy()
    y_cls[::5] = np.nan  # missing labels, left out by the loss
    return model, X, {"reg": Y_REG, "cls": y_cls}


def _task_net():
    inputs, heads, _ = _two_task_model(None)
    return keras.Model(inputs, task_outputs(heads))


def _multitask_model(aggregator="famo"):
    return MultiTaskModel(_task_net(), GradientAggregator(aggregator, learning_rate=0.1))


def _compiled_multitask_model(obj):
    model = obj if isinstance(obj, MultiTaskModel) else MultiTaskModel(_task_net(), obj)
    model.compile(
        keras.optimizers.Adam(0.02), loss={"reg": "mse", "cls": "categorical_crossentropy"}
    )
    return model, X, {"reg": Y_REG, "cls": Y_CLS}


def _plain_two_task_model():
    inputs, heads, _ = _two_task_model(None)
    model = keras.Model(inputs, heads)
    model.compile(
        keras.optimizers.Adam(0.02), loss={"reg": "mse", "cls": "categorical_crossentropy"}
    )
    return model


def _pruned():
    return kbm.compress.prune(_plain_two_task_model(), sparsity=0.5)


def _quantize_aware():
    return kbm.compress.quantize_aware(_plain_two_task_model(), calibration_data=X)


def _wrapper_in(build, cls):
    def make():
        return next(layer for layer in build()._flatten_layers() if isinstance(layer, cls))

    def model(_):
        built = build()
        built.compile(
            keras.optimizers.Adam(0.02), loss={"reg": "mse", "cls": "categorical_crossentropy"}
        )
        return built, X, {"reg": Y_REG, "cls": Y_CLS}

    return make, model


def _tabular():
    return zoo.build("tabular", **zoo.get_preset("tabular").tiny)


def _tabular_encoding_case():
    def make():
        layers = _tabular()._flatten_layers()
        return next(layer for layer in layers if isinstance(layer, TabularEncoding))

    def model(_):
        built = _tabular()
        rows = np.stack(
            [RNG.uniform(size=32), 10.0 + RNG.normal(size=32), RNG.integers(0, 2, 32)], axis=1
        ).astype("float32")
        rows[::5, 0] = np.nan  # missing cells, imputed inside the model
        labels = keras.utils.to_categorical((rows[:, 1] > 10).astype(int), 3).astype("float32")
        return built, rows, labels

    return make, model


def _with_image_front(_):
    """A tiny cnn behind the front, on raw 12x10 pixels it resizes to 8x8 itself."""
    built = with_front(zoo.build("cnn", compile=False, **zoo.get_preset("cnn").tiny))
    built.compile(keras.optimizers.Adam(0.02), loss="categorical_crossentropy")
    images = RNG.uniform(0, 255, size=(32, 12, 10, 1)).astype("float32")
    labels = keras.utils.to_categorical((images[:, :6].mean((1, 2, 3)) > 127.5).astype(int), 3)
    return built, images, labels.astype("float32")


CASES = [
    ObjectCase(TaskLoss, lambda: TaskLoss("mse", task="reg", mask_value=-1.0), _with_task_loss),
    ObjectCase(
        MaskedMetric,
        lambda: MaskedMetric("mean_absolute_error", mask_value=-1.0),
        _with_masked_metric,
    ),
    ObjectCase(UncertaintyWeighting, lambda: UncertaintyWeighting(["reg", "cls"]), _with_weighting),
    ObjectCase(DynamicWeighting, lambda: DynamicWeighting(["reg", "cls"]), _with_weighting),
    ObjectCase(ProbabilityDistillation, lambda: ProbabilityDistillation(temperature=2.5)),
    ObjectCase(
        masked_crossentropy.__class__,
        lambda: masked_crossentropy,
        _with_masked_crossentropy,
        name="masked_crossentropy",
    ),
    ObjectCase(
        GradientAggregator,
        lambda: GradientAggregator("gradnorm", learning_rate=0.05),
        _compiled_multitask_model,
    ),
    ObjectCase(MultiTaskModel, _multitask_model, _compiled_multitask_model),
    ObjectCase(PrunedLayer, *_wrapper_in(_pruned, PrunedLayer)),
    ObjectCase(QuantizeAwareLayer, *_wrapper_in(_quantize_aware, QuantizeAwareLayer)),
    ObjectCase(TabularEncoding, *_tabular_encoding_case()),
    ObjectCase(ImagePreprocessing, lambda: ImagePreprocessing(8, 8), _with_image_front),
]
BY_ID = {case.id: case for case in CASES}


def _registered() -> dict[str, type]:
    return {
        key.split(">", 1)[1]: obj
        for key, obj in keras.saving.get_custom_objects().items()
        if key.startswith("keras_bigmodel>")
    }


def _layer_contract_classes() -> set[type]:
    covered = set()
    for info in pkgutil.iter_modules([LAYER_TESTS]):
        for case in getattr(importlib.import_module(f"layers.{info.name}"), "CASES", []):
            covered.add(type(case.build().get_layer(case.layer_name)))
    return covered


@pytest.mark.backend_independent
def test_every_registered_object_runs_a_contract():
    assert zoo.list_presets(), "no preset runs the PresetModel contract"
    assert isinstance(zoo.build(zoo.list_presets()[0], compile=False), PresetModel)
    covered = _layer_contract_classes() | {PresetModel} | {c.cls for c in CASES}
    functions = {c.make() for c in CASES if c.name}
    missing = sorted(
        name
        for name, obj in _registered().items()
        if obj not in covered and not (not isinstance(obj, type) and obj in functions)
    )
    assert not missing, f"registered with Keras but without a contract case: {missing}"


@pytest.mark.backend_independent
@pytest.mark.parametrize("case_id", list(BY_ID))
def test_config_and_serialization_round_trip(case_id):
    obj = BY_ID[case_id].make()
    if inspect.isfunction(obj):
        # A registered function: serialized by name, it deserializes to itself.
        serialized = keras.saving.serialize_keras_object(obj)
        assert keras.saving.deserialize_keras_object(serialized) is obj
        return
    config = obj.get_config()
    again = type(obj).from_config(copy.deepcopy(config)).get_config()  # Keras empties it
    assert canonical_json(again) == canonical_json(config)
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(obj))
    assert type(restored) is type(obj)
    assert canonical_json(restored.get_config()) == canonical_json(config)


def _outputs(model, x):
    return keras.tree.map_structure(
        lambda t: np.asarray(keras.ops.convert_to_numpy(t)), model(x, training=False)
    )


@pytest.mark.parametrize("case_id", [c.id for c in CASES if c.model is not None])
def test_trains_saves_and_reloads_in_a_model(case_id, tmp_path):
    case = BY_ID[case_id]
    keras.utils.set_random_seed(3)
    model, x, y = case.model(case.make())
    before = model.evaluate(x, y, verbose=0, return_dict=True)
    for _ in range(15):
        model.train_on_batch(x, y)
    after = model.evaluate(x, y, verbose=0, return_dict=True)
    assert np.isfinite(after["loss"]) and after["loss"] < before["loss"], (before, after)
    path = kbm.save_model(model, str(tmp_path / f"{case_id}.keras"))
    restored = kbm.load_model(path)
    for got, want in zip(
        keras.tree.flatten(_outputs(restored, x)), keras.tree.flatten(_outputs(model, x))
    ):
        np.testing.assert_allclose(got, want, atol=1e-6)
    again = restored.evaluate(x, y, verbose=0, return_dict=True)
    for key, value in after.items():
        np.testing.assert_allclose(again[key], value, rtol=1e-5, atol=1e-6, err_msg=key)


def test_probability_distillation_is_the_tempered_kl_divergence():
    """Against the formula computed with NumPy: T^2 KL(softmax(log t / T) || softmax(log s / T))."""
    teacher = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]], "float32")
    student = np.array([[0.5, 0.3, 0.2], [0.3, 0.3, 0.4]], "float32")
    temperature = 2.5

    def tempered(p):
        z = np.log(p) / temperature
        e = np.exp(z - z.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)

    pt, ps = tempered(teacher), tempered(student)
    expected = np.mean(np.sum(pt * np.log(pt / ps), axis=-1)) * temperature**2
    loss = ProbabilityDistillation(temperature).compute_loss(teacher, student)
    np.testing.assert_allclose(float(keras.ops.convert_to_numpy(loss)), expected, rtol=1e-5)
