"""int8 against float32: the `.keras` file and the inference time of the same preset,
quantized with `kbm.compress.quantize` (Keras's dynamic int8: int8 weights with
per-channel scales, activations quantized on the fly), on the current backend."""

from __future__ import annotations

import os
import tempfile

import numpy as np

from benchmarks.common import fmt_ratio, interleaved, median, ratio

PRESETS = ("cnn", "multitask")  # the documents' CNN (Dense-heavy) and the MLP trunk


def _random_batch(model, batch, seed=0):
    import keras

    rng = np.random.default_rng(seed)
    return keras.tree.map_structure(
        lambda t: rng.uniform(size=(batch,) + tuple(t.shape[1:])).astype("float32"), model.input
    )


def run(quick: bool = False, batch: int = 32) -> list[dict]:

    import keras_bigmodel as kbm
    import zoo

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in PRESETS:
            model = zoo.build(name, compile=False)
            quantized = kbm.compress.quantize(model)
            x = _random_batch(model, batch)
            sizes = {
                k: os.path.getsize(kbm.save_model(m, os.path.join(tmp, f"{name}-{k}.keras")))
                for k, m in (("float32", model), ("int8", quantized))
            }
            times = interleaved(
                {
                    "float32": lambda m=model, x=x: m.predict_on_batch(x),
                    "int8": lambda m=quantized, x=x: m.predict_on_batch(x),
                },
                reps=5 if quick else 30,
                warmup=2,
                min_sample_seconds=0.1,
            )
            results.append(
                {
                    "preset": name,
                    "batch": batch,
                    "bytes": sizes,
                    "size_ratio": sizes["int8"] / sizes["float32"],
                    "seconds": {k: median(v) for k, v in times.items()},
                    "int8_vs_float32": ratio(times, "int8", "float32"),
                }
            )
    return results


def rows(results):
    return [
        [
            r["preset"],
            f"{r['bytes']['float32']:,}",
            f"{r['bytes']['int8']:,}",
            f"{r['size_ratio']:.2f}x",
            f"{r['seconds']['float32'] * 1e3:.2f}",
            f"{r['seconds']['int8'] * 1e3:.2f}",
            fmt_ratio(r["int8_vs_float32"]),
        ]
        for r in results
    ]


HEADERS = [
    "preset",
    "float32 bytes",
    "int8 bytes",
    "int8/float32 size",
    "float32 ms/batch",
    "int8 ms/batch",
    "int8/float32 time",
]
