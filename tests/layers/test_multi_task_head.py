"""MultiTaskHead: named heads, per-task compile settings, errors, and the contract."""

import keras
import numpy as np
import pytest
from harness import layer_case, layer_contract, to_numpy
from references import dense as np_dense

from keras_bigmodel.layers import MultiTaskHead, TaskHead

CASES = [
    layer_case(
        "two_tasks",
        lambda **kw: MultiTaskHead(
            {"digit": {"units": 3, "activation": "softmax", "hidden_units": [5]}, "parity": 2}, **kw
        ),
        [(12,)],
        trainable_weights=6,
        non_trainable_weights=0,
    ),
]
CASES.append(
    layer_case(
        "one_input_per_task",
        lambda **kw: MultiTaskHead(
            {"digit": {"units": 3, "activation": "softmax"}, "parity": 2}, **kw
        ),
        [(6,), (4,)],
        names=["digit", "parity"],
        trainable_weights=4,
    )
)
test_contract = layer_contract(CASES)


@pytest.fixture
def x():
    return np.random.default_rng(0).normal(size=(6, 12)).astype("float32")


def test_multitask_head_returns_named_heads(x):
    layer = MultiTaskHead({"digit": {"units": 10, "activation": "softmax"}, "parity": 2})
    out = to_numpy(layer(x))
    assert sorted(out) == ["digit", "parity"]
    assert out["digit"].shape == (6, 10) and out["parity"].shape == (6, 2)
    np.testing.assert_allclose(out["digit"].sum(-1), 1.0, atol=1e-6)
    np.testing.assert_allclose(
        out["parity"], np_dense(layer.heads["parity"].output_dense, x), atol=1e-5
    )


def _documents_multitask_model():
    inputs = keras.Input(shape=(64,))
    x = keras.layers.Dense(128, activation="relu")(inputs)
    outputs = MultiTaskHead(
        {
            "task1": {"units": 10, "activation": "softmax"},
            "task2": {"units": 5, "activation": "softmax"},
        }
    )(x)
    return keras.Model(inputs, outputs)


def test_documents_multitask_parameter_count():
    assert _documents_multitask_model().count_params() == 10_255


def test_compile_takes_per_task_losses_weights_and_metrics():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(64, 64)).astype("float32")
    y = {
        "task1": keras.utils.to_categorical(rng.integers(0, 10, 64), 10),
        "task2": keras.utils.to_categorical(rng.integers(0, 5, 64), 5),
    }
    model = _documents_multitask_model()
    model.compile(
        optimizer="adam",
        loss={"task1": "categorical_crossentropy", "task2": "categorical_crossentropy"},
        loss_weights={"task1": 1.0, "task2": 0.25},
        metrics={"task1": ["accuracy"], "task2": ["accuracy"]},
    )
    logs = model.evaluate(x, y, verbose=0, return_dict=True)
    assert {"task1_loss", "task2_loss", "task1_accuracy", "task2_accuracy"} <= set(logs)
    np.testing.assert_allclose(
        logs["loss"], logs["task1_loss"] + 0.25 * logs["task2_loss"], rtol=1e-4
    )
    pred = model.predict(x, verbose=0)
    ce1 = -np.mean(np.sum(y["task1"] * np.log(pred["task1"]), axis=-1))
    np.testing.assert_allclose(logs["task1_loss"], ce1, rtol=1e-4)
    history = model.fit(x, y, epochs=3, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]


@pytest.mark.parametrize(
    "tasks, match",
    [
        ({}, r"`tasks` must be a non-empty dict"),
        ([("a", 3)], r"`tasks` must be a non-empty dict"),
        ({"a/b": 3}, r"Task names .* Received: task name 'a/b'"),
        ({"": 3}, r"Task names"),
        ({"a": {"activation": "softmax"}}, r"`tasks\['a'\]` must give 'units'"),
        ({"a": {"units": 3, "colour": "red"}}, r"unknown keys \['colour'\]"),
        ({"a": "ten"}, r"`tasks\['a'\]` must be a positive integer"),
        ({"a": TaskHead(3)}, r"not a TaskHead instance"),
        ({"a": 0}, r"`units`.*Received: units=0"),
    ],
)
def test_multitask_head_bad_tasks(tasks, match):
    with pytest.raises(ValueError, match=match):
        MultiTaskHead(tasks)


def test_wrong_input_rank_is_a_clear_error():
    with pytest.raises(ValueError, match=r"expects `inputs` of rank 2 or more"):
        MultiTaskHead({"a": 3})(np.zeros((4,), "float32"))


def test_a_dict_keyed_by_task_feeds_each_head_its_own_input(x):
    layer = MultiTaskHead({"a": 2, "b": 3})
    shared = to_numpy(layer(x))
    other = x[:, ::-1].copy()
    out = to_numpy(layer({"a": x, "b": other}))
    np.testing.assert_allclose(out["a"], shared["a"], atol=1e-6)
    np.testing.assert_allclose(out["b"], np_dense(layer.heads["b"].output_dense, other), atol=1e-5)
    with pytest.raises(
        ValueError,
        match=r"a dict keyed by its tasks \['a', 'b'\]. Received a "
        r"dict keyed by \['a', 'c'\]",
    ):
        layer({"a": x, "c": x})
