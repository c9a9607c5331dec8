"""A .keras file saved on this backend loads on the other two with equal predictions.
The CI matrix runs this file on TensorFlow, JAX and PyTorch, so every direction is
covered; int8, mixed-precision and augmented models are among the files."""

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
from harness import to_numpy
from test_saving import user_inputs, user_model

BACKENDS = ("tensorflow", "jax", "torch")
HERE = keras.backend.backend()

LOADER = textwrap.dedent("""
    import json, sys
    import numpy as np
    import keras
    import keras_bigmodel as kbm
    manifest = json.load(open(sys.argv[1]))
    diffs = {}
    for name, entry in manifest.items():
        data = np.load(entry["data"])
        inputs = {k[3:]: data[k] for k in data.files if k.startswith("in_")}
        if entry["kind"] == "array":
            inputs = inputs["x"]
        elif entry["kind"] == "list":
            inputs = [inputs[str(i)] for i in range(len(inputs))]
        model = kbm.load_model(entry["file"])
        if getattr(model, "optimizer", None) is not None:  # this backend's, not the saver's
            module = type(model.optimizer).__module__
            assert not any(f"backend.{b}." in module for b in ("tensorflow", "jax", "torch")
                           if b != keras.backend.backend()), module
        outputs = model(inputs, training=False)
        expected = {k[4:]: data[k] for k in data.files if k.startswith("out_")}
        if not isinstance(outputs, dict):
            outputs = {"y": outputs}
        diffs[name] = max(float(np.abs(keras.ops.convert_to_numpy(outputs[k]) - v).max())
                          for k, v in expected.items())
    print("DIFFS" + json.dumps(diffs))
""")


def _models():
    keras.utils.set_random_seed(0)
    models = {name: zoo.build(name) for name in zoo.list_presets()}
    models["cnn_augmented"] = zoo.build("cnn", input_shape=(8, 8, 1),
                                        augmentation={"rotation": 0.1, "seed": 1})
    models["attention_rnn_int8"] = kbm.compress.quantize(zoo.build("attention_rnn"))
    models["multitask_mixed_float16"] = zoo.build("multitask", dtype="mixed_float16")
    models["user_model"] = user_model()
    return models


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    directory = tmp_path_factory.mktemp(f"saved_on_{HERE}")
    manifest = {}
    rng = np.random.default_rng(0)
    for name, model in _models().items():
        if name == "user_model":
            inputs, kind = user_inputs(), "dict"
        else:
            inputs = keras.tree.map_structure(
                lambda t: rng.uniform(size=(3,) + tuple(t.shape[1:])).astype("float32"), model.input)
            kind = "dict" if isinstance(inputs, dict) else "list" if isinstance(inputs, list) else "array"
        outputs = to_numpy(model(inputs, training=False))
        arrays = ({f"in_{k}": v for k, v in inputs.items()} if kind == "dict" else
                  {f"in_{i}": v for i, v in enumerate(inputs)} if kind == "list" else {"in_x": inputs})
        arrays.update({f"out_{k}": v for k, v in outputs.items()} if isinstance(outputs, dict)
                      else {"out_y": outputs})
        data = str(directory / f"{name}.npz")
        np.savez(data, **arrays)
        file = kbm.save_model(model, directory / f"{name}.keras")
        manifest[name] = {"file": str(file), "data": data, "kind": kind}
    path = directory / "manifest.json"
    path.write_text(json.dumps(manifest))
    return path


@pytest.mark.parametrize("other", [b for b in BACKENDS if b != HERE])
def test_files_saved_here_load_on_the_other_backends(saved, other):
    env = {**os.environ, "KERAS_BACKEND": other}
    done = subprocess.run([sys.executable, "-c", LOADER, str(saved)], capture_output=True,
                          text=True, timeout=900, env=env)
    assert done.returncode == 0 and "DIFFS" in done.stdout, done.stderr[-4000:]
    diffs = json.loads(done.stdout.split("DIFFS", 1)[1])
    assert len(diffs) == len(json.loads(saved.read_text()))
    tolerance = {"multitask_mixed_float16": 1e-3}  # float16 kernels differ across backends
    bad = {k: v for k, v in diffs.items() if not v <= tolerance.get(k, 1e-5)}
    assert not bad, f"saved on {HERE}, loaded on {other}: {bad}"
