"""The end-to-end demo: train, save, reload, verify, quantize and explain, offline.

Everything runs on scikit-learn's bundled digits (real 8x8 images, no download):
the `cnn` on the images, the `attention_rnn` on their rows as sequences, and the
`multitask` model on the pixels with a digit head and a parity head.
"""

from __future__ import annotations

import json
import os
import sys
import time

import keras
import numpy as np

import keras_bigmodel as kbm
import zoo
from keras_bigmodel.cli import digits as views
from keras_bigmodel.cli import progress_verbosity
from keras_bigmodel.data import load_digits
from keras_bigmodel.verification import max_difference, predictions

CNN_TARGET = 0.95
FULL_EPOCHS = {"cnn": 15, "attention_rnn": 30, "multitask": 25}


def _say(stream, text=""):
    print(text, file=stream, flush=True)


def _train(name, data, epochs, stream):
    model = zoo.build(name, **views.TRAIN_OVERRIDES[name])
    _say(stream, f"\n== {name}: {model.count_params():,} parameters, {epochs} epochs")
    model.fit(
        views.model_inputs(model, data.x_train),
        views.model_targets(model, data.y_train),
        epochs=epochs,
        batch_size=32,
        verbose=progress_verbosity(stream),
    )
    return model


def _save_and_verify(model, path, data):
    kbm.save_model(model, path)
    restored = kbm.load_model(path)
    x = views.model_inputs(model, data.x_test)
    diff = max_difference(predictions(restored, x), predictions(model, x))
    return restored, diff


def run_demo(out_dir: str = "bigmodel-demo", quick: bool = False, epochs: int | None = None,
             seed: int = 0, stream=None) -> dict:
    """Runs the demo and returns its results (also written to `out_dir/results.json`).

    Args:
        out_dir: Where the models, pictures and results go (created if missing).
        quick: One epoch per model and no Score-CAM, for a fast smoke run.
        epochs: Epochs for every model, overriding the defaults.
        seed: Seed of Keras, the split and the initial weights.
        stream: Where to print (default: standard output).
    """
    stream = stream or sys.stdout
    started = time.perf_counter()
    keras.utils.set_random_seed(seed)
    os.makedirs(out_dir, exist_ok=True)
    data = load_digits(seed=seed)
    _say(stream, f"keras-bigmodel {kbm.__version__} demo on Keras {keras.__version__} "
                 f"({keras.backend.backend()} backend)")
    _say(stream, f"Data: scikit-learn's bundled digits, {len(data.x_train)} train / "
                 f"{len(data.x_test)} test images of 8x8 pixels")

    results: dict = {"backend": keras.backend.backend(), "models": {}, "files": {}}
    for name in ("cnn", "attention_rnn", "multitask"):
        n_epochs = epochs if epochs is not None else (1 if quick else FULL_EPOCHS[name])
        model = _train(name, data, n_epochs, stream)
        path = os.path.join(out_dir, f"{name}.keras")
        restored, diff = _save_and_verify(model, path, data)
        results["models"][name] = {
            "accuracy": views.accuracy(restored, data.x_test, data.y_test),
            "parameters": model.count_params(),
            "file": path,
            "bytes": os.path.getsize(path),
            "reload_max_difference": diff,
        }
        results[f"_{name}"] = restored

    cnn = results.pop("_cnn")
    attention_rnn = results.pop("_attention_rnn")
    results.pop("_multitask")

    _say(stream, "\n== int8 quantization of the CNN (keras Model.quantize)")
    int8 = kbm.compress.quantize(cnn)
    int8_path = os.path.join(out_dir, "cnn-int8.keras")
    int8_restored, int8_diff = _save_and_verify(int8, int8_path, data)
    results["int8"] = {
        "accuracy": views.accuracy(int8_restored, data.x_test, data.y_test)["accuracy"],
        "file": int8_path,
        "bytes": os.path.getsize(int8_path),
        "reload_max_difference": int8_diff,
    }

    _say(stream, "== explanations")
    samples = data.x_test[:8]
    labels = np.argmax(cnn.predict(samples, verbose=0), axis=-1)
    titles = [f"digit {d} -> {p}" for d, p in zip(data.y_test[:8], labels)]
    if keras.backend.backend() == "tensorflow":
        cam = kbm.explain.gradcam(cnn, samples, labels.tolist())
        results["files"]["gradcam"] = kbm.explain.save_heatmap(
            cam, os.path.join(out_dir, "cnn-gradcam.png"), images=samples, titles=titles)
        sal = kbm.explain.saliency(cnn, samples, labels.tolist(), smooth_samples=0 if quick else 20)
        results["files"]["saliency"] = kbm.explain.save_heatmap(
            sal, os.path.join(out_dir, "cnn-saliency.png"), images=samples, titles=titles)
    else:
        _say(stream, "   (saliency and Grad-CAM use tf-keras-vis: TensorFlow backend only)")
    sequences = views.model_inputs(attention_rnn, samples)
    scores = kbm.explain.attention_scores(attention_rnn, sequences)
    rnn_labels = np.argmax(attention_rnn.predict(sequences, verbose=0), axis=-1)
    results["files"]["attention"] = kbm.explain.save_attention_plot(
        scores, os.path.join(out_dir, "attention_rnn-attention.png"), sequences=sequences,
        titles=[f"digit {d} -> {p}" for d, p in zip(data.y_test[:8], rnn_labels)])

    results["quick"] = quick
    results["seconds"] = round(time.perf_counter() - started, 1)
    results["cnn_target"] = CNN_TARGET
    results["cnn_target_met"] = results["models"]["cnn"]["accuracy"]["accuracy"] >= CNN_TARGET
    with open(os.path.join(out_dir, "results.json"), "w", encoding="utf-8") as f:
        json.dump(results, f, indent=2)
    _print_table(results, out_dir, stream)
    return results


def _print_table(results, out_dir, stream):
    rows = []
    for name, r in results["models"].items():
        acc = ", ".join(f"{k} {v:.3f}" for k, v in r["accuracy"].items())
        rows.append((name, acc, f"{r['bytes'] / 1024:.0f} KiB", "yes" if r["reload_max_difference"] <= 1e-6 else "NO"))
    i8 = results["int8"]
    rows.append(("cnn int8", f"accuracy {i8['accuracy']:.3f}", f"{i8['bytes'] / 1024:.0f} KiB",
                 "yes" if i8["reload_max_difference"] <= 1e-6 else "NO"))
    widths = [max(len(str(c)) for c in col) for col in zip(("model", "test accuracy", "file size", "reload ok"), *rows)]
    line = "  ".join("{:<%d}" % w for w in widths)
    _say(stream, "\n" + line.format("model", "test accuracy", "file size", "reload ok"))
    _say(stream, line.format(*("-" * w for w in widths)))
    for row in rows:
        _say(stream, line.format(*row))
    cnn = results["models"]["cnn"]
    ratio = i8["bytes"] / cnn["bytes"]
    _say(stream, f"\nCNN float32 vs int8: {cnn['bytes']:,} -> {i8['bytes']:,} bytes ({ratio:.2f}x), "
                 f"accuracy {cnn['accuracy']['accuracy']:.3f} -> {i8['accuracy']:.3f}")
    met = "met" if results["cnn_target_met"] else "NOT met"
    if results.get("quick"):
        met += " (a --quick run trains one epoch; run without it for the real figures)"
    _say(stream, f"CNN accuracy target {results['cnn_target']:.2f}: {met}; total {results['seconds']} s")
    _say(stream, f"Files in {os.path.abspath(out_dir)}: "
                 + ", ".join(sorted(os.listdir(out_dir))))
