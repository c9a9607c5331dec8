"""kbm.multitask.aggregate against independent NumPy/SciPy references (LibMTL's and
TorchJD's formulas, exact solvers), on every backend, and the conventions between them."""

import keras
import mtl_references as ref
import numpy as np
import pytest
from keras import ops

import keras_bigmodel as kbm
from keras_bigmodel.multitask import (
    aggregate,
    aggregation_weights,
    famo_logits_gradient,
    gradnorm_logits_gradient,
)

RNG = np.random.default_rng(3)
G = RNG.normal(size=(4, 7)).astype("float32")
G[1] = -0.6 * G[0] + 0.5 * G[1]  # a conflicting pair
G64 = G.astype("float64")
LOSSES = RNG.uniform(0.5, 2.0, size=4)
INITIAL = RNG.uniform(1.0, 3.0, size=4)
LOGITS = RNG.normal(size=4)


def to_np(x):
    return np.asarray(ops.convert_to_numpy(x), dtype="float64")


def compiled_aggregate(method, g=None, fn=None, compiled=True, **options):
    """aggregate() as the training step runs it: inside a compiled function (a graph on
    TensorFlow, jit on JAX; eager on PyTorch). `compiled=False`: eagerly (the solvers
    stop at convergence, so an eager call is quicker than tracing a graph for it)."""
    backend = keras.backend.backend()
    g = G if g is None else g
    inner = fn or aggregate
    fn = lambda g: inner(g, method=method, **options)  # noqa: E731
    if not compiled:
        return fn(g)
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.function(fn)(g)
    if backend == "jax":
        import jax

        return jax.jit(fn)(g)
    return fn(g)


def perms(seed, k):
    rng = np.random.default_rng(seed)
    return np.stack([rng.permutation(k) for _ in range(k)])


REFERENCES = {
    "sum": lambda: G64.sum(0),
    "mean": lambda: G64.mean(0),
    "rlw": lambda: (
        (np.exp(w := np.random.default_rng(7).standard_normal(4)) / np.exp(w).sum()) @ G64
    ),
    "pcgrad": lambda: ref.pcgrad_libmtl(G64, perms(5, 4)),
    "mgda": lambda: ref.mgda(G64),
    "upgrad": lambda: ref.upgrad_torchjd(G64),
    "imtl_g": lambda: ref.imtl_g_libmtl(G64),
    "aligned_mtl": lambda: ref.aligned_mtl_libmtl(G64) / 4,  # TorchJD: preference 1/K
    "cagrad": lambda: ref.cagrad_libmtl(G64),
    "nash_mtl": lambda: ref.nash_mtl(G64),
    "gradnorm": lambda: (4 * np.exp(LOGITS) / np.exp(LOGITS).sum()) @ G64,
    "famo": lambda: ref.famo_direction(G64, LOSSES, LOGITS),
}
OPTIONS = {
    "rlw": {"seed": 7},
    "pcgrad": {"seed": 5},
    "gradnorm": {"logits": LOGITS},
    "famo": {"losses": LOSSES, "logits": LOGITS},
}


@pytest.mark.slow
def test_every_method_equals_its_reference_within_1e_5():
    assert sorted(REFERENCES) == sorted(kbm.multitask.METHODS)
    errors = {}
    # eager too, for two methods with solvers
    for method in ("nash_mtl", "imtl_g"):
        eager = to_np(aggregate(G, method=method))
        np.testing.assert_allclose(eager, REFERENCES[method](), atol=1e-5)
    for method, reference in REFERENCES.items():
        got = to_np(compiled_aggregate(method, **OPTIONS.get(method, {})))
        errors[method] = float(np.max(np.abs(got - reference())))
    assert max(errors.values()) < 1e-5, sorted(errors.items(), key=lambda e: -e[1])[:3]
    # the state updates of the two learned methods, against central differences
    np.testing.assert_allclose(
        to_np(gradnorm_logits_gradient(G, LOSSES, INITIAL, LOGITS)),
        ref.gradnorm_logits_gradient(LOGITS, G64, LOSSES, INITIAL),
        atol=1e-5,
    )
    np.testing.assert_allclose(
        to_np(famo_logits_gradient(INITIAL, LOSSES, LOGITS)),
        ref.famo_logits_gradient(INITIAL, LOSSES, LOGITS),
        atol=1e-5,
    )


@pytest.mark.tensorflow_only
def test_convention_conversions_between_libmtl_and_torchjd():
    # Aligned-MTL: LibMTL sums the balance matrix's columns, TorchJD (and here) averages.
    np.testing.assert_allclose(
        4 * to_np(compiled_aggregate("aligned_mtl")),
        ref.aligned_mtl_libmtl(G64),
        atol=1e-5,
    )
    # CAGrad: TorchJD's direction is LibMTL's before its 1 / (1 + c^2) rescaling.
    np.testing.assert_allclose(
        to_np(compiled_aggregate("cagrad", rescale=0)),
        ref.cagrad_libmtl(G64, rescale=0),
        atol=1e-5,
    )
    np.testing.assert_allclose(
        to_np(compiled_aggregate("cagrad", rescale=0)) / 1.25,
        to_np(compiled_aggregate("cagrad")),
        atol=1e-6,
    )
    # Nash-MTL: LibMTL and TorchJD solve on M / ||M||_F; their weights are sqrt(||M||_F)
    # times the exact solution of M alpha = 1 / alpha returned here.
    m = G64 @ G64.T
    norm = np.linalg.norm(m)
    theirs = ref.nash_alpha(m, scale=norm)
    np.testing.assert_allclose(
        theirs / np.sqrt(norm),
        to_np(compiled_aggregate("nash_mtl", fn=aggregation_weights)),
        rtol=1e-5,
    )
    # UPGrad with TorchJD's regularisation switched off is the exact dual-cone projection.
    np.testing.assert_allclose(
        to_np(compiled_aggregate("upgrad", reg_eps=0.0)),
        ref.upgrad_torchjd(G64, reg_eps=0.0),
        atol=1e-4,
    )


@pytest.mark.tensorflow_only
def test_pcgrad_is_deterministic_by_seed_and_resolves_conflicts():
    first = to_np(compiled_aggregate("pcgrad", seed=11))
    np.testing.assert_array_equal(first, to_np(compiled_aggregate("pcgrad", seed=11)))
    np.testing.assert_allclose(first, ref.pcgrad_libmtl(G64, perms(11, 4)), atol=1e-5)
    # two tasks: the projected sum has no negative inner product with either gradient
    two = np.array([[1.0, 1.0], [-1.0, 0.5]], "float32")
    d = to_np(aggregate(two, "pcgrad", seed=0))
    assert (two @ d >= -1e-6).all()
    # MGDA: the min-norm point of [e1, 2 e2] is (0.8, 0.4), weights (0.8, 0.2)
    np.testing.assert_allclose(
        to_np(
            compiled_aggregate(
                "mgda", g=np.array([[1.0, 0.0], [0.0, 2.0]], "float32"), fn=aggregation_weights
            )
        ),
        [0.8, 0.2],
        atol=1e-6,
    )


@pytest.mark.tensorflow_only
def test_solvers_stop_at_convergence_or_at_max_iter():
    # a converged solver gives the same weights however many more steps it may take
    # (eagerly: quicker than tracing a graph each; CAGrad, whose eager solve takes
    # seconds, is held to its reference in the compiled test above)
    for method in ("mgda", "upgrad", "nash_mtl"):
        np.testing.assert_allclose(
            to_np(compiled_aggregate(method, fn=aggregation_weights, compiled=False)),
            to_np(
                compiled_aggregate(method, fn=aggregation_weights, compiled=False, max_iter=20000)
            ),
            atol=1e-6,
        )
    # max_iter still caps the loop: one Newton step is not the solution
    one = to_np(compiled_aggregate(compiled=False, method="nash_mtl", max_iter=1))
    assert np.max(np.abs(one - REFERENCES["nash_mtl"]())) > 1e-2


@pytest.mark.tensorflow_only
def test_bad_arguments_are_refused_by_name():
    with pytest.raises(
        ValueError, match=r"`method` must be one of .*'pcgrad'.*Received: method='pcgard'"
    ):
        aggregate(G, method="pcgard")
    with pytest.raises(
        ValueError, match=r"takes options \['seed'\]; received unknown options \['c'\]"
    ):
        aggregate(G, method="pcgrad", c=0.5)
    with pytest.raises(
        ValueError, match=r"\(tasks, parameters\) matrix. Received: gradients with shape \(7,\)"
    ):
        aggregate(G[0], method="mean")
    with pytest.raises(ValueError, match=r"needs `losses`"):
        aggregate(G, method="famo")
    with pytest.raises(ValueError, match=r"`rescale` must be 0, 1 or 2. Received: rescale=3"):
        aggregate(G, method="cagrad", rescale=3)
