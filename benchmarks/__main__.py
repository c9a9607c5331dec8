"""`python -m benchmarks [--backend NAME|all] [--quick] [--only NAME ...] [--out FILE]`

Prints a table per benchmark and writes everything, with the machine, to JSON.
Times are medians of interleaved repetitions after warm-up, and only their ratios
within one process are meaningful; absolute times depend on the machine's load.
`--backend all` runs each backend (TensorFlow, JAX, PyTorch) in its own process,
one after the other, and writes one JSON with a report per backend.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import json
import os
import subprocess
import sys
import time

BENCHMARKS = ("attention", "presets", "int8", "runtimes", "startup", "files", "memory")
BACKENDS = ("tensorflow", "jax", "torch")
# Run on every backend by default; the rest (import time, files, memory; the memory
# benchmark starts its own JAX and TensorFlow processes) once, on TensorFlow.
EVERY_BACKEND = ("attention", "presets", "int8", "runtimes")


# The reference run's target against a "projection" that did more work than the projection
# (a Dense trained with an MSE over its whole output); report.py still draws that run with
# it. New runs are judged against the honest floor below.
PROJECTION_TARGET = 1.05
# ours / floor (the projection, average pooling and the same softmax head), train step:
# with the backend's compiler, and without (eager JAX and PyTorch, TensorFlow's graph).
FLOOR_TARGETS = {True: 1.10, False: 1.15}


def targets(report: dict) -> list[str]:
    """Which of the targets (benchmarks/README.md) this run meets."""
    lines = []
    if "attention" in report:
        for r in report["attention"]:
            label = f"attention {r['shape']} {'jit' if r['xla'] else 'no jit'} {r['phase']}"
            if "error" in r:
                lines.append(f"{label}: not measured ({r['error'][:120]})")
                continue
            vs_doc = r["vs_documents"]["median"]
            line = (
                f"{label}: ours/documents {vs_doc:.3f} (target <= 1.0): "
                f"{'met' if vs_doc <= 1.0 else 'MISSED'}"
            )
            if r["phase"] == "train step" and "vs_floor" in r:
                floor, target = r["vs_floor"]["median"], FLOOR_TARGETS[bool(r["xla"])]
                line += (
                    f"; ours/floor {floor:.3f} (target <= {target}): "
                    f"{'met' if floor <= target else 'MISSED'}; ours/bare "
                    f"{r['vs_bare']['median']:.3f}"
                )
            lines.append(line)
    if "presets" in report:
        for r in report["presets"]:
            if "seconds" not in r:
                lines.append(f"preset {r['preset']}: no plain-Keras version to compare with")
                continue
            m, q1, q3 = (r["zoo_vs_plain"][k] for k in ("median", "q1", "q3"))
            verdict = "met" if m <= 1.02 else "MISSED"
            if m < 0.98:
                verdict = "met (the zoo's step is faster)"
            ops = r["forward_graph_ops"]
            if verdict == "MISSED" and q1 <= 1.0 <= q3:
                verdict = f"not resolved: 1.0 lies within the quartiles [{q1:.2f}-{q3:.2f}]"
                if ops["zoo"] is not None and ops["zoo"] <= ops["plain"]:
                    verdict += (
                        f" and the zoo's forward graph has no more ops "
                        f"({ops['zoo']} vs {ops['plain']})"
                    )
            lines.append(f"preset {r['preset']}: zoo/plain {m:.3f} (target within 2%): {verdict}")
    if "startup" in report:
        d = report["startup"]["difference_seconds"]
        lines.append(
            f"import keras_bigmodel - import keras: {d:+.3f} s (target < 0.3 s): "
            f"{'met' if d < 0.3 else 'MISSED'}"
        )
    if "files" in report:
        for r in report["files"]:
            lines.append(
                f"file {r['preset']}: {r['file_vs_raw']:.3f}x raw (target <= 1.02x + 64 KiB): "
                f"{'met' if r['within_target'] else 'MISSED'}"
            )
    if "memory" in report and "error" not in report["memory"]:
        m = report["memory"]
        ratio = m["ours_forward_temp_bytes"] / m["input_bytes"]
        lines.append(
            f"attention forward temporaries (XLA) {ratio:.2f}x its input; a time x time "
            f"matrix would be {m['time_by_time_matrix_bytes'] / m['input_bytes']:.2f}x"
        )
        growth = {
            k: m.get(f"{k}_tf_graph_train_peak_rss_growth_bytes")
            for k in ("ours", "documents", "projection")
        }
        if all(v is not None for v in growth.values()):
            lines.append(
                "TF graph-mode train step peak RSS growth vs input: "
                + ", ".join(f"{k} {v / m['input_bytes']:.2f}x" for k, v in growth.items())
            )
    return lines


def retarget(path: str) -> None:
    """Recomputes the target verdicts of a saved run (after a change to `targets`)."""
    with open(path, encoding="utf-8") as f:
        report = json.load(f)
    for result in report.get("backends", {}).values():
        if "error" not in result:
            result["targets"] = targets(result)
    report["targets"] = targets(report)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(report, f, indent=2)
    print("\n".join(report["targets"]))


def _run_here(args) -> dict:
    from benchmarks import common

    if common.backend() == "torch" and args.torch_threads:
        import torch

        # PyTorch's OpenMP threads spin while they wait; on a shared 2-core machine two of
        # them made a train step up to 4x slower and ratios unreadable (quartiles 0.25-2.1).
        torch.set_num_threads(args.torch_threads)
    chosen = args.only or (BENCHMARKS if common.backend() == "tensorflow" else EVERY_BACKEND)
    report = {
        "machine": common.machine(),
        "quick": args.quick,
        "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    print("machine: " + ", ".join(f"{k} {v}" for k, v in report["machine"].items()), flush=True)
    started = time.perf_counter()
    for name in chosen:
        print(f"\n== {name}", flush=True)
        module = importlib.import_module(f"benchmarks.{name}")
        result = module.run(quick=args.quick)
        report[name] = result
        if hasattr(module, "rows"):
            print(common.table(module.HEADERS, module.rows(result)), flush=True)
        else:
            print(json.dumps(result, indent=2), flush=True)
    report["seconds"] = round(time.perf_counter() - started, 1)
    report["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    report["targets"] = targets(report)
    print("\n== targets")
    print("\n".join(report["targets"]))
    return report


def _run_in_process(backend: str, args, out: str) -> dict:
    """This module again, in a fresh interpreter on `backend`."""
    command = [sys.executable, "-m", "benchmarks", "--backend", backend, "--out", out]
    command += ["--torch-threads", str(args.torch_threads)]
    if args.quick:
        command.append("--quick")
    if args.only:
        command += ["--only", *args.only]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {
        **os.environ,
        "KERAS_BACKEND": backend,
        "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", ""),
    }
    print(f"\n######## {backend}", flush=True)
    done = subprocess.run(command, env=env, cwd=root)
    if done.returncode != 0:
        return {"error": f"exit status {done.returncode}"}
    with open(out, encoding="utf-8") as f:
        return json.load(f)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.split("\n\n")[1]
    )
    parser.add_argument(
        "--backend",
        choices=(*BACKENDS, "all"),
        help="the Keras backend (default: KERAS_BACKEND, else tensorflow); "
        "'all' runs each in its own process",
    )
    parser.add_argument(
        "--quick", action="store_true", help="small shapes, few repetitions (a smoke run)"
    )
    parser.add_argument("--only", nargs="+", choices=BENCHMARKS, help="run only these benchmarks")
    parser.add_argument("--out", help="JSON output (default: benchmarks/results/<time>.json)")
    parser.add_argument(
        "--torch-threads",
        type=int,
        default=1,
        help="PyTorch's intra-op threads (default 1; 0 leaves PyTorch's own)",
    )
    args = parser.parse_args(argv)
    out = args.out or os.path.join(
        os.path.dirname(__file__), "results", time.strftime("%Y%m%d-%H%M%S") + ".json"
    )
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    current = os.environ.get("KERAS_BACKEND", "tensorflow")
    if args.backend == "all":
        started = time.perf_counter()
        report = {"backends": {}}
        for backend in BACKENDS:
            part = f"{out}.{backend}"
            report["backends"][backend] = _run_in_process(backend, args, part)
            if os.path.exists(part):
                os.remove(part)
        report["seconds"] = round(time.perf_counter() - started, 1)
        print("\n######## targets, every backend")
        for backend, result in report["backends"].items():
            for line in result.get("targets", [result.get("error", "no report")]):
                print(f"{backend}: {line}")
    elif args.backend not in (None, current):
        report = _run_in_process(args.backend, args, out)
        return 0 if "error" not in report else 1
    else:
        report = _run_here(args)
    with open(out, "w", encoding="utf-8") as f:
        json.dump(report, f, indent=2)
    print(f"\nwrote {out} ({report['seconds']} s)")
    return 0 if all("error" not in r for r in report.get("backends", {}).values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
