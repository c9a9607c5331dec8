"""What is saved or computed on one backend holds on the other two.

One test, run once (it starts its own processes): TensorFlow (this process) saves
tiny presets and variants that between them hold every layer of the package (an int8
and a mixed_float16 preset among them) and a user's model built from the layers, and
the explanation cases of tests/explain_maps.py; a PyTorch and a JAX process, side by
side, each load TensorFlow's files, save their own and load the other's, then compute
every explanation map; this process loads JAX's and PyTorch's files and computes the
maps on TensorFlow meanwhile. Every direction between the three backends is covered,
and the maps must agree with TensorFlow's within 1e-4. One process per backend does
both jobs: each start costs an import of Keras and its backend.
"""

import json
import os
import subprocess
import sys
import textwrap

import explain_maps
import keras
import numpy as np
import pytest
from sample_models import user_model

import keras_bigmodel as kbm
import zoo

pytestmark = pytest.mark.once

# One process per other backend, both at once: load TensorFlow's files, save this
# backend's own, then wait for the other process's files and load them; then the maps.
STEP = textwrap.dedent("""
    import json, os, sys, time
    sys.path.insert(0, {tests!r})
    import keras
    import numpy as np
    import explain_maps
    import test_backends as t
    directory, other = sys.argv[1], sys.argv[2]
    diffs = {{"tensorflow": t.load_all(os.path.join(directory, "tensorflow"))}}
    here = keras.backend.backend()
    t.save_all(os.path.join(directory, here))
    open(os.path.join(directory, here + ".done"), "w").close()
    deadline = time.monotonic() + 300
    while not os.path.exists(os.path.join(directory, other + ".done")):
        if time.monotonic() > deadline:
            sys.exit(other + " saved nothing within 300 s")
        time.sleep(0.2)
    diffs[other] = t.load_all(os.path.join(directory, other))
    maps = explain_maps.compute(os.path.join(directory, "explain"))
    np.savez(os.path.join(directory, "explain", "maps-" + here + ".npz"), **maps)
    print("DIFFS" + json.dumps(diffs))
""")


def models() -> dict:
    keras.utils.set_random_seed(0)
    # Between them these hold every layer of the package: the presets add the image
    # branch and cross-modal fusion (crossmodal) and the layered experts (ple).
    presets = ("crossmodal", "ple")
    built = {name: zoo.build(name, **zoo.get_preset(name).tiny) for name in presets}
    rnn = zoo.get_preset("attention_rnn").tiny
    built["attention_rnn_int8"] = kbm.compress.quantize(zoo.build("attention_rnn", **rnn))
    built["multitask_mixed_float16"] = zoo.build(
        "multitask", dtype="mixed_float16", **zoo.get_preset("multitask").tiny
    )
    built["cnn_augmented"] = zoo.build(
        "cnn", augmentation={"rotation": 0.1, "seed": 1}, **zoo.get_preset("cnn").tiny
    )
    built["user_model"] = user_model(experts=True)
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


def _start(backend, directory, other):
    """Starts a backend's process; its output goes to files (two pipes read one after
    the other could fill up and stall the process that is read second)."""
    out = open(directory / f"{backend}.out", "w+")  # closed in _diffs
    process = subprocess.Popen(
        [sys.executable, "-c", STEP.format(tests=os.path.dirname(__file__)), str(directory), other],
        stdout=out,
        stderr=subprocess.STDOUT,
        env={**os.environ, "KERAS_BACKEND": backend},
    )
    return process, out


def _diffs(started):
    process, out = started
    try:
        process.wait(timeout=600)
    except subprocess.TimeoutExpired:
        process.kill()
        raise
    with out:
        out.seek(0)
        output = out.read()
    assert process.returncode == 0 and "DIFFS" in output, output[-4000:]
    return json.loads(output.split("DIFFS", 1)[1])


def test_files_and_explanations_agree_between_every_pair_of_backends(tmp_path):
    assert keras.backend.backend() == "tensorflow"
    save_all(str(tmp_path / "tensorflow"))
    explain = tmp_path / "explain"
    explain.mkdir()
    explain_maps.save_cases(str(explain))
    torch, jax = _start("torch", tmp_path, "jax"), _start("jax", tmp_path, "torch")
    expected_maps = explain_maps.compute(str(explain))  # TensorFlow's, meanwhile
    assert len(expected_maps) >= 20
    on_torch, on_jax = _diffs(torch), _diffs(jax)
    diffs = {
        ("tensorflow", "torch"): on_torch["tensorflow"],
        ("jax", "torch"): on_torch["jax"],
        ("tensorflow", "jax"): on_jax["tensorflow"],
        ("torch", "jax"): on_jax["torch"],
        ("jax", "tensorflow"): load_all(str(tmp_path / "jax")),
        ("torch", "tensorflow"): load_all(str(tmp_path / "torch")),
    }
    expected = set(models())
    tolerance = {"multitask_mixed_float16": 1e-3}  # float16 kernels differ across backends
    for (saved_on, loaded_on), found in diffs.items():
        assert set(found) == expected, (saved_on, loaded_on, sorted(found))
        bad = {k: v for k, v in found.items() if not v <= tolerance.get(k, 1e-5)}
        assert not bad, f"saved on {saved_on}, loaded on {loaded_on}: {bad}"
    for backend in ("jax", "torch"):
        with np.load(explain / f"maps-{backend}.npz") as found:
            assert sorted(found.files) == sorted(expected_maps)
            for key, array in expected_maps.items():
                np.testing.assert_allclose(
                    found[key], array, atol=1e-4, err_msg=f"{backend}: {key}"
                )
