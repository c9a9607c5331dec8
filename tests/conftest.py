import os
import sys

import keras
import pytest

# tests/ for the harness, and the repository root for `benchmarks` (the documents'
# attention layer lives there, inlined as the benchmark asks).
sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

BACKEND = keras.backend.backend()


def pytest_collection_modifyitems(config, items):
    """TensorFlow-only features are deselected (not skipped) on the other backends, as
    are tests that start their own processes on chosen backends (run once, in the
    TensorFlow pass); the checks of what the other backends do are deselected on
    TensorFlow."""
    keep, drop = [], []
    for item in items:
        if BACKEND != "tensorflow" and (item.get_closest_marker("tensorflow_only")
                                        or item.get_closest_marker("once")):
            drop.append(item)
        elif BACKEND == "tensorflow" and item.get_closest_marker("not_tensorflow"):
            drop.append(item)
        else:
            keep.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture(autouse=True)
def _fresh_keras_state():
    """Each test starts with the default dtype policy and a fixed seed."""
    keras.config.set_dtype_policy("float32")
    keras.utils.set_random_seed(0)
    yield
    keras.config.set_dtype_policy("float32")
