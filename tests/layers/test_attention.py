"""AttentionLayer against the documents' formula, computed independently in NumPy."""

import keras
import numpy as np
import pytest
from harness import layer_case, layer_contract, to_numpy
from keras import ops
from references import softmax as np_softmax

from keras_bigmodel.layers import AttentionLayer
from zoo.presets._plain import DocumentsAttentionLayer  # the documents' code, as written

CASES = [
    layer_case(
        "additive",
        lambda **kw: AttentionLayer(8, **kw),
        [(None, 5)],
        trainable_weights=4,
        non_trainable_weights=0,
    ),
    layer_case("additive_masked", lambda **kw: AttentionLayer(8, **kw), [(None, 5)], masking=True),
    layer_case(
        "dot",
        lambda **kw: AttentionLayer(6, score="dot", **kw),
        [(None, 5)],
        trainable_weights=3,
        non_trainable_weights=0,
    ),
    layer_case(
        "scaled_dot_dropout",
        lambda **kw: AttentionLayer(6, score="scaled_dot", dropout=0.2, seed=3, **kw),
        [(None, 5)],
        masking=True,
        stochastic=True,
    ),
    layer_case(
        "with_scores",
        lambda **kw: AttentionLayer(8, **kw),
        [(None, 5)],
        call_kwargs={"return_attention_scores": True},
    ),
]
test_contract = layer_contract(CASES)


def np_weights(layer, name):
    return np.asarray(ops.convert_to_numpy(getattr(layer, name).kernel)), np.asarray(
        ops.convert_to_numpy(getattr(layer, name).bias)
    )


def np_additive(layer, x):
    """The documents' formula: softmax_t(V(tanh(W x_t))), context = sum_t a_t x_t."""
    wk, wb = np_weights(layer, "W")
    vk, vb = np_weights(layer, "V")
    logits = (np.tanh(x @ wk + wb) @ vk + vb)[..., 0]
    scores = np_softmax(logits, axis=1)
    return (scores[..., None] * x).sum(axis=1), scores


def np_dot(layer, x, scaled):
    wk, wb = np_weights(layer, "W")
    q = np.asarray(ops.convert_to_numpy(layer.query))
    logits = (x @ wk + wb) @ q
    if scaled:
        logits = logits / np.sqrt(layer.units)
    scores = np_softmax(logits, axis=1)
    return (scores[..., None] * x).sum(axis=1), scores


@pytest.fixture
def x():
    return np.random.default_rng(0).normal(size=(3, 7, 5)).astype("float32")


def test_weights_are_the_documents(x):
    layer = AttentionLayer(4)
    layer(x)
    shapes = {w.path.split("/", 1)[1]: tuple(w.shape) for w in layer.weights}
    assert shapes == {"W/kernel": (5, 4), "W/bias": (4,), "V/kernel": (4, 1), "V/bias": (1,)}


@pytest.mark.parametrize("shape", [(3, 7, 5), (2, 40, 30)], ids=["product-path", "matmul-path"])
def test_additive_equals_numpy_formula(shape):
    x = np.random.default_rng(1).normal(size=shape).astype("float32")
    layer = AttentionLayer(4)
    context, scores = to_numpy(layer(x, return_attention_scores=True))
    ref_context, ref_scores = np_additive(layer, x.astype("float64"))
    np.testing.assert_allclose(context, ref_context, atol=1e-5)
    np.testing.assert_allclose(scores, ref_scores, atol=1e-6)


def test_additive_equals_documents_layer_with_same_weights(x):
    ours = AttentionLayer(4)
    theirs = DocumentsAttentionLayer(4)
    ours(x)
    theirs(x)
    for src, dst in ((ours.W, theirs.W), (ours.V, theirs.V)):
        dst.set_weights(src.get_weights())
    np.testing.assert_allclose(to_numpy(ours(x)), to_numpy(theirs(x)), atol=1e-6)


@pytest.mark.parametrize("score", ["dot", "scaled_dot"])
def test_dot_scores_equal_numpy(x, score):
    layer = AttentionLayer(6, score=score)
    context, scores = to_numpy(layer(x, return_attention_scores=True))
    ref_context, ref_scores = np_dot(layer, x.astype("float64"), scaled=score == "scaled_dot")
    np.testing.assert_allclose(context, ref_context, atol=1e-5)
    np.testing.assert_allclose(scores, ref_scores, atol=1e-6)


def test_masked_equals_truncated_sequence(x):
    layer = AttentionLayer(4)
    lengths = [7, 4, 1]
    mask = np.arange(7)[None, :] < np.array(lengths)[:, None]
    padded = np.where(mask[..., None], x, 123.0).astype("float32")  # junk in masked steps
    context, scores = to_numpy(layer(padded, mask=mask, return_attention_scores=True))
    for row, n in enumerate(lengths):
        alone = to_numpy(layer(x[row : row + 1, :n]))
        np.testing.assert_allclose(context[row], alone[0], atol=1e-5)
        assert np.all(scores[row, n:] == 0.0)
        np.testing.assert_allclose(scores[row, :n].sum(), 1.0, atol=1e-6)


def test_masking_layer_and_embedding_mask_propagate():
    tokens = np.array([[3, 5, 2, 0, 0], [7, 0, 0, 0, 0]], dtype="int32")
    inp = keras.Input(shape=(None,), dtype="int32")
    emb = keras.layers.Embedding(10, 4, mask_zero=True)
    layer = AttentionLayer(3)
    context, scores = layer(emb(inp), return_attention_scores=True)
    model = keras.Model(inp, [context, scores])
    _, s = to_numpy(model(tokens))
    np.testing.assert_allclose(s.sum(axis=1), 1.0, atol=1e-6)
    assert np.all(s[0, 3:] == 0) and np.all(s[1, 1:] == 0)
    np.testing.assert_allclose(s[1, 0], 1.0)


@pytest.mark.parametrize("policy", ["float32", "mixed_float16", "float16", "mixed_bfloat16"])
def test_all_masked_row_gives_zeros_not_nan(x, policy):
    layer = AttentionLayer(4, dtype=policy)
    mask = np.ones((3, 7), dtype=bool)
    mask[1] = False
    context, scores = to_numpy(layer(x, mask=mask, return_attention_scores=True))
    assert np.all(np.isfinite(context)) and np.all(np.isfinite(scores))
    assert np.all(context[1] == 0) and np.all(scores[1] == 0)
    np.testing.assert_allclose(scores[[0, 2]].astype("float64").sum(axis=1), 1.0, atol=1e-2)


@pytest.mark.parametrize("policy", ["float32", "float16"])
def test_extreme_logits_stay_finite(x, policy):
    layer = AttentionLayer(4, dtype=policy)
    layer(x)
    layer.V.kernel.assign(np.full((4, 1), 1e4 / 4, dtype="float32"))  # logits near 1e4
    context, scores = to_numpy(layer(x, return_attention_scores=True))
    assert np.all(np.isfinite(context)) and np.all(np.isfinite(scores))
    np.testing.assert_allclose(scores.astype("float64").sum(axis=1), 1.0, atol=1e-2)


def test_scores_sum_to_one_and_dropout_only_in_training(x):
    layer = AttentionLayer(4, dropout=0.5, seed=1)
    eval_context, scores = to_numpy(layer(x, return_attention_scores=True))
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(to_numpy(layer(x, training=False)), eval_context, atol=1e-6)
    assert not np.allclose(to_numpy(layer(x, training=True)), eval_context, atol=1e-4)


def test_symbolic_output_shapes():
    inp = keras.Input(shape=(None, 5))
    context, scores = AttentionLayer(4)(inp, return_attention_scores=True)
    assert tuple(context.shape) == (None, 5)
    assert tuple(scores.shape) == (None, None)
    assert tuple(AttentionLayer(4)(inp).shape) == (None, 5)


def test_drops_into_sequential_and_subclassed_models(x):
    seq = keras.Sequential([keras.Input((7, 5)), AttentionLayer(4), keras.layers.Dense(2)])
    assert to_numpy(seq(x)).shape == (3, 2)

    class Classifier(keras.Model):
        def __init__(self):
            super().__init__()
            self.encoder = keras.layers.LSTM(8, return_sequences=True)
            self.pool = AttentionLayer(4)
            self.out = keras.layers.Dense(2)

        def call(self, inputs):
            return self.out(self.pool(self.encoder(inputs)))

    assert to_numpy(Classifier()(x)).shape == (3, 2)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"units": 0}, "units"),
        ({"units": -3}, "units"),
        ({"units": 2.5}, "units"),
        ({"units": "8"}, "units"),
        ({"units": True}, "units"),
        ({"units": 4, "score": "cosine"}, "score"),
        ({"units": 4, "dropout": 1.0}, "dropout"),
        ({"units": 4, "dropout": -0.1}, "dropout"),
        ({"units": 4, "use_bias": "yes"}, "use_bias"),
        ({"units": 4, "kernel_initializer": "no_such_init"}, "kernel_initializer"),
        ({"units": 4, "seed": 1.5}, "seed"),
    ],
)
def test_bad_constructor_arguments_name_the_argument(kwargs, name):
    with pytest.raises(ValueError, match=rf"`{name}`.*Received: {name}="):
        AttentionLayer(**kwargs)


@pytest.mark.parametrize("shape", [(3, 5), (2, 3, 4, 5)])
def test_wrong_input_rank_is_a_clear_error(shape):
    with pytest.raises(ValueError, match=r"expects `inputs` of rank 3.*Received: inputs.shape="):
        AttentionLayer(4)(np.zeros(shape, "float32"))


def test_unknown_feature_dimension_is_a_clear_error():
    with pytest.raises(ValueError, match="last dimension of `inputs` to be known"):
        AttentionLayer(4)(keras.Input(shape=(5, None)))


def test_wrong_mask_rank_is_a_clear_error(x):
    with pytest.raises(ValueError, match=r"`mask` of rank 2"):
        AttentionLayer(4)(x, mask=np.ones((3, 7, 5), bool))
