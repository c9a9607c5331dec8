"""The end-to-end demo: train, save, reload, verify, quantize and explain, offline.

Everything runs on scikit-learn's bundled digits (real 8x8 images, no download), each
preset in its real (not tiny) configuration, shown the digits through its registered
`zoo.views.DataView`: the `cnn` on the images, the `attention_rnn` on their rows as
an 8-step sequence, and the `multitask` model on the 64 pixels with a digit head and
a parity head. Labels are integers (the presets' `labels="sparse"`). Accuracy is
measured on the 450 held-out test digits, after reloading each saved file.
"""

from __future__ import annotations

import os
import sys
import time

import keras
import numpy as np

import keras_bigmodel as kbm
import zoo
from keras_bigmodel import fileio
from keras_bigmodel.cli._common import progress, say
from keras_bigmodel.cli._report import classification_metrics
from keras_bigmodel.data import load_digits
from keras_bigmodel.verification import max_difference, predictions

__all__ = ["CNN_TARGET", "DEMO_PRESETS", "FULL_EPOCHS", "run_demo", "run_demo_command"]

CNN_TARGET = 0.95
DEMO_PRESETS = ("cnn", "attention_rnn", "multitask")
FULL_EPOCHS = {"cnn": 15, "attention_rnn": 30, "multitask": 25}
_DIGITS = [str(i) for i in range(10)]


def _accuracy(model, view, images, labels) -> dict:
    """Test accuracy per output ("accuracy" for a one-output model)."""
    features, targets = view.digits(images, labels)
    predicted = predictions(model, view.model_inputs(features))  # 450 digits: one eager call
    if not isinstance(targets, dict):
        predicted, targets = {"accuracy": predicted}, {"accuracy": targets}
    scores = {}
    for key, p in predicted.items():
        p = np.asarray(p)
        names = [str(i) for i in range(p.shape[-1])]
        scores[key] = classification_metrics(targets[key], p, names)["accuracy"]
    return scores


def _train(name, x, y, epochs, stream):
    view = zoo.get_preset(name).data
    features, labels = view.digits(x, y)
    model = zoo.build(name, labels="sparse", **view.config_for(features, labels))
    say(stream, f"\n== {name}: {model.count_params():,} parameters, {epochs} epochs")
    model.fit(
        view.model_inputs(features),
        view.model_targets(labels),
        epochs=epochs,
        batch_size=32,
        verbose=progress(stream),
    )
    return model, view


def _save_and_verify(model, view, path, images):
    kbm.save_model(model, path)
    restored = kbm.load_model(path)
    x = view.model_inputs(view.digits(images, np.zeros(len(images), "int64"))[0])
    return restored, max_difference(predictions(restored, x), predictions(model, x))


def run_demo(
    out_dir: str = "bigmodel-demo",
    quick: bool = False,
    epochs: int | None = None,
    seed: int = 0,
    stream=None,
    max_train: int | None = None,
) -> dict:
    """Runs the demo and returns its results (also written to `out_dir/results.json`).

    Args:
        out_dir: Where the models, pictures and results go (created if missing).
        quick: One epoch per model, for a fast smoke run.
        epochs: Epochs for every model, overriding the defaults.
        seed: Seed of Keras, the initial weights and the shuffling.
        stream: Where to print (default: standard output).
        max_train: Train on at most this many digits (for tests; the table says so).

    Returns:
        A dict: `backend`, `models` (accuracy, parameters, file, bytes,
        reload_max_difference per preset), `int8`, `files`, `seconds`, ...
    """
    stream = stream or sys.stdout
    started = time.perf_counter()
    keras.utils.set_random_seed(seed)
    os.makedirs(out_dir, exist_ok=True)
    digits = load_digits()
    x_train, y_train = digits.x_train[:max_train], digits.y_train[:max_train]
    say(
        stream,
        f"keras-bigmodel {kbm.__version__} demo on Keras {keras.__version__} "
        f"({keras.backend.backend()} backend)",
    )
    say(
        stream,
        f"Data: scikit-learn's bundled digits, {len(x_train)} train / "
        f"{len(digits.x_test)} test images of 8x8 pixels",
    )

    results: dict = {
        "backend": keras.backend.backend(),
        "models": {},
        "files": {},
        "train_examples": len(x_train),
    }
    trained = {}
    for name in DEMO_PRESETS:
        n_epochs = epochs if epochs is not None else (1 if quick else FULL_EPOCHS[name])
        model, view = _train(name, x_train, y_train, n_epochs, stream)
        path = os.path.join(out_dir, f"{name}.keras")
        restored, diff = _save_and_verify(model, view, path, digits.x_test)
        results["models"][name] = {
            "epochs": n_epochs,
            "accuracy": _accuracy(restored, view, digits.x_test, digits.y_test),
            "parameters": model.count_params(),
            "file": path,
            "bytes": os.path.getsize(path),
            "reload_max_difference": diff,
        }
        trained[name] = (restored, view)

    say(stream, "\n== int8 quantization of the CNN (keras Model.quantize)")
    cnn, cnn_view = trained["cnn"]
    int8 = kbm.compress.quantize(cnn)
    int8_path = os.path.join(out_dir, "cnn-int8.keras")
    int8_restored, int8_diff = _save_and_verify(int8, cnn_view, int8_path, digits.x_test)
    results["int8"] = {
        "accuracy": _accuracy(int8_restored, cnn_view, digits.x_test, digits.y_test)["accuracy"],
        "file": int8_path,
        "bytes": os.path.getsize(int8_path),
        "reload_max_difference": int8_diff,
    }

    say(stream, "== explanations (keras_bigmodel.explain.explain)")
    images, labels = digits.x_test[:8], digits.y_test[:8]
    for name, file in (
        ("cnn", "cnn-gradcam.png"),
        ("attention_rnn", "attention_rnn-attention.png"),
    ):
        model, view = trained[name]
        done = kbm.explain.explain(
            model,
            view.model_inputs(view.digits(images, labels)[0]),
            os.path.join(out_dir, file),
            labels=labels,
            class_names=_DIGITS,
            model_name=name,
        )
        results["files"][done["method"]] = done["path"]
        say(stream, f"   {done['method']} of the {name} -> {done['path']}")

    results["quick"] = quick
    results["seconds"] = round(time.perf_counter() - started, 1)
    results["cnn_target"] = CNN_TARGET
    results["cnn_target_met"] = results["models"]["cnn"]["accuracy"]["accuracy"] >= CNN_TARGET
    fileio.write_json_atomic(os.path.join(out_dir, "results.json"), results)
    _print_table(results, out_dir, stream)
    return results


def _print_table(results, out_dir, stream):
    rows = []
    for name, r in results["models"].items():
        acc = ", ".join(f"{k} {v:.3f}" for k, v in r["accuracy"].items())
        ok = "yes" if r["reload_max_difference"] <= 1e-6 else "NO"
        rows.append((name, str(r["epochs"]), acc, f"{r['bytes'] / 1024:.0f} KiB", ok))
    i8 = results["int8"]
    rows.append(
        (
            "cnn int8",
            "-",
            f"accuracy {i8['accuracy']:.3f}",
            f"{i8['bytes'] / 1024:.0f} KiB",
            "yes" if i8["reload_max_difference"] <= 1e-6 else "NO",
        )
    )
    head = ("model", "epochs", "test accuracy (450 digits)", "file size", "reload ok")
    widths = [max(len(str(c)) for c in col) for col in zip(head, *rows)]
    line = "  ".join(f"{{:<{w}}}" for w in widths)
    say(stream, "\n" + line.format(*head))
    say(stream, line.format(*("-" * w for w in widths)))
    for row in rows:
        say(stream, line.format(*row))
    cnn = results["models"]["cnn"]
    ratio = i8["bytes"] / cnn["bytes"]
    say(
        stream,
        f"\nCNN float32 vs int8: {cnn['bytes']:,} -> {i8['bytes']:,} bytes ({ratio:.2f}x), "
        f"accuracy {cnn['accuracy']['accuracy']:.3f} -> {i8['accuracy']:.3f}",
    )
    met = "met" if results["cnn_target_met"] else "NOT met"
    if results.get("quick"):
        met += " (a --quick run trains one epoch; run without it for the real figures)"
    if results["train_examples"] < 1347:
        met += f" (trained on only {results['train_examples']} digits)"
    say(
        stream,
        f"CNN accuracy target {results['cnn_target']:.2f}: {met}; total {results['seconds']} s",
    )
    say(stream, f"Files in {os.path.abspath(out_dir)}: " + ", ".join(sorted(os.listdir(out_dir))))


def run_demo_command(args, out) -> None:
    """`keras-bigmodel demo`."""
    run_demo(out_dir=args.out, quick=args.quick, epochs=args.epochs, seed=args.seed, stream=out)
