"""Every preset trains under Keras's own distribution engines on two CPU devices:
tf.distribute.MirroredStrategy (two logical CPUs) and keras.distribution.DataParallel
on JAX (two host devices). Each runs in its own process, since devices are fixed at
start-up; loss must fall and the saved model must reload with equal predictions."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

import zoo

COMMON = textwrap.dedent("""
    import json, sys
    import numpy as np

    def train_all(scope, describe_variable):
        import keras, zoo, keras_bigmodel as kbm
        rng = np.random.default_rng(0)
        results = {}
        for name in zoo.list_presets():
            keras.utils.set_random_seed(0)
            with scope():
                model = zoo.build(name)
            x = keras.tree.map_structure(
                lambda t: rng.uniform(size=(64,) + tuple(t.shape[1:])).astype("float32"),
                model.input)
            # learnable labels: is the example's mean pixel above one half?
            signal = np.mean([a.reshape(64, -1).mean(1) for a in keras.tree.flatten(x)], axis=0)
            y = keras.tree.map_structure(
                lambda t: keras.utils.to_categorical((signal > 0.5).astype(int), t.shape[-1]),
                model.output)
            history = model.fit(x, y, epochs=6, batch_size=32, verbose=0)
            path = sys.argv[1] + f"/{name}.keras"
            kbm.save_model(model, path)
            restored = kbm.load_model(path)
            diff = max(float(np.abs(np.asarray(a) - np.asarray(b)).max()) for a, b in zip(
                keras.tree.flatten(restored.predict(x, verbose=0)),
                keras.tree.flatten(model.predict(x, verbose=0))))
            results[name] = {"loss": history.history["loss"], "reload_diff": diff,
                             "variable": describe_variable(model.weights[0])}
        print("RESULTS" + json.dumps(results))
""")

MIRRORED = COMMON + textwrap.dedent("""
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    strategy = tf.distribute.MirroredStrategy(
        [d.name for d in tf.config.list_logical_devices("CPU")])
    assert strategy.num_replicas_in_sync == 2
    train_all(strategy.scope, lambda v: type(v.value).__name__)
""")

DATA_PARALLEL = COMMON + textwrap.dedent("""
    import contextlib
    import jax, keras
    assert len(jax.devices()) == 2, jax.devices()
    keras.distribution.set_distribution(keras.distribution.DataParallel(devices=jax.devices()))
    train_all(contextlib.nullcontext,
              lambda v: f"{len(v.value.sharding.device_set)} devices, {v.value.sharding.spec}")
""")


def _run(script, backend, tmp_path, extra_env=None):
    env = {**os.environ, "KERAS_BACKEND": backend, **(extra_env or {})}
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True,
                          text=True, timeout=900, env=env)
    assert done.returncode == 0 and "RESULTS" in done.stdout, done.stderr[-4000:]
    return json.loads(done.stdout.split("RESULTS", 1)[1])


def _check(results):
    assert sorted(results) == zoo.list_presets()
    for name, r in results.items():
        assert r["loss"][-1] < r["loss"][0], (name, r["loss"])
        assert r["reload_diff"] <= 1e-6, (name, r["reload_diff"])


@pytest.mark.once
def test_mirrored_strategy_over_two_cpus(tmp_path):
    results = _run(MIRRORED, "tensorflow", tmp_path)
    _check(results)
    assert {r["variable"] for r in results.values()} == {"MirroredVariable"}


@pytest.mark.once
def test_jax_data_parallel_over_two_host_devices(tmp_path):
    results = _run(DATA_PARALLEL, "jax", tmp_path,
                   {"XLA_FLAGS": "--xla_force_host_platform_device_count=2"})
    _check(results)
    # weights are replicated over the 2-device mesh; the batch is what is split
    assert all(r["variable"].startswith("2 devices,") and "batch" not in r["variable"]
               for r in results.values()), results
