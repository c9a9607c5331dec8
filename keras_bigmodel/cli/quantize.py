"""`quantize MODEL --format keras|onnx|litert [--data PATH] [--prune S --epochs N]`:
compress a trained preset directory or a `.keras` file, and say what it gained.

Before and after, measured in the same run: the file's size (and gzip'd), the accuracy
on `--data` (its test split for `digits`) and the latency of one batch of 1 and of 64
examples. `--format keras` writes Keras's int8 (or int4) model, `onnx` / `litert` an
int8 file calibrated on `--data` (its training split for `digits`) with onnxruntime /
LiteRT. The output keeps the source's data description (data.json: labels, class
names, feature columns), so `evaluate` and `predict` read it as they read the input.

A model with an `ImagePreprocessing` front (trained on an image folder: raw pixels of
any size) keeps its front with `--format keras`; `onnx` and `litert` export it at its
training size (`image_preprocessing.at_training_size`: the front then only rescales;
Keras's antialiased resize has no ONNX conversion), and the data is read at that size
here and by the commands that run the exported file.
"""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import time

import keras
import numpy as np

import keras_bigmodel as kbm
import zoo
from keras_bigmodel.cli._common import (
    CommandError,
    keras_data,
    load_data,
    load_model,
    say,
    view_for,
    write_data_record,
)
from keras_bigmodel.compress.export import raw_column_layers
from keras_bigmodel.data import image_preprocessing
from keras_bigmodel.models import provenance

__all__ = ["FORMATS", "run_quantize"]

FORMATS = {"keras": ".keras", "onnx": ".onnx", "litert": ".tflite"}
CALIBRATION_EXAMPLES = 256


def _accuracy(outputs, dataset, view) -> dict[str, float] | None:
    """Top-1 accuracy per output on a labelled dataset (binary: at 0.5)."""
    if dataset is None or not dataset.labelled:
        return None
    if not isinstance(outputs, dict):
        outputs = {dataset.tasks[0]: outputs}
    scores = {}
    for task, probabilities in outputs.items():
        if task not in dataset.labels:
            continue
        p, y = np.asarray(probabilities), np.asarray(dataset.labels[task])
        if y.ndim == 2 and y.shape[1] > 1:
            y = np.argmax(y, axis=-1)
        guess = (p[:, 0] > 0.5).astype(int) if p.shape[-1] == 1 else np.argmax(p, axis=-1)
        known = y.reshape(len(y), -1)[:, 0] >= 0
        scores[task] = float(np.mean(guess[known] == y.reshape(len(y), -1)[known, 0]))
    return scores


def _latency(run, x, reps: int) -> float:
    """Median seconds of `run(x)` over `reps` runs after two warm-up runs."""
    run(x)
    run(x)
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        run(x)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _slice(x, n: int):
    return keras.tree.map_structure(lambda a: np.asarray(a)[:n], x)


def _probe_batch(x, n: int):
    """`n` examples of `x` (repeated if it has fewer)."""
    count = len(keras.tree.flatten(x)[0])
    index = np.arange(n) % count
    return keras.tree.map_structure(lambda a: np.asarray(a)[index], x)


def _sizes(path: str) -> tuple[int, int]:
    files = (
        [os.path.join(path, f) for f in sorted(os.listdir(path))] if os.path.isdir(path) else [path]
    )
    model_files = [f for f in files if f.endswith(tuple(FORMATS.values()))] or files
    return (
        sum(os.path.getsize(f) for f in model_files),
        sum(kbm.compress.size.gzip_size(f) for f in model_files),
    )


def _check_args(args) -> None:
    if args.format not in FORMATS:
        raise CommandError(f"--format must be one of {sorted(FORMATS)}. Received: {args.format}")
    out_is_file = args.out.endswith(".keras")
    if args.format != "keras" and out_is_file:
        raise CommandError(
            f"--out must be a directory for --format {args.format} (it gets "
            f"model{FORMATS[args.format]}, runtime.json and data.json). Received: {args.out}"
        )
    if args.format != "keras" and not args.data:
        raise CommandError(
            f"--format {args.format} calibrates int8 activations on examples: give --data"
        )
    if args.prune is not None and not args.data:
        raise CommandError("--prune fine-tunes on labelled examples: give --data")
    if os.path.abspath(args.out) == os.path.abspath(args.model):
        raise CommandError(f"--out must differ from MODEL. Received: {args.out}")
    if not os.path.lexists(args.model):
        raise CommandError(f"No such file or directory: {args.model}")


def run_quantize(args, out) -> None:
    """Prunes (optionally), quantizes and writes MODEL; prints before and after."""
    _check_args(args)
    loaded = load_model(args.model)
    model = loaded.model
    view = view_for(model)
    origin = provenance(model)
    test = train = None
    if args.data:
        test = load_data(args, loaded, require_labels=False, view=view, subset="test", out=out)
        train = load_data(args, loaded, require_labels=False, view=view, subset="train")
        if not (test.in_memory and train.in_memory):
            raise CommandError("quantize reads --data into memory; leave out --stream")
    x_test = keras_data(test, view, args.batch_size, with_labels=False)["x"] if test else None
    x_train = keras_data(train, view, args.batch_size, with_labels=False)["x"] if train else None
    if x_test is None:
        x_test = keras.tree.map_structure(
            lambda t: (
                np.random.default_rng(0).uniform(size=(64,) + tuple(t.shape[1:])).astype("float32")
            ),
            image_preprocessing.at_training_size(model).input,
        )

    pruned_note = ""
    work = model
    if args.prune is not None:
        if not train.labelled:
            raise CommandError(f"--prune fine-tunes on labelled examples; {args.data} has none")
        compiled = (
            zoo.load_preset(args.model) if os.path.isdir(args.model) else kbm.load_model(args.model)
        )
        if not compiled.compiled:
            compiled.compile(optimizer="adam", loss="categorical_crossentropy")
        pruned = kbm.compress.prune(compiled, sparsity=args.prune)
        fit = keras_data(train, view, args.batch_size, shuffle=True)
        say(out, f"pruning to {args.prune:.0%} sparsity while training {args.epochs} epoch(s) ...")
        pruned.fit(
            **fit,
            epochs=args.epochs,
            shuffle=True,
            callbacks=[kbm.compress.PruningCallback()],
            verbose=0,
        )
        work = kbm.compress.strip_pruning(pruned)
        pruned_note = f"pruned {kbm.compress.sparsity_report(work)['sparsity']:.0%} + "

    calibration = _slice(x_train, CALIBRATION_EXAMPLES) if x_train is not None else None
    with tempfile.TemporaryDirectory() as tmp:
        staging = os.path.join(tmp, "out")
        os.makedirs(staging)
        if args.format == "keras":
            result = kbm.compress.quantize(work, mode=args.mode)
            if args.out.endswith(".keras"):
                written = kbm.save_model(result, os.path.join(staging, "model.keras"))
            else:
                zoo.save_preset(
                    result,
                    staging,
                    name=(origin or {}).get("name"),
                    config=(origin or {}).get("config"),
                )
                written = staging
            after_model = result
            after_run = after_model.predict_on_batch
            label = f"{pruned_note}{args.mode}"
        else:
            tabular = False
            filename = "model" + FORMATS[args.format]
            target = os.path.join(staging, filename)
            if args.format == "onnx":
                kbm.compress.export_onnx(
                    work, target, quantization="int8", calibration_data=calibration
                )
            else:
                if keras.backend.backend() != "tensorflow":
                    raise CommandError(
                        "--format litert converts with TensorFlow: run with KERAS_BACKEND="
                        f"tensorflow (the backend is {keras.backend.backend()})"
                    )
                # a table's raw columns cannot share the full-integer input scale
                # (export_tflite refuses): int8 weights, float activations instead
                tabular = bool(raw_column_layers(work))
                kbm.compress.export_tflite(
                    work,
                    target,
                    quantization="dynamic" if tabular else "int8",
                    representative_data=None if tabular else calibration,
                )
                if tabular:
                    say(
                        out,
                        "a table's raw columns: LiteRT dynamic-range int8 (int8 weights, "
                        "float activations); --format onnx quantizes activations too",
                    )
            # a model that resizes images itself is exported at its training size
            kbm.compress.write_runtime_record(image_preprocessing.at_training_size(work), staging)
            after_model = kbm.compress.load_runtime_model(target)
            after_run = after_model.runtime.run
            written = staging
            coverage = kbm.compress.op_coverage(target)
            dynamic = args.format == "litert" and tabular
            label = f"{pruned_note}{'dynamic-range ' if dynamic else ''}int8 {args.format}"
        if loaded.record is not None and os.path.isdir(written):
            write_data_record(written, loaded.record)

        before_bytes, before_gzip = _sizes(args.model)
        after_bytes, after_gzip = _sizes(written)
        before_acc = _accuracy(model.predict(x_test, verbose=0, batch_size=64), test, view)
        after_acc = _accuracy(after_model.predict(x_test, batch_size=64, verbose=0), test, view)
        latency = {}
        for batch, reps in ((1, 30), (64, 10)):
            probe = _probe_batch(x_test, batch)
            latency[batch] = (
                _latency(model.predict_on_batch, probe, reps),
                _latency(after_run, probe, reps),
            )
        # Into place: a file, or a directory replaced as a whole.
        if args.out.endswith(".keras"):
            shutil.move(written, args.out)
        else:
            if os.path.isdir(args.out) and not os.path.islink(args.out):
                shutil.rmtree(args.out)
            elif os.path.lexists(args.out):
                os.remove(args.out)
            shutil.copytree(staging, args.out)

    say(
        out,
        f"{label}: {before_bytes:,} -> {after_bytes:,} bytes ({after_bytes / before_bytes:.2f}x)"
        f" -> {args.out}",
    )
    rows = [
        ("", "before", "after"),
        ("file bytes", f"{before_bytes:,}", f"{after_bytes:,}"),
        ("gzip'd bytes", f"{before_gzip:,}", f"{after_gzip:,}"),
    ]
    if before_acc is not None:
        for task in before_acc:
            name = "accuracy" if len(before_acc) == 1 else f"accuracy {task}"
            rows.append(
                (name, f"{before_acc[task]:.4f}", f"{after_acc.get(task, float('nan')):.4f}")
            )
    for batch, (b, a) in latency.items():
        rows.append((f"ms at batch {batch}", f"{b * 1e3:.3f}", f"{a * 1e3:.3f}"))
    width = max(len(r[0]) for r in rows)
    for r in rows:
        say(out, f"  {r[0]:<{width}}  {r[1]:>12}  {r[2]:>12}")
    ratios = ", ".join(f"batch {b}: {a / s:.2f}x" for b, (s, a) in latency.items())
    say(out, f"latency after/before ({keras.backend.backend()} Keras float before): {ratios}")
    if args.format != "keras":
        say(out, f"int8 share of multiply-adds: {coverage['int8_share']:.0%}")
    if test is not None and test.labelled:
        say(out, f"accuracy on {test.source} ({len(test)} examples)")
