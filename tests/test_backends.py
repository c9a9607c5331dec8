"""A .keras file saved on any backend loads on the other two with equal predictions.

One test, run once (it starts its own processes): TensorFlow (this process) saves
every preset's tiny model, an int8 and a mixed_float16 preset and a user's model
built from the layers; a PyTorch process loads them and saves its own; a JAX process
loads both sets and saves its own; a last PyTorch process loads JAX's; this process
loads JAX's and PyTorch's. Every direction between the three backends is covered.
"""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

import keras_bigmodel as kbm
import zoo

pytestmark = pytest.mark.once

STEP = textwrap.dedent("""
    import json, os, sys
    sys.path.insert(0, {tests!r})
    import numpy as np
    import keras
    import test_backends as t
    directory, load_from, save = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3] == "save"
    diffs = {{src: t.load_all(os.path.join(directory, src)) for src in load_from}}
    if save:
        t.save_all(os.path.join(directory, keras.backend.backend()))
    print("DIFFS" + json.dumps(diffs))
""")


def user_model() -> keras.Model:
    """A user's model: plain Keras layers around the package's layers."""
    seq = keras.Input(shape=(None, 6), name="sequence")
    vec = keras.Input(shape=(5,), name="vector")
    h = keras.layers.LSTM(8, return_sequences=True)(keras.layers.Masking()(seq))
    pooled = kbm.layers.AttentionLayer(4)(h)
    fused = kbm.layers.Fusion("gated", units=8)([pooled, keras.layers.Dense(8)(vec)])
    both = kbm.layers.FusionConcat()([fused, vec])
    heads = kbm.layers.MultiTaskHead({"label": {"units": 3, "activation": "softmax"}, "score": 1})
    return keras.Model({"sequence": seq, "vector": vec}, heads(both))


def models() -> dict:
    keras.utils.set_random_seed(0)
    built = {name: zoo.build(name, **zoo.get_preset(name).tiny) for name in zoo.list_presets()}
    rnn = zoo.get_preset("attention_rnn").tiny
    built["attention_rnn_int8"] = kbm.compress.quantize(zoo.build("attention_rnn", **rnn))
    built["multitask_mixed_float16"] = zoo.build(
        "multitask", dtype="mixed_float16", **zoo.get_preset("multitask").tiny
    )
    built["cnn_augmented"] = zoo.build(
        "cnn", augmentation={"rotation": 0.1, "seed": 1}, **zoo.get_preset("cnn").tiny
    )
    built["user_model"] = user_model()
    return built


def _flat(structure, prefix):
    if isinstance(structure, dict):
        return {f"{prefix}{k}": np.asarray(v) for k, v in structure.items()}
    if isinstance(structure, (list, tuple)):
        return {f"{prefix}{i}": np.asarray(v) for i, v in enumerate(structure)}
    return {f"{prefix}": np.asarray(structure)}


def save_all(directory: str) -> None:
    """Saves every model with its sample inputs and outputs into `directory`."""
    os.makedirs(directory, exist_ok=True)
    rng = np.random.default_rng(0)
    for name, model in models().items():
        inputs = keras.tree.map_structure(
            lambda t: rng.uniform(
                size=(3,) + tuple(6 if d is None else d for d in t.shape[1:])
            ).astype("int32" if "int" in str(t.dtype) else "float32"),
            model.input,
        )
        outputs = keras.tree.map_structure(
            lambda t: keras.ops.convert_to_numpy(t), model(inputs, training=False)
        )
        kind = type(model.input).__name__
        np.savez(
            os.path.join(directory, f"{name}.npz"),
            kind=kind,
            **_flat(inputs, "in_"),
            **_flat(outputs, "out_"),
        )
        kbm.save_model(model, os.path.join(directory, f"{name}.keras"))


def load_all(directory: str) -> dict:
    """Loads every model saved in `directory`; the largest output difference of each."""
    diffs = {}
    for file in sorted(os.listdir(directory)):
        if not file.endswith(".keras"):
            continue
        name = file[: -len(".keras")]
        data = np.load(os.path.join(directory, f"{name}.npz"))
        inputs = {k[3:]: data[k] for k in data.files if k.startswith("in_")}
        kind = str(data["kind"])
        if kind == "list":
            inputs = [inputs[str(i)] for i in range(len(inputs))]
        elif kind != "dict":
            inputs = inputs[""]
        model = kbm.load_model(os.path.join(directory, file))
        if getattr(model, "optimizer", None) is not None:  # this backend's, not the saver's
            module = type(model.optimizer).__module__
            here = keras.backend.backend()
            assert not any(
                f"backend.{b}." in module for b in ("tensorflow", "jax", "torch") if b != here
            ), module
        outputs = _flat(
            keras.tree.map_structure(
                lambda t: keras.ops.convert_to_numpy(t), model(inputs, training=False)
            ),
            "out_",
        )
        diffs[name] = max(float(np.abs(v - data[k]).max()) for k, v in outputs.items())
    return diffs


def _step(backend, directory, load_from, save):
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            STEP.format(tests=os.path.dirname(__file__)),
            str(directory),
            json.dumps(load_from),
            "save" if save else "no",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "KERAS_BACKEND": backend},
    )
    assert done.returncode == 0 and "DIFFS" in done.stdout, done.stderr[-4000:]
    return json.loads(done.stdout.split("DIFFS", 1)[1])


def test_files_cross_load_between_every_pair_of_backends(tmp_path):
    assert keras.backend.backend() == "tensorflow"
    save_all(str(tmp_path / "tensorflow"))
    diffs = {
        ("tensorflow", "torch"): _step("torch", tmp_path, ["tensorflow"], True)["tensorflow"],
    }
    jax = _step("jax", tmp_path, ["tensorflow", "torch"], True)
    diffs[("tensorflow", "jax")], diffs[("torch", "jax")] = jax["tensorflow"], jax["torch"]
    diffs[("jax", "torch")] = _step("torch", tmp_path, ["jax"], False)["jax"]
    diffs[("jax", "tensorflow")] = load_all(str(tmp_path / "jax"))
    diffs[("torch", "tensorflow")] = load_all(str(tmp_path / "torch"))
    expected = set(models())
    tolerance = {"multitask_mixed_float16": 1e-3}  # float16 kernels differ across backends
    for (saved_on, loaded_on), found in diffs.items():
        assert set(found) == expected, (saved_on, loaded_on, sorted(found))
        bad = {k: v for k, v in found.items() if not v <= tolerance.get(k, 1e-5)}
        assert not bad, f"saved on {saved_on}, loaded on {loaded_on}: {bad}"
