"""Fusion: every mode against NumPy, named and missing modalities, masks, errors, and the
contract."""

import keras
import numpy as np
import pytest
from harness import layer_case, layer_contract, to_numpy
from keras import ops
from references import softmax as np_softmax

from keras_bigmodel.layers import Fusion, FusionConcat

RNG = np.random.default_rng(0)
A = RNG.normal(size=(5, 6)).astype("float32")
B = RNG.normal(size=(5, 6)).astype("float32")
C = RNG.normal(size=(5, 3)).astype("float32")

CASES = [
    layer_case(
        "concat_projected",
        lambda **kw: Fusion("concat", units=4, **kw),
        [(6,), (3,)],
        trainable_weights=4,
        non_trainable_weights=0,
    ),
    layer_case(
        "sum",
        lambda **kw: Fusion("sum", **kw),
        [(5,), (5,), (5,)],
        quantizable=False,
        trainable_weights=0,
    ),
    layer_case(
        "mean_masked_sequences",
        lambda **kw: Fusion("mean", **kw),
        [(None, 5), (None, 5)],
        masking=True,
        quantizable=False,
    ),
    layer_case(
        "max_projected", lambda **kw: Fusion("max", units=4, activation="relu", **kw), [(6,), (3,)]
    ),
    layer_case(
        "weighted",
        lambda **kw: Fusion("weighted", branch_weights=[3.0, 1.0], **kw),
        [(5,), (5,)],
        quantizable=False,
        trainable_weights=1,
    ),
    layer_case(
        "gated", lambda **kw: Fusion("gated", units=4, **kw), [(6,), (3,)], trainable_weights=6
    ),
    layer_case("gated_sequences", lambda **kw: Fusion("gated", **kw), [(None, 4), (None, 4)]),
    layer_case(
        "attention",
        lambda **kw: Fusion("attention", units=5, **kw),
        [(6,), (3,), (4,)],
        trainable_weights=10,
    ),
    layer_case(
        "attention_named_weights",
        lambda **kw: Fusion("attention", units=4, **kw),
        [(6,), (3,)],
        names=["image", "text"],
        call_kwargs={"return_weights": True},
    ),
    layer_case(
        "gated_modality_dropout",
        lambda **kw: Fusion("gated", units=4, modality_dropout=0.5, seed=2, **kw),
        [(6,), (3,)],
        stochastic=True,
        trainable_weights=6,
        non_trainable_weights=0,
    ),
]
test_contract = layer_contract(CASES)


def w(var):
    return np.asarray(ops.convert_to_numpy(var), dtype="float64")


@pytest.mark.parametrize(
    "mode, reference",
    [
        ("sum", lambda xs: xs[0] + xs[1]),
        ("mean", lambda xs: (xs[0] + xs[1]) / 2),
        ("max", lambda xs: np.maximum(xs[0], xs[1])),
        ("concat", lambda xs: np.concatenate(xs, -1)),
    ],
)
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


@pytest.mark.parametrize(
    "kwargs, name",
    [
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
    ],
)
def test_bad_constructor_arguments(kwargs, name):
    with pytest.raises(ValueError, match=rf"`{name}`.*Received: {name}="):
        Fusion(**kwargs)


@pytest.mark.parametrize("layer", [FusionConcat(), Fusion("sum")], ids=["concat", "fusion"])
def test_needs_a_list_of_two_branches(layer):
    with pytest.raises(
        ValueError,
        match=r"must be called on a list \(or a dict of named branches\) of at least two",
    ):
        layer(A)
    with pytest.raises(
        ValueError,
        match=r"must be called on a list \(or a dict of named branches\) of at least two",
    ):
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


# ---------------------------------------------------------------- named and missing
def test_dict_branches_fuse_in_sorted_name_order():
    layer = Fusion("weighted", branch_weights=[3, 1])
    out = to_numpy(layer({"text": B, "image": A}))  # sorted: image (3/4), text (1/4)
    np.testing.assert_allclose(out, 0.75 * A + 0.25 * B, atol=1e-6)
    assert layer.branch_names == ["image", "text"]


def _present(*rows):
    return np.array(rows, "float32")


def test_mean_and_sum_count_only_present_branches():
    present = _present(*[[1, 0]] * 3, *[[1, 1]] * 2)
    out = to_numpy(Fusion("mean")([A, B], modality_mask=present))
    expected = np.where(present[:, 1:] > 0, (A + B) / 2, A)
    np.testing.assert_allclose(out, expected, atol=1e-6)
    out = to_numpy(Fusion("sum")([A, B], modality_mask=present))
    np.testing.assert_allclose(out, A + B * present[:, 1:], atol=1e-6)


def test_max_ignores_missing_branches_and_nothing_present_gives_zeros():
    present = _present([0, 1], [1, 0], [0, 0], [1, 1], [1, 1])
    out = to_numpy(Fusion("max")([A, B], modality_mask=present))
    np.testing.assert_allclose(out[0], B[0])
    np.testing.assert_allclose(out[1], A[1])
    np.testing.assert_allclose(out[2], np.zeros(6))
    np.testing.assert_allclose(out[3:], np.maximum(A, B)[3:])


@pytest.mark.parametrize("mode", ["weighted", "gated", "attention"])
def test_weighting_modes_renormalise_over_present_branches(mode):
    layer = Fusion(mode, units=4) if mode != "weighted" else Fusion(mode, branch_weights=[1, 2, 1])
    present = _present([1, 0, 1], [0, 1, 0], [1, 1, 1], [1, 1, 0], [0, 0, 1])
    fused, weights = layer([A, B, A[:, ::-1]], modality_mask=present, return_weights=True)
    weights = to_numpy(weights)
    np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-5)
    assert np.all(weights[present == 0] == 0)
    # A branch that is missing changes nothing: replace it by noise, same output.
    noisy = to_numpy(layer([A, B * 100 + 7, A[:, ::-1]], modality_mask=present))
    rows = present[:, 1] == 0
    np.testing.assert_allclose(noisy[rows], to_numpy(fused)[rows], atol=1e-5)


def test_gated_with_one_branch_present_is_that_branch():
    layer = Fusion("gated", units=4)
    out = to_numpy(layer([A, C], modality_mask=_present(*[[0, 1]] * 5)))
    p = layer.projections[1]
    np.testing.assert_allclose(out, np.tanh(C @ w(p.kernel) + w(p.bias)), atol=1e-5)


def test_attention_weights_equal_numpy():
    layer = Fusion("attention")
    _, weights = layer([A, B], return_weights=True)
    att = layer.attention
    stacked = np.stack([A, B], axis=1).astype("float64")
    logits = np.tanh(stacked @ w(att.W.kernel) + w(att.W.bias)) @ w(att.V.kernel) + w(att.V.bias)
    np.testing.assert_allclose(to_numpy(weights), np_softmax(logits[..., 0], 1), atol=1e-5)


def test_named_modality_mask():
    layer = Fusion("mean")
    out = to_numpy(
        layer({"image": A, "text": B}, modality_mask={"image": np.ones(5), "text": np.zeros(5)})
    )
    np.testing.assert_allclose(out, A, atol=1e-6)
    with pytest.raises(ValueError, match=r"`modality_mask` keys must be the branch names"):
        layer({"image": A, "text": B}, modality_mask={"image": np.ones(5)})
    with pytest.raises(ValueError, match=r"`modality_mask` must have shape \(batch, 2\)"):
        Fusion("mean")([A, B], modality_mask=np.ones((5, 3)))


def test_modality_dropout_drops_whole_branches_only_in_training():
    many_a = np.repeat(A[:1], 400, axis=0)
    many_b = np.repeat(B[:1], 400, axis=0)
    layer = Fusion("mean", modality_dropout=0.5, seed=3)
    np.testing.assert_allclose(to_numpy(layer([many_a, many_b])), (many_a + many_b) / 2, atol=1e-6)
    out = to_numpy(layer([many_a, many_b], training=True))
    only_a = np.all(np.isclose(out, many_a), axis=-1)
    only_b = np.all(np.isclose(out, many_b), axis=-1)
    both = np.all(np.isclose(out, (many_a + many_b) / 2), axis=-1)
    assert np.all(only_a | only_b | both)  # never nothing, never a partial branch
    # Each branch is dropped with p=0.5; when both would go, both stay: P(both) = 1/2.
    assert 0.15 < only_a.mean() < 0.35 and 0.15 < only_b.mean() < 0.35, (
        only_a.mean(),
        only_b.mean(),
    )


def test_return_weights_needs_a_weighting_mode():
    with pytest.raises(ValueError, match=r"mode='sum' has no per-branch weights"):
        Fusion("sum")([A, B], return_weights=True)
    with pytest.raises(ValueError, match=r"`modality_dropout`.*Received: modality_dropout=1"):
        Fusion("sum", modality_dropout=1)


def test_gradients_stay_finite_with_missing_branches():
    inputs = [keras.Input((6,)), keras.Input((6,))]
    mask = keras.Input((2,))
    out = Fusion("gated", units=3)(inputs, modality_mask=mask)
    model = keras.Model([*inputs, mask], keras.layers.Dense(1)(out))
    model.compile("adam", "mse")
    present = _present(*[[1, 0]] * 5)
    loss = model.train_on_batch([A, B * np.nan, present], np.ones((5, 1)))
    assert np.isfinite(loss)
