"""`import keras_bigmodel` against `import keras`, each in a fresh interpreter."""

from __future__ import annotations

import os
import subprocess
import sys

from benchmarks.common import interleaved, median

HEAVY = ("tf_keras_vis", "zoo", "sklearn", "matplotlib", "scipy")
_PROBE = (
    "import json, sys, time; t = time.perf_counter(); import {module}; "
    "print(json.dumps([time.perf_counter() - t, [m for m in {heavy!r} if m in sys.modules]]))"
)


def _time_import(module):
    import json

    env = {**os.environ, "KERAS_BACKEND": os.environ.get("KERAS_BACKEND", "tensorflow")}
    out = subprocess.run(
        [sys.executable, "-c", _PROBE.format(module=module, heavy=HEAVY)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def run(quick: bool = False) -> dict:
    samples = {"keras": [], "keras_bigmodel": []}
    loaded = {}

    def probe(module):
        seconds, modules = _time_import(module)
        samples[module].append(seconds)
        loaded[module] = modules

    interleaved(
        {m: (lambda m=m: probe(m)) for m in samples},
        reps=3 if quick else 7,
        warmup=1,
        min_sample_seconds=0,
    )
    # interleaved() timed the subprocess calls too; keep the in-process import times
    keras_s = median(samples["keras"][-(3 if quick else 7) :])
    kbm_s = median(samples["keras_bigmodel"][-(3 if quick else 7) :])
    return {
        "keras_seconds": keras_s,
        "keras_bigmodel_seconds": kbm_s,
        "difference_seconds": kbm_s - keras_s,
        "ratio": kbm_s / keras_s,
        "heavy_modules_after_import_keras": loaded["keras"],
        "heavy_modules_after_import_keras_bigmodel": loaded["keras_bigmodel"],
    }
