"""Files written by earlier releases still load, with the outputs they were saved with.

tests/data holds, per release and per backend it was saved on, a model that uses every
layer of the package in float32 and int8 (tests/data/make_compat_files.py wrote them).
Each backend's test run loads all of them, so this is also a cross-backend check."""

import glob
import os

import keras
import numpy as np
import pytest

import keras_bigmodel as kbm
from keras_bigmodel import _compat

DATA = os.path.join(os.path.dirname(__file__), "data")
FILES = sorted(glob.glob(os.path.join(DATA, "v*-*-*.keras")))


@pytest.mark.parametrize("path", FILES, ids=[os.path.basename(p) for p in FILES])
def test_earlier_files_load_and_predict_what_they_did(path):
    release, backend, kind = os.path.basename(path)[: -len(".keras")].split("-")
    recorded = np.load(os.path.join(DATA, f"{release}-{backend}-io.npz"))
    model = kbm.load_model(path)
    outputs = model({"sequence": recorded["sequence"], "vector": recorded["vector"]})
    for task in ("label", "score"):
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(outputs[task]), recorded[f"{kind}_{task}"], atol=1e-5
        )
    int8 = [layer for layer in _compat.all_layers(model) if layer.quantization_mode == "int8"]
    assert bool(int8) == (kind == "int8")


def test_the_files_cover_every_backend():
    assert {os.path.basename(p).split("-")[1] for p in FILES} == {"tensorflow", "jax", "torch"}
