"""Training in several processes, really run: two worker processes on localhost per
backend, started and stopped here (127.0.0.1, ports picked at run time, bounded in
time), all three backends at once from the TensorFlow pass (`once`).

Each backend shows first, with a plain Keras model, where Keras itself fails in two
processes (the control), then trains a zoo preset with `kbm.distribute.fit_distributed`:
- TensorFlow: `MultiWorkerMirroredStrategy` from `TF_CONFIG`; `fit` fails, the helper's
  `strategy.run(model.train_step)` loop works;
- JAX: `keras.distribution.initialize` + `DataParallel()`; `fit` on NumPy input fails,
  the helper feeds each process its rows; then `ModelParallel` with
  `layout_map_for`, which splits the largest kernels over the two processes;
- PyTorch: Keras has no distribution support (the control records the error); the
  helper runs Keras's `fit` in a `torch.distributed` (gloo) process group.
Every run starts from the same weights and takes the same global batches, so the two
workers must end with identical weights, equal (within float error) to one process
training on whole batches; the chief's `.keras` file must reload with equal
predictions.
"""

import json
import os
import socket
import subprocess
import sys
import textwrap
import time

import keras
import numpy as np
import pytest

import keras_bigmodel as kbm
import zoo
from keras_bigmodel import distribute

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PRESET = {
    "name": "multitask",
    "overrides": {"input_shape": (16,), "trunk_units": (32,)},
    "epochs": 3,
    "batch_size": 16,
    "learning_rate": 0.01,
}
ROWS = 64
TIMEOUT = 150  # seconds for all six workers together

WORKER = textwrap.dedent("""
    import json, os, sys, time
    START = time.monotonic()
    import numpy as np

    out, rank, world, address = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    backend = os.environ["KERAS_BACKEND"]
    if backend != "tensorflow":
        # As in an install without TensorFlow (Keras's set_random_seed, which
        # distribution.initialize calls, would otherwise spend ~10 s importing it).
        sys.modules["tensorflow"] = None
    import keras
    import keras_bigmodel as kbm
    from keras_bigmodel import distribute
    import zoo

    report = {"rank": rank, "seconds": {"import": time.monotonic() - START}}

    def lap(name):
        report["seconds"][name] = round(time.monotonic() - START, 2)
    data = np.load(os.path.join(out, "data.npz"))
    x, initial = data["x"], [data[f"w{i}"] for i in range(int(data["n"]))]
    y = {k[2:]: data[k] for k in data.files if k.startswith("y_")}
    ARGS = json.loads(os.environ["PRESET"])

    def plain_model():
        inputs = keras.Input(x.shape[1:])
        model = keras.Model(inputs, {k: keras.layers.Dense(v.shape[-1], activation="softmax",
                                                           name=k)(inputs) for k, v in y.items()})
        model.compile("adam", "categorical_crossentropy")
        return model

    def control(fn):
        try:
            fn()
            return "no error"
        except Exception as e:
            return f"{type(e).__name__}: {str(e)[:300]}"

    def preset():
        model = zoo.build(ARGS["name"], **ARGS["overrides"],
                          optimizer=keras.optimizers.Adam(ARGS["learning_rate"]))
        model.set_weights(initial)
        return model

    def train(model):
        return distribute.fit_distributed(model, x, y, epochs=ARGS["epochs"],
                                          batch_size=ARGS["batch_size"], seed=1)

    if backend == "tensorflow":
        import tensorflow as tf
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        with strategy.scope():
            control_model = plain_model()
        report["control"] = control(
            lambda: control_model.fit(x, y, batch_size=ARGS["batch_size"], verbose=0))
        with strategy.scope():
            model = preset()
        report["variable"] = type(model.weights[0]._value).__name__
    elif backend == "jax":
        import jax
        keras.distribution.initialize(address, world, rank)
        keras.distribution.set_distribution(keras.distribution.DataParallel())
        report["control"] = control(
            lambda: plain_model().fit(x, y, batch_size=ARGS["batch_size"], verbose=0))
        model = preset()
        report["variable"] = str(model.weights[0].value.sharding)
    else:
        import datetime
        import torch.distributed as dist
        report["control"] = control(lambda: keras.distribution.initialize(address, world, rank))
        dist.init_process_group("gloo", init_method=f"tcp://{address}", rank=rank,
                                world_size=world, timeout=datetime.timedelta(seconds=60))
        model = preset()
        report["variable"] = type(model.weights[0].value).__name__
    lap("control")
    report["processes"] = [distribute.process_count(), distribute.process_index()]
    report["history"] = train(model)
    lap("fit")
    weights = [np.asarray(keras.ops.convert_to_numpy(v)) for v in model.weights]
    np.savez(os.path.join(out, f"{backend}-{rank}.npz"), *weights)

    if backend == "jax":
        # ModelParallel: the largest kernels split over the two processes' devices.
        from jax.experimental import multihost_utils
        mesh = keras.distribution.DeviceMesh((1, world), ("batch", "model"), jax.devices())
        layout = distribute.layout_map_for(
            lambda: zoo.build(ARGS["name"], **ARGS["overrides"]), mesh, min_size=256)
        keras.distribution.set_distribution(keras.distribution.ModelParallel(
            layout_map=layout, batch_dim_name="batch"))
        sharded = preset()
        report["model_parallel_specs"] = {
            v.path: str(v.value.sharding.spec) for v in sharded.weights
            if "model" in str(v.value.sharding.spec)}
        report["model_parallel_history"] = train(sharded)
        gathered = [np.asarray(multihost_utils.process_allgather(v.value, tiled=True))
                    for v in sharded.weights]
        report["model_parallel_vs_data_parallel"] = max(
            float(np.abs(a - b).max()) for a, b in zip(gathered, weights))
        lap("model parallel")
    # Every process saves (reading global JAX arrays is a collective); the chief's file
    # is the one kept.
    path = os.path.join(out, f"{backend}.keras" if rank == 0 else f"{backend}-{rank}.keras")
    kbm.save_model(model, path)
    if rank:
        os.remove(path)
    lap("save")
    print("RESULTS" + json.dumps(report), flush=True)
""")


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(backend, out):
    env = {
        **os.environ,
        "KERAS_BACKEND": backend,
        "PRESET": json.dumps(PRESET),
        "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "JAX_PLATFORMS": "cpu",
        "CUDA_VISIBLE_DEVICES": "",
    }
    env.pop("XLA_FLAGS", None)
    if backend == "tensorflow":
        workers = [f"127.0.0.1:{_free_port()}" for _ in range(2)]
        address = ",".join(workers)
    else:
        address = f"127.0.0.1:{_free_port()}"
    procs = []
    for rank in range(2):
        if backend == "tensorflow":
            env["TF_CONFIG"] = json.dumps(
                {
                    "cluster": {"worker": workers},
                    "task": {"type": "worker", "index": rank},
                }
            )
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", WORKER, str(out), str(rank), "2", address],
                env=dict(env),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                start_new_session=True,
            )
        )
    return procs


def _collect(procs, deadline):
    reports = []
    for proc in procs:
        try:
            stdout, stderr = proc.communicate(timeout=max(1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            for p in procs:
                p.kill()
            stdout, stderr = proc.communicate()
            pytest.fail(f"worker timed out after {TIMEOUT} s: {stderr[-3000:]}")
        assert proc.returncode == 0 and "RESULTS" in stdout, stderr[-4000:]
        reports.append(json.loads(stdout.split("RESULTS", 1)[1]))
    return reports


def _data():
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(ROWS, 16)).astype("float32")
    # learnable labels: the index of the largest of the first 10 (or 5) features
    y = {
        "task1": keras.utils.to_categorical(x[:, :10].argmax(1), 10),
        "task2": keras.utils.to_categorical(x[:, :5].argmax(1), 5),
    }
    return x, y


def _loss(model, x, y):
    predictions = model(x)
    return float(
        sum(
            np.mean(
                keras.ops.convert_to_numpy(
                    keras.losses.categorical_crossentropy(y[k], predictions[k])
                )
            )
            for k in y
        )
    )


@pytest.mark.once
def test_two_worker_processes_on_every_backend(tmp_path):
    x, y = _data()
    keras.utils.set_random_seed(0)
    reference = zoo.build(
        PRESET["name"],
        **PRESET["overrides"],
        optimizer=keras.optimizers.Adam(PRESET["learning_rate"]),
    )
    initial = reference.get_weights()
    np.savez(
        tmp_path / "data.npz",
        x=x,
        n=len(initial),
        **{f"y_{k}": v for k, v in y.items()},
        **{f"w{i}": w for i, w in enumerate(initial)},
    )
    deadline = time.monotonic() + TIMEOUT
    launched = {b: _launch(b, tmp_path) for b in ("tensorflow", "jax", "torch")}
    # Meanwhile, the reference: one process training on whole batches, same order.
    initial_loss = _loss(reference, x, y)
    distribute.fit_distributed(
        reference,
        x,
        y,
        epochs=PRESET["epochs"],
        batch_size=PRESET["batch_size"],
        seed=1,
    )
    expected = reference.get_weights()
    largest = {v.path for v in reference.weights if len(v.shape) == 2 and np.prod(v.shape) >= 256}
    reports = {b: _collect(procs, deadline) for b, procs in launched.items()}

    controls = {b: r[0]["control"] for b, r in reports.items()}
    assert controls["tensorflow"].startswith(
        "ValueError: Attempt to convert a value (PerReplica:"
    ), controls
    assert controls["jax"].startswith(
        "ValueError: When using a multi-worker distribution with auto-sharding enabled, the "
        "data must be provided as a `tf.data.Dataset`"
    ), controls
    assert controls["torch"] == (
        "AttributeError: 'NoneType' object has no attribute 'initialize'"
    ), controls

    for backend, pair in reports.items():
        assert [r["processes"] for r in pair] == [[2, 0], [2, 1]], (backend, pair)
        # the logs are those of the global batches, the same in both workers
        assert pair[0]["history"] == pair[1]["history"], (backend, pair)
        ours = [np.load(tmp_path / f"{backend}-{rank}.npz") for rank in (0, 1)]
        trained = [ours[0][f"arr_{i}"] for i in range(len(expected))]
        for i, want in enumerate(expected):
            # both workers hold the very same weights ...
            np.testing.assert_array_equal(ours[0][f"arr_{i}"], ours[1][f"arr_{i}"])
            # ... which are those of one process taking the same global batches
            np.testing.assert_allclose(trained[i], want, atol=2e-5, err_msg=f"{backend} weight {i}")
        reference.set_weights(trained)
        loss = _loss(reference, x, y)
        assert loss < 0.9 * initial_loss, (backend, initial_loss, loss)
        # the chief's file reloads (here, on TensorFlow) with the trained predictions
        restored = kbm.load_model(tmp_path / f"{backend}.keras")
        for k, v in restored(x).items():
            np.testing.assert_allclose(v, reference(x)[k], atol=1e-6)
    assert reports["tensorflow"][0]["variable"] == "MirroredVariable"
    assert "Mesh('batch': 2" in reports["jax"][0]["variable"]
    jax_report = reports["jax"][0]
    assert len(largest) == 2 and jax_report["model_parallel_specs"] == dict.fromkeys(
        largest, "P(None, 'model')"
    ), jax_report
    assert jax_report["model_parallel_vs_data_parallel"] <= 1e-5, jax_report
    print({b: [r["seconds"] for r in pair] for b, pair in reports.items()})


@pytest.mark.tensorflow_only  # the one-process path is the same code on every backend
def test_fit_distributed_in_one_process_is_fit_on_whole_batches():
    x, y = _data()
    keras.utils.set_random_seed(0)
    ours = zoo.build(PRESET["name"], **PRESET["overrides"])
    plain = zoo.build(PRESET["name"], **PRESET["overrides"])
    plain.set_weights(ours.get_weights())
    history = distribute.fit_distributed(ours, x, y, epochs=2, batch_size=16, shuffle=False)
    expected = plain.fit(x, y, epochs=2, batch_size=16, shuffle=False, verbose=0).history
    assert distribute.process_count() == 1 and distribute.process_index() == 0
    np.testing.assert_allclose(history["loss"], expected["loss"], rtol=1e-6)
    for a, b in zip(ours.get_weights(), plain.get_weights()):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_fit_distributed_errors():
    x, y = _data()
    model = zoo.build(PRESET["name"], **PRESET["overrides"])
    with pytest.raises(ValueError, match=r"`batch_size` must be at most the number of rows \(64\)"):
        distribute.fit_distributed(model, x, y, batch_size=65)
    with pytest.raises(
        ValueError, match=r"`epochs` must be a positive integer\. Received: epochs=0"
    ):
        distribute.fit_distributed(model, x, y, epochs=0)
    with pytest.raises(ValueError, match="same number of rows"):
        distribute.fit_distributed(model, x[:10], y)
    uncompiled = zoo.build(PRESET["name"], **PRESET["overrides"], compile=False)
    with pytest.raises(RuntimeError, match="must be compiled"):
        distribute.fit_distributed(uncompiled, x, y)


def test_layout_map_for_splits_the_largest_kernels_only():
    mesh = keras.distribution.DeviceMesh((1, 2), ("batch", "model"), devices=["cpu:0", "cpu:1"])

    def build():
        return zoo.build(PRESET["name"], **PRESET["overrides"], compile=False)

    layout = distribute.layout_map_for(build, mesh, min_size=256)
    model = build()
    split = {v.path: tuple(layout[v.path].axes) for v in model.weights if layout[v.path]}
    # the trunk (16 x 32) and task1 (32 x 10) kernels; task2's (32 x 5) and the biases stay
    assert split == {
        v.path: (None, "model") for v in model.weights if v.shape in ((16, 32), (32, 10))
    }, split
    assert len(split) == 2 and layout["x" + next(iter(split))] is None  # anchored keys
    assert len(distribute.layout_map_for(model, mesh, min_size=256, max_kernels=1)) == 1
    with pytest.raises(ValueError, match=r"`model_axis` must be one of the mesh's axes"):
        distribute.layout_map_for(model, mesh, model_axis="tensor")
    with pytest.raises(ValueError, match="No weight of model"):
        distribute.layout_map_for(model, mesh)  # nothing has 1,024 values
    with pytest.raises(TypeError, match=r"`mesh` must be a keras\.distribution\.DeviceMesh"):
        distribute.layout_map_for(model, "mesh")
    with pytest.raises(TypeError, match=r"must return a keras\.Model"):
        distribute.layout_map_for(lambda: None, mesh)
