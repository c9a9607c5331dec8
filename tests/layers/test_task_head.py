"""TaskHead: NumPy references, dropout, errors, and the contract."""

import numpy as np
import pytest
from harness import layer_case, layer_contract, to_numpy
from references import dense as np_dense

from keras_bigmodel.layers import TaskHead

CASES = [
    layer_case(
        "softmax",
        lambda **kw: TaskHead(3, activation="softmax", **kw),
        [(12,)],
        trainable_weights=2,
        non_trainable_weights=0,
    ),
    layer_case(
        "hidden_dropout",
        lambda **kw: TaskHead(4, hidden_units=(8, 6), dropout=0.1, seed=1, **kw),
        [(None, 12)],
        stochastic=True,
        trainable_weights=6,
    ),
]
test_contract = layer_contract(CASES)


@pytest.fixture
def x():
    return np.random.default_rng(0).normal(size=(6, 12)).astype("float32")


def test_task_head_equals_numpy(x):
    head = TaskHead(3, activation="softmax", hidden_units=(8, 5))
    out = to_numpy(head(x))
    h = np_dense(head.hidden_layers[0], x.astype("float64"), "relu")
    h = np_dense(head.hidden_layers[1], h, "relu")
    np.testing.assert_allclose(out, np_dense(head.output_dense, h, "softmax"), atol=1e-6)


def test_task_head_dropout_only_in_training(x):
    head = TaskHead(4, hidden_units=(32,), dropout=0.5, seed=0)
    ref = to_numpy(head(x))
    np.testing.assert_allclose(to_numpy(head(x, training=False)), ref)
    assert not np.allclose(to_numpy(head(x, training=True)), ref)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"units": 0}, "units"),
        ({"units": 3, "activation": "relux"}, "activation"),
        ({"units": 3, "hidden_units": [8, 0]}, "hidden_units"),
        ({"units": 3, "hidden_units": "8"}, "hidden_units"),
        ({"units": 3, "dropout": 1.5}, "dropout"),
        ({"units": 3, "use_bias": 1}, "use_bias"),
    ],
)
def test_task_head_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=rf"`{name}`.*Received: {name}="):
        TaskHead(**kwargs)


def test_wrong_input_rank_is_a_clear_error():
    with pytest.raises(ValueError, match=r"expects `inputs` of rank 2 or more"):
        TaskHead(3)(np.zeros((4,), "float32"))
