import gc
import os
import shutil
import sys
import tempfile

# XLA's CPU code generator at its lowest optimisation level: the tests compile hundreds
# of tiny programs and run each a few times, so LLVM's optimisation passes cost more
# than they save (about a fifth of the JAX pass's CPU time). Results are unchanged; the
# benchmarks (`python -m benchmarks`) run without it. Set before Keras imports JAX or TensorFlow.
os.environ.setdefault(
    "XLA_FLAGS", "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"
)

if os.environ.get("PYTEST_XDIST_WORKER"):
    # Two xdist workers already fill the two cores: one compute thread each. With a
    # pool per worker, PyTorch's spinning OpenMP threads made training 4-5x slower.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
    os.environ["XLA_FLAGS"] += " --xla_cpu_multi_thread_eigen=false"
elif os.environ.get("KERAS_BACKEND") == "jax" and "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    # The xdist controller (or a single-process run): one compilation cache for this run,
    # inherited by the workers, so that a program the other worker compiled is read, not
    # compiled again (about 8% of the JAX pass). Removed when the run ends.
    _JAX_CACHE = tempfile.mkdtemp(prefix="keras-bigmodel-tests-jax-cache-")
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _JAX_CACHE
    os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"

import keras
import pytest

if os.environ.get("PYTEST_XDIST_WORKER") and keras.backend.backend() == "torch":
    import torch

    torch.set_num_threads(1)

# tests/ for the harness, and the repository root for `benchmarks` (the documents'
# attention layer lives there, inlined as the benchmark asks).
sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

BACKEND = keras.backend.backend()


def pytest_collection_modifyitems(config, items):
    """TensorFlow-only features are deselected (not skipped) on the other backends, as
    are tests that start their own processes on chosen backends and checks whose result
    cannot depend on the backend (both run once, in the TensorFlow pass); the checks of
    what the other backends do are deselected on TensorFlow. Tests that start processes
    run first, so that the two xdist workers do not end on them."""
    keep, drop = [], []
    for item in items:
        if BACKEND != "tensorflow" and (
            item.get_closest_marker("tensorflow_only")
            or item.get_closest_marker("once")
            or item.get_closest_marker("backend_independent")
        ):
            drop.append(item)
        elif BACKEND == "tensorflow" and item.get_closest_marker("not_tensorflow"):
            drop.append(item)
        else:
            keep.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
    keep.sort(key=lambda item: item.get_closest_marker("once") is None)  # stable
    items[:] = keep


@pytest.fixture(autouse=True)
def _fresh_keras_state():
    """Each test starts with the default dtype policy and a fixed seed."""
    keras.config.set_dtype_policy("float32")
    keras.utils.set_random_seed(0)
    yield
    keras.config.set_dtype_policy("float32")


def pytest_collection_finish(session):
    """Moves everything imported so far (TensorFlow, JAX or PyTorch, Keras, the tests)
    out of the garbage collector's sight. Keras runs a full `gc.collect()` each time a
    layer drops a variable (`quantize` does, once per Dense), and over a heap of millions
    of imported objects each took 0.2 s; what the tests create is still collected."""
    gc.collect()
    gc.freeze()


def pytest_unconfigure(config):
    if "_JAX_CACHE" in globals():
        shutil.rmtree(_JAX_CACHE, ignore_errors=True)
