"""Timing helpers: warm-up, interleaved repetitions, medians and ratios, tables."""

from __future__ import annotations

import math
import platform
import statistics
import time
from collections.abc import Callable


def interleaved(
    fns: dict[str, Callable[[], object]],
    reps: int,
    warmup: int = 2,
    min_sample_seconds: float = 0.05,
) -> dict:
    """Times each function `reps` times, round-robin, after `warmup` calls each.

    Interleaving puts every variant under the same background load, so their ratio
    is far steadier on a shared machine than back-to-back blocks of runs would be.
    A sample is a burst of calls long enough (`min_sample_seconds`) that timer and
    scheduler noise stay small against it; the same burst length serves every
    variant. Returns {name: [seconds per call, ...]}.
    """
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    single = []
    for fn in fns.values():
        start = time.perf_counter()
        fn()
        single.append(time.perf_counter() - start)
    calls = max(1, math.ceil(min_sample_seconds / max(min(single), 1e-6)))
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(reps):
        for name, fn in fns.items():
            start = time.perf_counter()
            for _ in range(calls):
                fn()
            times[name].append((time.perf_counter() - start) / calls)
    return times


def median(values: list[float]) -> float:
    return statistics.median(values)


def ratio(times: dict, a: str, b: str) -> dict:
    """Median of the per-repetition ratios a/b, with their quartiles."""
    per_rep = sorted(x / y for x, y in zip(times[a], times[b]))
    q = statistics.quantiles(per_rep, n=4) if len(per_rep) >= 4 else [per_rep[0], 0, per_rep[-1]]
    return {"median": statistics.median(per_rep), "q1": q[0], "q3": q[-1]}


def fmt_ratio(r: dict) -> str:
    return f"{r['median']:.3f}x [{r['q1']:.2f}-{r['q3']:.2f}]"


def backend() -> str:
    import keras

    return keras.backend.backend()


def _lscpu() -> dict:
    """The processor as `lscpu` names it (model, cores, caches), if lscpu exists."""
    import subprocess

    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    wanted = (
        "Model name",
        "CPU(s)",
        "Thread(s) per core",
        "L2 cache",
        "L3 cache",
        "Hypervisor vendor",
    )
    fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    return {k: fields[k].strip() for k in wanted if k in fields}


def machine() -> dict:
    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    import os
    from importlib import metadata

    import keras

    info = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "keras": keras.__version__,
        "backend": keras.backend.backend(),
        "lscpu": _lscpu(),
        "load_average_1_5_15_min": [round(x, 2) for x in os.getloadavg()],
    }
    if info["backend"] == "torch":
        import torch

        info["torch_threads"] = torch.get_num_threads()
    package = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}[info["backend"]]
    for name in (package, "onnxruntime", "ai-edge-litert"):
        try:  # from package metadata: importing TensorFlow here would skew the others
            info[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return info


def table(headers: list[str], rows: list[list]) -> str:
    cells = [[str(c) for c in row] for row in [headers] + rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
