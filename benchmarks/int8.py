"""int8 against float32, every path, in one run on the current backend.

For the `cnn` (at its defaults, on the digits upsampled to 64x64x3), `attention_rnn`
(rows of the 8x8 digits as 8 steps) and `multitask` (the 64 pixels; task1 the digit,
task2 the digit mod 5) presets, each trained a few epochs on the digits: latency at
batch 1 and 64 of Keras float32 (`predict_on_batch`, the reference of every ratio),
Keras int8 (`kbm.compress.quantize`), onnxruntime float32 / dynamic int8 / static QDQ
int8 (`export_onnx`) and, where the conversion runs (TensorFlow), LiteRT float32 /
dynamic-range / full-integer int8 (`export_tflite`), each through one
`kbm.compress.open_runtime` session; top-1 agreement with Keras float32 and accuracy on
the 450 test digits; the int8 share of multiply-adds (`op_coverage`); file sizes.

Then, on the `cnn` at the digits' own 8x8x1 (default filters and units), pruning to
80% with fine-tuning (accuracy, gzip'd file against the float file), 2:4 pruning
(checked exact) and quantization-aware training against post-training int8 (LiteRT
on TensorFlow, ONNX elsewhere; both int8 exports of the QAT model use its learned
scales). `--presets` with no name runs only this part.

    python -m benchmarks.int8 --quick          # about 2-3 minutes a backend
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np

from benchmarks.common import fmt_ratio, interleaved, median, ratio, table

PRESETS = ("cnn", "attention_rnn", "multitask")
BATCHES = (1, 64)
CALIBRATION = 256
# The targets for the fastest int8 runtime against Keras float32.
TARGETS = {"batch1": 0.5, "batch64": 0.8, "agreement": 0.99, "accuracy_drop": 0.005}


def _digits(name: str):
    """(x_train, y_train, x_test, test labels by output) for a preset on the digits."""
    import keras

    from keras_bigmodel.data import load_digits

    d = load_digits()
    onehot = keras.utils.to_categorical

    def arrange(x):
        if name == "cnn":
            return np.repeat(np.repeat(np.repeat(x, 8, 1), 8, 2), 3, 3)  # 64x64x3
        if name == "attention_rnn":
            return x[..., 0]  # 8 steps of 8 pixels
        return x.reshape(len(x), 64)

    def targets(y):
        if name == "multitask":
            return {"task1": onehot(y, 10), "task2": onehot(y % 5, 5)}
        return onehot(y, 10)

    test = {"task1": d.y_test, "task2": d.y_test % 5} if name == "multitask" else d.y_test
    return arrange(d.x_train), targets(d.y_train), arrange(d.x_test), test


def _top1(outputs):
    if isinstance(outputs, dict):
        return {k: np.argmax(v, axis=-1) for k, v in sorted(outputs.items())}
    return np.argmax(outputs, axis=-1)


def _scores(pred, reference, labels) -> tuple[float, float]:
    """(top-1 agreement with `reference`, accuracy), the mean over outputs."""
    import keras

    p, r, y = (keras.tree.flatten(v) for v in (_top1(pred), _top1(reference), labels))
    agreement = float(np.mean([np.mean(a == b) for a, b in zip(p, r)]))
    accuracy = float(np.mean([np.mean(a == b) for a, b in zip(p, y)]))
    return agreement, accuracy


def _slice(x, n):
    import keras

    return keras.tree.map_structure(lambda a: a[:n], x)


def _paths(model, tmp, name, calibration, backend):
    """{path name: (files by batch or one file)} for the exports of item 1."""
    import onnxruntime.quantization as q

    import keras_bigmodel as kbm

    files = {}
    base = os.path.join(tmp, name)
    files["onnx float32"] = kbm.compress.export_onnx(model, base + ".onnx")
    dynamic = base + "-dynamic.onnx"
    q.quantize_dynamic(files["onnx float32"], dynamic, weight_type=q.QuantType.QInt8)
    files["onnx dynamic int8"] = dynamic
    files["onnx int8"] = kbm.compress.export_onnx(
        model, base + "-int8.onnx", quantization="int8", calibration_data=calibration
    )
    if backend == "tensorflow":
        for label, quantization in (
            ("litert float32", None),
            ("litert dynamic int8", "dynamic"),
            ("litert int8", "int8"),
        ):

            def convert(b, quantization=quantization):
                return kbm.compress.export_tflite(
                    model,
                    f"{base}-{quantization}-{b}.tflite",
                    quantization,
                    batch_size=b,
                    representative_data=calibration,
                )

            files[label] = {BATCHES[0]: convert(BATCHES[0])}
            # One file serves every batch size when the interpreter can resize it; a
            # graph that cannot (a rolled LSTM) gets a file per batch size, not padding.
            runtime = kbm.compress.open_runtime(files[label][BATCHES[0]])
            for b in BATCHES[1:]:
                runtime.run(_slice(calibration, b))
                resizable = runtime._resizable.get(b, True)
                files[label][b] = files[label][BATCHES[0]] if resizable else convert(b)
    return files


def _preset(name: str, quick: bool, tmp: str) -> list[dict]:
    import keras

    import keras_bigmodel as kbm
    import zoo
    from keras_bigmodel.saving import copy_model

    backend = keras.backend.backend()
    keras.utils.set_random_seed(0)
    x_train, y_train, x_test, labels = _digits(name)
    model = zoo.build(name)
    start = time.perf_counter()
    epochs = {"cnn": 2, "attention_rnn": 8, "multitask": 4}[name] if quick else 15
    model.fit(x_train, y_train, epochs=epochs, batch_size=32, verbose=0)
    train_seconds = time.perf_counter() - start
    keras_int8 = kbm.compress.quantize(model)
    calibration = _slice(x_train, CALIBRATION)
    files = _paths(model, tmp, name, calibration, backend)
    plain, _ = copy_model(model)  # without the optimizer's state
    sizes = {
        "keras float32": os.path.getsize(kbm.save_model(plain, os.path.join(tmp, "f.keras"))),
        "keras int8": os.path.getsize(kbm.save_model(keras_int8, os.path.join(tmp, "i.keras"))),
    }
    coverage = {}
    for label, f in files.items():
        path = f if isinstance(f, str) else f[BATCHES[0]]
        sizes[label] = os.path.getsize(path)
        coverage[label] = kbm.compress.op_coverage(path)["int8_share"]
    reference = model.predict(x_test, batch_size=64, verbose=0)
    quality = {"keras float32": _scores(reference, reference, labels)}
    quality["keras int8"] = _scores(keras_int8.predict(x_test, verbose=0), reference, labels)
    runtimes = {}
    for label, f in files.items():
        by_batch = (
            {b: kbm.compress.open_runtime(f) for b in BATCHES}
            if isinstance(f, str)
            else {b: kbm.compress.open_runtime(p) for b, p in f.items()}
        )
        runtimes[label] = by_batch
        runtime = by_batch[BATCHES[-1]]
        out = runtime.predict(x_test, batch_size=BATCHES[-1])
        quality[label] = _scores(out, reference, labels)
    results = []
    for batch in BATCHES:
        x = _slice(x_test, batch)
        fns = {
            "keras float32": lambda m=model, x=x: m.predict_on_batch(x),
            "keras int8": lambda m=keras_int8, x=x: m.predict_on_batch(x),
        }
        for label, by_batch in runtimes.items():
            fns[label] = lambda r=by_batch[batch], x=x: r.run(x)
        times = interleaved(
            fns, reps=5 if quick else 20, warmup=2, min_sample_seconds=0.05 if quick else 0.1
        )
        vs = {k: ratio(times, k, "keras float32") for k in times if k != "keras float32"}
        int8_paths = [k for k in ("onnx int8", "litert int8") if k in vs]  # item 1's
        fastest = min(int8_paths, key=lambda k: vs[k]["median"])
        results.append(
            {
                "preset": name,
                "batch": batch,
                "train_seconds": train_seconds,
                "bytes": {"float32": sizes["keras float32"], "int8": sizes["keras int8"]},
                "size_ratio": sizes["keras int8"] / sizes["keras float32"],
                "file_bytes": sizes,
                "seconds": {
                    **{k: median(v) for k, v in times.items()},
                    "float32": median(times["keras float32"]),
                    "int8": median(times["keras int8"]),
                },
                "int8_vs_float32": vs["keras int8"],
                "vs_keras_float32": vs,
                "agreement": {k: a for k, (a, _) in quality.items()},
                "accuracy": {k: acc for k, (_, acc) in quality.items()},
                "int8_share": coverage,
                "fastest_int8": fastest,
            }
        )
    return results


def _compression(quick: bool, tmp: str) -> dict:
    """Pruning (80%, 2:4) and QAT against PTQ on the digits cnn at 8x8x1."""
    import keras

    import keras_bigmodel as kbm
    import zoo
    from keras_bigmodel.data import load_digits

    backend = keras.backend.backend()
    d = load_digits()
    y = keras.utils.to_categorical(d.y_train, 10)
    keras.utils.set_random_seed(0)
    model = zoo.build("cnn", input_shape=(8, 8, 1))
    epochs = 6 if quick else 20
    model.fit(d.x_train, y, epochs=epochs, batch_size=32, verbose=0)

    def accuracy(m):
        return float(np.mean(np.argmax(m.predict(d.x_test, verbose=0), -1) == d.y_test))

    def gzip_of(m):
        return kbm.compress.size_report(m)["gzip_bytes"]

    from keras_bigmodel.saving import copy_model

    float_file = os.path.getsize(
        kbm.save_model(copy_model(model)[0], os.path.join(tmp, "float.keras"))
    )
    result = {"float_accuracy": accuracy(model), "float_file_bytes": float_file}
    tune = 4 if quick else 20
    for label, structure in (("prune 80%", None), ("prune 2:4", "2:4")):
        pruned = kbm.compress.prune(model, sparsity=0.8, structure=structure)
        pruned.fit(
            d.x_train,
            y,
            epochs=tune,
            batch_size=32,
            verbose=0,
            callbacks=[kbm.compress.PruningCallback()],
        )
        plain = kbm.compress.strip_pruning(pruned)
        entry = {
            "accuracy": accuracy(plain),
            "sparsity": kbm.compress.sparsity_report(plain)["sparsity"],
            "gzip_bytes": gzip_of(plain),
        }
        entry["gzip_vs_float_file"] = entry["gzip_bytes"] / float_file
        if structure == "2:4":
            exact = True
            for layer in plain.layers:
                if isinstance(layer, (keras.layers.Dense, keras.layers.Conv2D)):
                    k = keras.ops.convert_to_numpy(layer.kernel).reshape(-1, layer.kernel.shape[-1])
                    rows = k.shape[0] - k.shape[0] % 4
                    exact &= bool(np.all((k[:rows].reshape(-1, 4, k.shape[1]) != 0).sum(1) <= 2))
            entry["two_four_exact"] = exact
        result[label] = entry
    calibration = d.x_train[:CALIBRATION]
    qat = kbm.compress.quantize_aware(model, calibration_data=calibration)
    qat.fit(d.x_train, y, epochs=3 if quick else 5, batch_size=32, verbose=0)
    if backend == "tensorflow":
        ptq = kbm.compress.export_tflite(
            model, os.path.join(tmp, "ptq.tflite"), "int8", representative_data=calibration
        )
        qat_file = kbm.compress.export_tflite(
            qat, os.path.join(tmp, "qat.tflite"), "int8", representative_data=calibration
        )
        result["int8_runtime"] = "litert"
    else:
        ptq = kbm.compress.export_onnx(
            model, os.path.join(tmp, "ptq.onnx"), quantization="int8", calibration_data=calibration
        )
        qat_file = kbm.compress.export_onnx(
            qat, os.path.join(tmp, "qat.onnx"), quantization="int8", calibration_data=calibration
        )
        result["int8_runtime"] = "onnx (QAT: its learned scales)"
    for label, path in (("ptq int8", ptq), ("qat int8", qat_file)):
        out = kbm.compress.open_runtime(path).predict(d.x_test)
        result[label] = float(np.mean(np.argmax(out, -1) == d.y_test))
    result["qat keras"] = accuracy(qat)
    return result


def run(quick: bool = False, presets=PRESETS, compression: bool = False) -> list[dict]:
    """One entry per (preset, batch) (what `python -m benchmarks` reports), then, with
    `compression`, one `{"compression": ...}` entry (pruning and QAT)."""
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in presets:
            results.extend(_preset(name, quick, tmp))
        if compression:
            results.append({"compression": _compression(quick, tmp)})
    return results


def targets(results: list[dict]) -> list[str]:
    lines = []
    for r in results:
        if "compression" in r:
            c = r["compression"]
            p, s = c["prune 80%"], c["prune 2:4"]
            drop = c["float_accuracy"] - p["accuracy"]
            lines.append(
                f"prune 80% (sparsity {p['sparsity']:.3f}): accuracy drop {drop * 100:+.2f} pt "
                f"(target <= 1): {'met' if drop <= 0.01 else 'MISSED'}; gzip "
                f"{p['gzip_vs_float_file']:.3f}x the float file (target <= 0.35): "
                f"{'met' if p['gzip_vs_float_file'] <= 0.35 else 'MISSED'}"
            )
            lines.append(
                f"prune 2:4: exact {s['two_four_exact']} (target exact): "
                f"{'met' if s['two_four_exact'] else 'MISSED'}; accuracy {s['accuracy']:.4f}"
            )
            lines.append(
                f"QAT int8 {c['qat int8']:.4f} vs PTQ int8 {c['ptq int8']:.4f} "
                f"({c['int8_runtime']}) (target QAT >= PTQ): "
                f"{'met' if c['qat int8'] >= c['ptq int8'] else 'MISSED'}"
            )
            continue
        f = r["fastest_int8"]
        t = r["vs_keras_float32"][f]["median"]
        limit = TARGETS[f"batch{r['batch']}"]
        drop = r["accuracy"]["keras float32"] - r["accuracy"][f]
        lines.append(
            f"{r['preset']} batch {r['batch']}: fastest int8 {f} {t:.3f}x Keras float32 (target"
            f" <= {limit}): {'met' if t <= limit else 'MISSED'}; agreement {r['agreement'][f]:.4f}"
            f" ({'met' if r['agreement'][f] >= TARGETS['agreement'] else 'MISSED'}); accuracy "
            f"drop {drop * 100:+.2f} pt ({'met' if drop <= TARGETS['accuracy_drop'] else 'MISSED'})"
            f"; int8 share {r['int8_share'][f]:.2f}"
        )
    return lines


def rows(results):
    """The int8 table of `python -m benchmarks` (Keras int8 against float32)."""
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
        if "preset" in r
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


def path_rows(results):
    """Every path: ms, ratio to Keras float32, agreement, accuracy, int8 share."""
    out = []
    for r in results:
        if "preset" not in r:
            continue
        for k, seconds in r["seconds"].items():
            if k in ("float32", "int8"):
                continue
            out.append(
                [
                    r["preset"],
                    r["batch"],
                    k,
                    f"{seconds * 1e3:.3f}",
                    "1" if k == "keras float32" else f"{r['vs_keras_float32'][k]['median']:.3f}",
                    f"{r['agreement'][k]:.4f}",
                    f"{r['accuracy'][k]:.4f}",
                    f"{r['int8_share'].get(k, float('nan')):.2f}" if k in r["int8_share"] else "-",
                    f"{r['file_bytes'][k]:,}",
                ]
            )
    return out


PATH_HEADERS = ["preset", "batch", "path", "ms", "/keras f32", "agree", "acc", "int8 MACs", "bytes"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer epochs and repetitions")
    parser.add_argument("--presets", nargs="*", default=list(PRESETS))
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)
    import keras

    start = time.perf_counter()
    results = run(quick=args.quick, presets=args.presets, compression=True)
    print(f"backend {keras.backend.backend()}, {time.perf_counter() - start:.0f} s")
    print(table(PATH_HEADERS, path_rows(results)))
    print("\n".join(targets(results)))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"backend": keras.backend.backend(), "results": results}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
