"""Writes the `.keras` files that the compatibility tests reload.

Run once per release whose files must keep loading (`python tests/data/make_compat_files.py
TAG`); the files and the outputs they produced are committed beside this script. The
model uses every layer of the package, in float32 and int8, with the public API only.
"""

import os
import sys

import keras
import numpy as np

import keras_bigmodel as kbm
from keras_bigmodel.layers import AttentionLayer, Fusion, FusionConcat, MultiTaskHead, TaskHead


def every_layer_model() -> keras.Model:
    keras.utils.set_random_seed(0)
    seq = keras.Input(shape=(None, 6), name="sequence")
    vec = keras.Input(shape=(5,), name="vector")
    h = keras.layers.Masking()(seq)
    additive = AttentionLayer(4, name="additive")(h)
    dot = AttentionLayer(3, score="scaled_dot", name="dot")(h)
    v = keras.layers.Dense(6, name="vector_dense")(vec)
    gated = Fusion("gated", units=8, name="gated")([additive, v])
    attended = Fusion("attention", units=4, name="attended")([dot, v, additive])
    weighted = Fusion("weighted", branch_weights=[2.0, 1.0], name="weighted")([additive, v])
    both = FusionConcat(name="concat")([gated, attended, weighted])
    hidden = TaskHead(7, hidden_units=(5,), activation="relu", name="shared_head")(both)
    outputs = MultiTaskHead(
        {"label": {"units": 3, "activation": "softmax", "hidden_units": [4]}, "score": 1},
        name="heads",
    )(hidden)
    return keras.Model({"sequence": seq, "vector": vec}, outputs, name="every_layer")


def inputs() -> dict:
    rng = np.random.default_rng(0)
    seq = rng.normal(size=(3, 5, 6)).astype("float32")
    seq[1, 3:] = 0.0
    return {"sequence": seq, "vector": rng.normal(size=(3, 5)).astype("float32")}


def main(tag: str) -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    x = inputs()
    model = every_layer_model()
    int8 = kbm.compress.quantize(model)
    arrays = dict(x)
    for suffix, m in (("float32", model), ("int8", int8)):
        path = os.path.join(here, f"{tag}-{keras.backend.backend()}-{suffix}.keras")
        kbm.save_model(m, path)
        for key, value in m(x, training=False).items():
            arrays[f"{suffix}_{key}"] = keras.ops.convert_to_numpy(value)
    np.savez(os.path.join(here, f"{tag}-{keras.backend.backend()}-io.npz"), **arrays)


if __name__ == "__main__":
    main(sys.argv[1])
