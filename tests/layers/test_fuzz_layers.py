"""Property-based tests of the layers.

Two properties per layer: with valid arguments and inputs (any sizes, float dtypes,
masks, logits up to 1e4) the layer must work: finite outputs that survive a `.keras`
save/reload unchanged; with arbitrary arguments and inputs it must either work or
raise ValueError/TypeError with a message, never a backend traceback, NaN or crash.
"""

import os
import tempfile

import keras
import numpy as np
from harness import assert_outputs_close, forward
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import keras_bigmodel as kbm
from keras_bigmodel.layers import AttentionLayer, Fusion, FusionConcat, MultiTaskHead, TaskHead
from keras_bigmodel.layers.attention import SCORE_FUNCTIONS
from keras_bigmodel.layers.fusion import FUSION_MODES

FUZZ = settings(
    # Drawn deterministically (derandomize); JAX and PyTorch, whose passes cost the most
    # per example, run half as many (test-time budget).
    max_examples=12 if keras.backend.backend() == "tensorflow" else 6,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

junk = st.one_of(
    st.integers(-3, 0),
    st.floats(allow_nan=True),
    st.text(max_size=3),
    st.none(),
    st.booleans(),
    st.lists(st.integers(), max_size=2),
)
float_dtypes = st.sampled_from(["float16", "float32", "float64"])
any_dtypes = st.sampled_from(["float16", "float32", "float64", "int32", "bool"])
seeds = st.integers(0, 2**16)


def _array(seed, shape, dtype, scale=1.0):
    data = np.random.default_rng(seed).normal(size=shape) * scale
    return data.astype(dtype)


def _run(make_model, inputs, must_work):
    """Runs the example: it must work, or (unless must_work) raise a clean error."""
    try:
        model = make_model()
        outputs = forward(model, inputs)
    except (ValueError, TypeError) as e:
        assert not must_work, f"valid example refused: {type(e).__name__}: {e}"
        assert str(e).strip(), "an error without a message"
        event(f"refused with {type(e).__name__}")
        return
    event("worked")
    for out in keras.tree.flatten(outputs):
        assert np.all(np.isfinite(np.asarray(out, dtype="float64"))), "non-finite output"
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "m.keras")
        kbm.save_model(model, path)
        assert_outputs_close(forward(kbm.load_model(path), inputs), outputs, atol=1e-6)


def _functional(layer_fn, arrays, mask=None):
    def make():
        symbols = [keras.Input(batch_shape=(None,) + a.shape[1:], dtype=a.dtype) for a in arrays]
        x = symbols[0] if len(symbols) == 1 else symbols
        kwargs = {} if mask is None else {"mask": keras.ops.convert_to_tensor(mask)}
        out = layer_fn()(x, **kwargs)
        return keras.Model(symbols[0] if len(symbols) == 1 else symbols, out)

    return make


def _inputs(arrays):
    return arrays[0] if len(arrays) == 1 else arrays


# ------------------------------------------------------------------ AttentionLayer
@FUZZ
@given(
    seed=seeds,
    units=st.integers(1, 8),
    score=st.sampled_from(SCORE_FUNCTIONS),
    dropout=st.floats(0, 0.9),
    time=st.integers(1, 6),
    features=st.integers(1, 5),
    dtype=float_dtypes,
    scale=st.sampled_from([1.0, 1e2, 1e4]),
    masked=st.sampled_from(["none", "some", "all"]),
)
def test_attention_valid_examples_work(
    seed, units, score, dropout, time, features, dtype, scale, masked
):
    x = _array(seed, (3, time, features), dtype, scale)
    mask = None
    if masked != "none":
        mask = np.random.default_rng(seed).random((3, time)) > 0.5
        mask[0] = masked == "some"  # one row fully kept or fully masked
    make = _functional(lambda: AttentionLayer(units, score=score, dropout=dropout), [x], mask)
    _run(make, x, must_work=True)


@FUZZ
@given(
    seed=seeds,
    units=st.one_of(st.integers(1, 8), junk),
    score=st.one_of(st.sampled_from(SCORE_FUNCTIONS), junk),
    dropout=st.one_of(st.floats(0, 0.9), junk),
    shape=st.lists(st.integers(1, 5), min_size=0, max_size=4),
    dtype=any_dtypes,
)
def test_attention_anything_works_or_fails_cleanly(seed, units, score, dropout, shape, dtype):
    x = _array(seed, [3] + shape, dtype)
    _run(_functional(lambda: AttentionLayer(units, score=score, dropout=dropout), [x]), x, False)


# ------------------------------------------------------------------------ TaskHead
@FUZZ
@given(
    seed=seeds,
    units=st.integers(1, 8),
    hidden=st.lists(st.integers(1, 6), max_size=3),
    activation=st.sampled_from([None, "softmax", "relu", "sigmoid", "tanh"]),
    dropout=st.floats(0, 0.9),
    shape=st.lists(st.integers(1, 5), min_size=1, max_size=3),
    dtype=float_dtypes,
)
def test_task_head_valid_examples_work(seed, units, hidden, activation, dropout, shape, dtype):
    x = _array(seed, [3] + shape, dtype)
    make = _functional(
        lambda: TaskHead(units, activation=activation, hidden_units=hidden, dropout=dropout), [x]
    )
    _run(make, x, must_work=True)


@FUZZ
@given(
    seed=seeds,
    units=st.one_of(st.integers(1, 8), junk),
    hidden=st.one_of(st.lists(st.integers(-1, 6), max_size=3), junk),
    activation=st.one_of(st.sampled_from(["softmax", "relu", None]), junk),
    dropout=st.one_of(st.floats(0, 0.9), junk),
    shape=st.lists(st.integers(1, 5), min_size=0, max_size=3),
    dtype=any_dtypes,
)
def test_task_head_anything_works_or_fails_cleanly(
    seed, units, hidden, activation, dropout, shape, dtype
):
    x = _array(seed, [3] + shape, dtype)
    make = _functional(
        lambda: TaskHead(units, activation=activation, hidden_units=hidden, dropout=dropout), [x]
    )
    _run(make, x, False)


# ------------------------------------------------------------------- MultiTaskHead
valid_task_names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,5}", fullmatch=True)


@FUZZ
@given(
    seed=seeds,
    features=st.integers(1, 6),
    tasks=st.dictionaries(
        valid_task_names,
        st.one_of(
            st.integers(1, 5),
            st.fixed_dictionaries(
                {"units": st.integers(1, 5)},
                optional={
                    "activation": st.sampled_from(["softmax", None]),
                    "hidden_units": st.lists(st.integers(1, 4), max_size=2),
                },
            ),
        ),
        min_size=1,
        max_size=3,
    ),
)
def test_multitask_valid_examples_work(seed, features, tasks):
    x = _array(seed, (3, features), "float32")
    _run(_functional(lambda: MultiTaskHead(tasks), [x]), x, must_work=True)


@FUZZ
@given(
    seed=seeds,
    features=st.integers(1, 6),
    tasks=st.one_of(
        st.dictionaries(
            st.text(alphabet="ab_1/-. ", max_size=4),
            st.one_of(st.integers(-1, 4), st.fixed_dictionaries({"units": junk}), junk),
            max_size=3,
        ),
        junk,
    ),
)
def test_multitask_anything_works_or_fails_cleanly(seed, features, tasks):
    x = _array(seed, (3, features), "float32")
    _run(_functional(lambda: MultiTaskHead(tasks), [x]), x, False)


# -------------------------------------------------------------------------- Fusion
@FUZZ
@given(
    seed=seeds,
    mode=st.sampled_from(FUSION_MODES),
    units=st.one_of(st.none(), st.integers(1, 6)),
    n=st.integers(2, 4),
    features=st.integers(1, 5),
    dtype=float_dtypes,
    weighted=st.booleans(),
)
def test_fusion_valid_examples_work(seed, mode, units, n, features, dtype, weighted):
    arrays = [_array(seed + i, (3, features), dtype) for i in range(n)]
    weights = [float(i + 1) for i in range(n)] if weighted and mode == "weighted" else None
    make = _functional(lambda: Fusion(mode, units=units, branch_weights=weights), arrays)
    _run(make, arrays, must_work=True)


@FUZZ
@given(
    seed=seeds,
    mode=st.one_of(st.sampled_from(FUSION_MODES), junk),
    units=st.one_of(st.none(), st.integers(1, 6), junk),
    branches=st.lists(st.lists(st.integers(1, 4), min_size=0, max_size=3), min_size=1, max_size=4),
    weights=st.one_of(st.none(), st.lists(st.floats(-1, 3), min_size=1, max_size=4), junk),
    dtype=any_dtypes,
    concat_layer=st.booleans(),
)
def test_fusion_anything_works_or_fails_cleanly(
    seed, mode, units, branches, weights, dtype, concat_layer
):
    arrays = [_array(seed + i, [3] + b, dtype) for i, b in enumerate(branches)]

    def layer():
        return FusionConcat() if concat_layer else Fusion(mode, units=units, branch_weights=weights)

    _run(_functional(layer, arrays), _inputs(arrays), False)
