"""Inference outside Keras against Keras's own `predict_on_batch`, on the current
backend: ONNX (`kbm.compress.export_onnx`, run with onnxruntime) everywhere, LiteRT
(`kbm.compress.export_tflite`, run with the `ai_edge_litert` interpreter) where the
conversion runs (TensorFlow)."""

from __future__ import annotations

import os
import tempfile

import numpy as np

from benchmarks.common import fmt_ratio, interleaved, median, ratio

PRESETS = ("cnn", "attention_rnn")
BATCHES = (1, 32)


def _random_batch(model, batch, seed=0):
    import keras

    rng = np.random.default_rng(seed)
    return keras.tree.map_structure(
        lambda t: rng.uniform(size=(batch,) + tuple(t.shape[1:])).astype("float32"), model.input
    )


def run(quick: bool = False) -> list[dict]:
    import keras
    import onnxruntime

    import keras_bigmodel as kbm
    import zoo

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in PRESETS:
            model = zoo.build(name, compile=False)
            onnx_path = kbm.compress.export_onnx(model, os.path.join(tmp, f"{name}.onnx"))
            session = onnxruntime.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
            names = [i.name for i in session.get_inputs()]
            for batch in BATCHES:
                x = _random_batch(model, batch)
                feed = dict(zip(names, keras.tree.flatten(x)))
                fns = {
                    "keras": lambda m=model, x=x: m.predict_on_batch(x),
                    "onnx": lambda s=session, f=feed: s.run(None, f),
                }
                if keras.backend.backend() == "tensorflow":
                    from ai_edge_litert.interpreter import Interpreter

                    path = kbm.compress.export_tflite(
                        model,
                        os.path.join(tmp, f"{name}-{batch}.tflite"),
                        quantization=None,
                        batch_size=batch,
                    )
                    runner = Interpreter(model_path=path).get_signature_runner()
                    lite_feed = dict(zip(sorted(runner.get_input_details()), keras.tree.flatten(x)))
                    fns["litert"] = lambda r=runner, f=lite_feed: r(**f)
                times = interleaved(fns, reps=5 if quick else 30, warmup=3, min_sample_seconds=0.1)
                entry = {
                    "preset": name,
                    "batch": batch,
                    "seconds": {k: median(v) for k, v in times.items()},
                    "onnx_vs_keras": ratio(times, "onnx", "keras"),
                }
                if "litert" in times:
                    entry["litert_vs_keras"] = ratio(times, "litert", "keras")
                results.append(entry)
    return results


def rows(results):
    return [
        [
            r["preset"],
            r["batch"],
            f"{r['seconds']['keras'] * 1e3:.2f}",
            f"{r['seconds']['onnx'] * 1e3:.2f}",
            fmt_ratio(r["onnx_vs_keras"]),
            f"{r['seconds']['litert'] * 1e3:.2f}" if "litert" in r["seconds"] else "-",
            fmt_ratio(r["litert_vs_keras"]) if "litert_vs_keras" in r else "-",
        ]
        for r in results
    ]


HEADERS = ["preset", "batch", "keras ms", "onnx ms", "onnx/keras", "litert ms", "litert/keras"]
