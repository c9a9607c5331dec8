"""Small presets and sample inputs for the export and runtime tests."""

from __future__ import annotations

import keras
import numpy as np

import zoo

# Small versions of every preset: the exporters' work grows with the graph, not the data.
SMALL = {
    "attention_rnn": {"units": 8, "attention_units": 4},
    "cnn": {"input_shape": (8, 8, 1), "filters": 4, "dense_units": 8},
    "crossmodal": {
        "image_shape": (8, 8, 1),
        "sequence_shape": (4, 4),
        "image_filters": 4,
        "image_units": 8,
        "sequence_units": 8,
        "attention_units": 4,
        "fusion_units": 8,
    },
    "multitask": {"trunk_units": (16,)},
    "rnn": {"units": 8},
}


def small_preset(name):
    return zoo.build(name, **SMALL.get(name, {}))


def sample_inputs(model, batch, seed=0):
    rng = np.random.default_rng(seed)
    return keras.tree.map_structure(
        lambda t: rng.uniform(size=(batch,) + tuple(t.shape[1:])).astype("float32"), model.input
    )


def keras_outputs(model, x):
    return [np.asarray(keras.ops.convert_to_numpy(o)) for o in keras.tree.flatten(model(x))]
