"""AttentionLayer against the documents' implementation, the bare formula and an
honest floor.

Four classifiers on the same input, each ending in the same small softmax head
(`Dense(10, softmax)`, categorical cross-entropy), timed interleaved: our
`AttentionLayer`; the documents' `AttentionLayer` exactly as they wrote it (ported to
Keras 3 ops below); the same additive attention written as bare `keras.ops` calls on
four weights (the least any implementation of this formula does: no sublayers, masks,
casts or dropout); and the floor: the unavoidable part of the work, the `W` projection
(a `Dense(units)` on every time step), pooled by `GlobalAveragePooling1D` into the
same head. (An earlier floor trained the projection with an MSE over its whole
(batch, time, units) output, which does more work than the projection it stands for.)
Training steps and inference, without and with the backend's compiler (`jit_compile`:
XLA on TensorFlow and JAX, torch.compile on PyTorch; without it, JAX and PyTorch run
eagerly, TensorFlow as a graph). `vs_floor` (also kept as `vs_projection`) is
ours / floor; `vs_bare` ours / bare formula.
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


class BareAttention(keras.layers.Layer):
    """softmax_t(v . tanh(W x_t + b) + c) pooled over x: the formula, nothing else."""

    def __init__(self, units):
        super().__init__()
        self.units = units

    def build(self, input_shape):
        features = input_shape[-1]
        self.w = self.add_weight(shape=(features, self.units), initializer="glorot_uniform")
        self.b = self.add_weight(shape=(self.units,), initializer="zeros")
        self.v = self.add_weight(shape=(self.units,), initializer="glorot_uniform")
        self.c = self.add_weight(shape=(), initializer="zeros")

    def call(self, inputs):
        hidden = ops.tanh(ops.matmul(inputs, self.w) + self.b)
        weights = ops.softmax(ops.matmul(hidden, self.v) + self.c, axis=-1)
        return ops.squeeze(ops.matmul(ops.expand_dims(weights, 1), inputs), axis=1)


SHAPES = {
    "small": {"batch": 64, "time": 32, "features": 64, "units": 32},
    "large": {"batch": 256, "time": 512, "features": 256, "units": 128},
}


CLASSES = 10


def _model(kind, s, jit):
    inputs = keras.Input((s["time"], s["features"]))
    if kind == "ours":
        pooled = AttentionLayer(s["units"])(inputs)
    elif kind == "documents":
        pooled = DocumentsAttentionLayer(s["units"])(inputs)
    elif kind == "bare":
        pooled = BareAttention(s["units"])(inputs)
    else:  # the floor: the projection, pooled the cheapest way
        pooled = keras.layers.GlobalAveragePooling1D()(keras.layers.Dense(s["units"])(inputs))
    outputs = keras.layers.Dense(CLASSES, activation="softmax")(pooled)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="sgd", loss="categorical_crossentropy", jit_compile=jit)
    return model


def run(quick: bool = False) -> list[dict]:
    results = []
    shapes = {"small": SHAPES["small"]} if quick else SHAPES
    for shape_name, s in shapes.items():
        rng = np.random.default_rng(0)
        x = rng.normal(size=(s["batch"], s["time"], s["features"])).astype("float32")
        reps = 5 if quick else (20 if shape_name == "small" else LARGE_REPS)
        for jit in (False, True):
            models = {k: _model(k, s, jit) for k in KINDS}
            labels = keras.utils.to_categorical(rng.integers(0, CLASSES, s["batch"]), CLASSES)
            targets = {k: labels for k in models}
            for phase in ("train step", "inference"):
                if phase == "train step":
                    fns = {
                        k: (lambda m=m, x=x, y=targets[k]: m.train_on_batch(x, y))
                        for k, m in models.items()
                    }
                else:
                    fns = {k: (lambda m=m, x=x: m.predict_on_batch(x)) for k, m in models.items()}
                entry = {"shape": shape_name, **s, "xla": jit, "phase": phase}
                try:
                    times = interleaved(fns, reps=reps, warmup=2)
                except Exception as e:  # e.g. a compiler that cannot handle a model
                    results.append({**entry, "error": f"{type(e).__name__}: {str(e)[:300]}"})
                    continue
                results.append(
                    {
                        **entry,
                        "seconds": {k: median(v) for k, v in times.items()},
                        "vs_documents": ratio(times, "ours", "documents"),
                        "vs_floor": ratio(times, "ours", "projection"),
                        "vs_projection": ratio(times, "ours", "projection"),
                        "vs_bare": ratio(times, "ours", "bare"),
                        "bare_vs_projection": ratio(times, "bare", "projection"),
                        "documents_vs_projection": ratio(times, "documents", "projection"),
                    }
                )
    return results


KINDS = ("ours", "documents", "bare", "projection")  # "projection": the floor
# The targets for ours / floor, train step: eager JAX and PyTorch, any compiler.
FLOOR_TARGETS = {"eager": 1.15, "compiled": 1.10}


def targets(results) -> list[str]:
    """ours/floor and ours/bare per shape, compiler and phase, with the verdicts."""
    import keras

    eager = keras.backend.backend() in ("jax", "torch")
    lines = []
    for r in results:
        if "error" in r or r["phase"] != "train step":
            continue
        limit = FLOOR_TARGETS["compiled" if r["xla"] or not eager else "eager"]
        m = r["vs_floor"]["median"]
        lines.append(
            f"attention {r['shape']} {'jit' if r['xla'] else 'no jit'} train step: ours/floor "
            f"{m:.3f} (target <= {limit}): {'met' if m <= limit else 'MISSED'}; ours/bare "
            f"{r['vs_bare']['median']:.3f}"
        )
    return lines


LARGE_REPS = 5  # samples at the large shape (a train step is 0.2-3 s here)


def rows(results):
    out = []
    for r in results:
        head = [r["shape"], "jit" if r["xla"] else "no jit", r["phase"]]
        if "error" in r:
            out.append(head + [r["error"][:60]] + ["-"] * 5)
            continue
        out.append(
            head
            + [f"{r['seconds']['ours'] * 1e3:.2f}"]
            + [
                fmt_ratio(r[k])
                for k in (
                    "vs_documents",
                    "vs_bare",
                    "vs_floor",
                    "bare_vs_projection",
                    "documents_vs_projection",
                )
            ]
        )
    return out


HEADERS = [
    "shape",
    "compile",
    "phase",
    "ours ms",
    "ours/documents",
    "ours/bare",
    "ours/floor",
    "bare/floor",
    "documents/floor",
]


def main(argv=None) -> int:
    import argparse
    import time

    from benchmarks.common import table

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the small shape, 5 samples")
    parser.add_argument("--large", action="store_true", help="also the large shape (slow)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    results = run(quick=not args.large)
    print(f"backend {keras.backend.backend()}, {time.perf_counter() - start:.0f} s")
    print(table(HEADERS, rows(results)))
    print("\n".join(targets(results)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
