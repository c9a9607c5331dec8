"""`.keras` save/load time and size per preset, against the raw float32 weight bytes;
int8 and TFLite sizes against the float32 file."""

from __future__ import annotations

import os
import tempfile
import time

import keras
import numpy as np

import keras_bigmodel as kbm
import zoo
from benchmarks.common import median

OVERHEAD_TARGET = (1.02, 64 * 1024)  # file <= 1.02 x raw float32 bytes + 64 KiB


def run(quick: bool = False) -> list[dict]:
    results = []
    reps = 2 if quick else 5
    with tempfile.TemporaryDirectory() as tmp:
        for name in zoo.list_presets():
            model = zoo.build(name)
            raw = sum(int(np.prod(w.shape)) * 4 for w in model.weights)
            path = os.path.join(tmp, f"{name}.keras")
            saves, loads = [], []
            for _ in range(reps):
                start = time.perf_counter()
                kbm.save_model(model, path)
                saves.append(time.perf_counter() - start)
                start = time.perf_counter()
                kbm.load_model(path)
                loads.append(time.perf_counter() - start)
            size = os.path.getsize(path)
            int8_path = kbm.save_model(
                kbm.compress.quantize(model), os.path.join(tmp, f"{name}-int8.keras")
            )
            entry = {
                "preset": name,
                "raw_float32_bytes": raw,
                "file_bytes": size,
                "file_vs_raw": size / raw,
                "overhead_bytes": size - raw,
                "within_target": size <= OVERHEAD_TARGET[0] * raw + OVERHEAD_TARGET[1],
                "save_seconds": median(saves),
                "load_seconds": median(loads),
                "int8_vs_float32_file": os.path.getsize(int8_path) / size,
            }
            if keras.backend.backend() == "tensorflow":
                for q in (None, "float16", "dynamic"):
                    tfl = kbm.compress.export_tflite(
                        model, os.path.join(tmp, f"{name}-{q}.tflite"), q
                    )
                    entry[f"tflite_{q or 'float32'}_vs_float32_file"] = os.path.getsize(tfl) / size
            results.append(entry)
    return results


def rows(results):
    out = []
    for r in results:
        tfl = [r.get(f"tflite_{q}_vs_float32_file") for q in ("float32", "float16", "dynamic")]
        out.append(
            [
                r["preset"],
                f"{r['raw_float32_bytes']:,}",
                f"{r['file_bytes']:,}",
                f"{r['file_vs_raw']:.3f}x (+{r['overhead_bytes'] / 1024:.1f} KiB)",
                "yes" if r["within_target"] else "NO",
                f"{r['save_seconds'] * 1e3:.0f}",
                f"{r['load_seconds'] * 1e3:.0f}",
                f"{r['int8_vs_float32_file']:.2f}x",
                " / ".join("-" if t is None else f"{t:.2f}x" for t in tfl),
            ]
        )
    return out


HEADERS = [
    "preset",
    "float32 bytes",
    ".keras bytes",
    "file/raw",
    "target",
    "save ms",
    "load ms",
    "int8/float32",
    "TFLite f32/f16/dyn vs .keras",
]
