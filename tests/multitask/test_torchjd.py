"""kbm.multitask.aggregate against TorchJD's own aggregators (torchjd 0.18, with its
quadprog projector), for the methods TorchJD ships without cvxpy."""

import numpy as np
import pytest
from keras import ops

from keras_bigmodel.multitask import aggregate

RNG = np.random.default_rng(3)
G = RNG.normal(size=(4, 7))
G[1] = -0.6 * G[0] + 0.5 * G[1]


@pytest.mark.tensorflow_only
def test_aggregate_equals_torchjd_within_1e_5():
    # torch and torchjd are test dependencies (setup.cfg): imported here, not skipped.
    import tensorflow as tf
    import torch
    from torchjd import aggregation

    cases = {
        "upgrad": (aggregation.UPGrad(), G),
        # TorchJD's Frank-Wolfe run to convergence (its default stops at epsilon=1e-3)
        "mgda": (aggregation.MGDA(epsilon=1e-12, max_iters=20000), G),
        "imtl_g": (aggregation.IMTLG(), G),
        "aligned_mtl": (aggregation.AlignedMTL(), G),
        "mean": (aggregation.Mean(), G),
        "sum": (aggregation.Sum(), G),
        # two tasks: each task has one other, so TorchJD's random order does not matter
        "pcgrad": (aggregation.PCGrad(), G[:2]),
    }
    errors = {}
    for method, (theirs, g) in cases.items():
        expected = theirs(torch.tensor(g, dtype=torch.float64)).numpy()
        got = tf.function(
            lambda m, method=method: aggregate(
                m, method, **({"seed": 0} if method == "pcgrad" else {})
            )
        )(g.astype("float32"))
        errors[method] = float(np.max(np.abs(ops.convert_to_numpy(got) - expected)))
    assert max(errors.values()) < 1e-5, errors
