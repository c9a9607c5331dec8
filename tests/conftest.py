import gc
import os
import shutil
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

BACKEND = keras.backend.backend()


# Why tests are not run in this pass, and how many: printed at the end of the run.
_NOT_RUN: dict[str, int] = {}
_REASONS = {
    "tensorflow_only": "TensorFlow-only features (tf-keras-vis, TFLite, tf.distribute)",
    "once": "start their own processes on every backend; run in the TensorFlow pass",
    "backend_independent": "configs and weight counts, the same on every backend; run in "
    "the TensorFlow pass",
    "sampled": "contract clauses of a layer's further cases and a preset's variants (every "
    "case in the TensorFlow pass; here each layer's first case and each preset's tiny "
    "configuration, tests/harness.py)",
    "not_tensorflow": "check what another backend does; run in the JAX and PyTorch passes",
    "torch_only": "compare with PyTorch libraries (captum, Quantus) on PyTorch models; run in the "
    "PyTorch pass",
}


def _not_run_here(item) -> str | None:
    if BACKEND != "torch" and item.get_closest_marker("torch_only"):
        return "torch_only"
    if BACKEND != "tensorflow":
        for marker in ("tensorflow_only", "once", "backend_independent", "sampled"):
            if item.get_closest_marker(marker):
                return marker
    elif item.get_closest_marker("not_tensorflow"):
        return "not_tensorflow"
    return None


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    """xdist's controller collects nothing itself: it takes the workers' counts (each
    worker collects every test, so one worker's counts are the run's)."""
    counts = getattr(node, "workeroutput", {}).get("not_run")
    if counts and not _NOT_RUN:
        _NOT_RUN.update(counts)


def pytest_terminal_summary(terminalreporter):
    """One line per reason for the tests this backend's pass does not run, so that a
    JAX or PyTorch run does not look complete when it is not."""
    if not _NOT_RUN:
        return
    terminalreporter.section(f"not run on {BACKEND} (deselected)")
    for marker, count in sorted(_NOT_RUN.items()):
        terminalreporter.line(f"{count} tests marked {marker}: {_REASONS[marker]}")


def pytest_collection_modifyitems(config, items):
    """TensorFlow-only features are deselected (not skipped) on the other backends, as
    are tests that start their own processes on chosen backends and checks whose result
    cannot depend on the backend (both run once, in the TensorFlow pass); the checks of
    what the other backends do are deselected on TensorFlow. Tests that start processes
    run first, then those marked `slow`, so that the two xdist workers do not end on a
    long test while the other waits."""
    keep, drop = [], []
    for item in items:
        reason = _not_run_here(item)
        if reason:
            drop.append(item)
            _NOT_RUN[reason] = _NOT_RUN.get(reason, 0) + 1
        else:
            keep.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
    if hasattr(config, "workeroutput"):  # an xdist worker: the controller prints the line
        config.workeroutput["not_run"] = dict(_NOT_RUN)
    keep.sort(  # stable: file order within each group
        key=lambda item: (
            item.get_closest_marker("once") is None,
            item.get_closest_marker("slow") is None,
        )
    )
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
