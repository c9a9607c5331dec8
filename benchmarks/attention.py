"""AttentionLayer against the documents' implementation and its own Dense projection.

Three models on the same input, timed interleaved: our `AttentionLayer`; the
documents' `AttentionLayer` exactly as they wrote it (ported to Keras 3 ops below);
and the unavoidable part of the work, the `W` projection alone (a `Dense(units)` on
every time step). Training steps and inference, without XLA and with it.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from benchmarks.common import fmt_ratio, interleaved, median, ratio
from keras_bigmodel.layers import AttentionLayer


class DocumentsAttentionLayer(keras.layers.Layer):
    """The documents' section 2.2 code, with tf.* replaced by keras.ops."""

    def __init__(self, units):
        super().__init__()
        self.W = keras.layers.Dense(units)
        self.V = keras.layers.Dense(1)

    def call(self, inputs):
        score = self.V(ops.tanh(self.W(inputs)))
        attention_weights = ops.softmax(score, axis=1)
        context_vector = attention_weights * inputs
        context_vector = ops.sum(context_vector, axis=1)
        return context_vector


SHAPES = {
    "small": {"batch": 64, "time": 32, "features": 64, "units": 32},
    "large": {"batch": 256, "time": 512, "features": 256, "units": 128},
}


def _model(kind, s, jit):
    inputs = keras.Input((s["time"], s["features"]))
    if kind == "ours":
        outputs = AttentionLayer(s["units"])(inputs)
    elif kind == "documents":
        outputs = DocumentsAttentionLayer(s["units"])(inputs)
    else:
        outputs = keras.layers.Dense(s["units"])(inputs)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="sgd", loss="mse", jit_compile=jit)
    return model


def run(quick: bool = False) -> list[dict]:
    results = []
    shapes = {"small": SHAPES["small"]} if quick else SHAPES
    for shape_name, s in shapes.items():
        rng = np.random.default_rng(0)
        x = rng.normal(size=(s["batch"], s["time"], s["features"])).astype("float32")
        reps = 5 if quick else (20 if shape_name == "small" else 8)
        for jit in (False, True):
            models = {k: _model(k, s, jit) for k in ("ours", "documents", "projection")}
            targets = {k: np.zeros((s["batch"],) + tuple(m.output.shape[1:]), "float32")
                       for k, m in models.items()}
            for phase in ("train step", "inference"):
                if phase == "train step":
                    fns = {k: (lambda m=m, y=targets[k]: m.train_on_batch(x, y)) for k, m in models.items()}
                else:
                    fns = {k: (lambda m=m: m.predict_on_batch(x)) for k, m in models.items()}
                times = interleaved(fns, reps=reps, warmup=2)
                results.append({
                    "shape": shape_name, **s, "xla": jit, "phase": phase,
                    "seconds": {k: median(v) for k, v in times.items()},
                    "vs_documents": ratio(times, "ours", "documents"),
                    "vs_projection": ratio(times, "ours", "projection"),
                    "documents_vs_projection": ratio(times, "documents", "projection"),
                })
    return results


def rows(results):
    return [[r["shape"], "XLA" if r["xla"] else "no XLA", r["phase"],
             f"{r['seconds']['ours'] * 1e3:.2f}", fmt_ratio(r["vs_documents"]),
             fmt_ratio(r["vs_projection"]), fmt_ratio(r["documents_vs_projection"])]
            for r in results]


HEADERS = ["shape", "compile", "phase", "ours ms", "ours/documents", "ours/projection",
           "documents/projection"]
