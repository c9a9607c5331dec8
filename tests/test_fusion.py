"""FusionConcat and Fusion: every mode against NumPy, masks, and errors."""

import keras
import numpy as np
import pytest
from keras import ops

from harness import to_numpy
from keras_bigmodel.layers import Fusion, FusionConcat

RNG = np.random.default_rng(0)
A = RNG.normal(size=(5, 6)).astype("float32")
B = RNG.normal(size=(5, 6)).astype("float32")
C = RNG.normal(size=(5, 3)).astype("float32")


def w(var):
    return np.asarray(ops.convert_to_numpy(var), dtype="float64")


def np_softmax(z, axis=-1):
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def test_fusion_concat_is_the_documents_fusion():
    np.testing.assert_array_equal(to_numpy(FusionConcat()([A, C])), np.concatenate([A, C], -1))
    input1, input2 = keras.Input(shape=(10,)), keras.Input(shape=(10,))
    dense1 = keras.layers.Dense(1, activation="sigmoid")(input1)
    dense2 = keras.layers.Dense(1, activation="sigmoid")(input2)
    output = FusionConcat(axis=-1)([dense1, dense2])
    model = keras.Model([input1, input2], output)
    assert tuple(output.shape) == (None, 2)
    assert model.count_params() == 22


@pytest.mark.parametrize("mode, reference", [
    ("sum", lambda xs: xs[0] + xs[1]),
    ("mean", lambda xs: (xs[0] + xs[1]) / 2),
    ("max", lambda xs: np.maximum(xs[0], xs[1])),
    ("concat", lambda xs: np.concatenate(xs, -1)),
])
def test_elementwise_modes(mode, reference):
    np.testing.assert_allclose(to_numpy(Fusion(mode)([A, B])), reference([A, B]), atol=1e-6)


def test_weighted_mode_uses_normalised_branch_weights():
    layer = Fusion("weighted", branch_weights=[3, 1])
    np.testing.assert_allclose(to_numpy(layer([A, B])), 0.75 * A + 0.25 * B, atol=1e-6)
    equal = Fusion("weighted")
    np.testing.assert_allclose(to_numpy(equal([A, B])), 0.5 * (A + B), atol=1e-6)
    assert len(layer.trainable_weights) == 1


def test_projected_mode_uses_one_dense_per_branch():
    layer = Fusion("sum", units=4, activation="relu")
    out = to_numpy(layer([A, C]))
    ref = sum(np.maximum(x @ w(p.kernel) + w(p.bias), 0) for p, x in zip(layer.projections, [A, C]))
    np.testing.assert_allclose(out, ref, atol=1e-5)


def test_gated_mode_equals_numpy():
    layer = Fusion("gated", units=4)
    out = to_numpy(layer([A, C]))
    h = [np.tanh(x @ w(p.kernel) + w(p.bias)) for p, x in zip(layer.projections, [A, C])]
    gate = np.concatenate([A, C], -1) @ w(layer.gate.kernel) + w(layer.gate.bias)
    z = np_softmax(gate.reshape(5, 2, 4), axis=1)
    np.testing.assert_allclose(out, z[:, 0] * h[0] + z[:, 1] * h[1], atol=1e-5)


def test_attention_mode_equals_numpy():
    layer = Fusion("attention")
    out = to_numpy(layer([A, B]))
    att = layer.attention
    stacked = np.stack([A, B], axis=1).astype("float64")
    logits = np.tanh(stacked @ w(att.W.kernel) + w(att.W.bias)) @ w(att.V.kernel) + w(att.V.bias)
    a = np_softmax(logits[..., 0], axis=1)
    np.testing.assert_allclose(out, (a[..., None] * stacked).sum(1), atol=1e-5)


def test_output_mask_is_the_and_of_branch_masks():
    x = np.ones((2, 4, 3), "float32")
    x1 = x.copy()
    x1[0, 3] = 0
    x2 = x.copy()
    x2[1, 0] = 0
    i1, i2 = keras.Input((4, 3)), keras.Input((4, 3))
    fused = Fusion("mean")([keras.layers.Masking()(i1), keras.layers.Masking()(i2)])
    assert fused._keras_mask is not None  # masks reach the next layer
    layer = Fusion("mean")
    mask = to_numpy(layer.compute_mask([x1, x2], [np.any(x1 != 0, -1), np.any(x2 != 0, -1)]))
    np.testing.assert_array_equal(mask, [[1, 1, 1, 0], [0, 1, 1, 1]])


def test_time_axis_concat_concatenates_masks():
    layer = FusionConcat(axis=1)
    m1 = np.array([[1, 1, 0]], bool)
    m2 = np.array([[1, 0]], bool)
    mask = to_numpy(layer.compute_mask([np.ones((1, 3, 2)), np.ones((1, 2, 2))], [m1, m2]))
    np.testing.assert_array_equal(mask, [[1, 1, 0, 1, 0]])
    mask = to_numpy(Fusion("concat", axis=1).compute_mask(
        [np.ones((1, 3, 2)), np.ones((1, 2, 2))], [m1, None]))
    np.testing.assert_array_equal(mask, [[1, 1, 0, 1, 1]])


@pytest.mark.parametrize("kwargs, name", [
    ({"mode": "product"}, "mode"),
    ({"mode": "sum", "units": 0}, "units"),
    ({"mode": "gated", "activation": "nope"}, "activation"),
    ({"mode": "sum", "attention_units": 4}, "attention_units"),
    ({"mode": "attention", "attention_units": -1}, "attention_units"),
    ({"mode": "sum", "branch_weights": [1, 1]}, "branch_weights"),
    ({"mode": "weighted", "branch_weights": [1, -1]}, "branch_weights"),
    ({"mode": "weighted", "branch_weights": "ab"}, "branch_weights"),
    ({"mode": "sum", "axis": 1}, "axis"),
    ({"mode": "concat", "axis": 1.0}, "axis"),
])
def test_bad_constructor_arguments(kwargs, name):
    with pytest.raises(ValueError, match=rf"`{name}`.*Received: {name}="):
        Fusion(**kwargs)


def test_fusion_concat_bad_axis():
    with pytest.raises(ValueError, match=r"`axis`.*Received: axis='1'"):
        FusionConcat(axis="1")
    with pytest.raises(ValueError, match=r"axis=3, outside the rank 2"):
        FusionConcat(axis=3)([A, B])


@pytest.mark.parametrize("layer", [FusionConcat(), Fusion("sum")], ids=["concat", "fusion"])
def test_needs_a_list_of_two_branches(layer):
    with pytest.raises(ValueError, match=r"must be called on a list of at least two branch"):
        layer(A)
    with pytest.raises(ValueError, match=r"must be called on a list of at least two branch"):
        layer([A])


def test_mismatched_branch_shapes_are_named():
    with pytest.raises(ValueError, match=r"same feature size, or `units=`.*\(5, 6\), \(5, 3\)"):
        Fusion("sum")([A, C])
    with pytest.raises(ValueError, match=r"axis 0 differs"):
        FusionConcat()([A, np.zeros((4, 3), "float32")])
    with pytest.raises(ValueError, match=r"same rank"):
        Fusion("concat")([A, np.zeros((5, 2, 3), "float32")])
    with pytest.raises(ValueError, match=r"got 2 branches but 3 branch_weights"):
        Fusion("weighted", branch_weights=[1, 1, 1])([A, B])
    with pytest.raises(ValueError, match=r"mode='attention' needs rank-2 branches"):
        Fusion("attention")([np.zeros((2, 3, 4), "float32")] * 2)
