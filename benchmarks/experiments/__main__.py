"""`python -m benchmarks.experiments [--quick] [--only NAME ...] [--out DIR]`

Runs the multi-task and fusion experiments (see the package docstring), prints their
table and writes `results.json`, `results.md` and one PNG per experiment into `--out`
(default: `benchmarks/experiments/results`, or `.../results-quick` with `--quick`).
About 12 minutes on 2 CPU cores; `--quick` is a smoke run of a minute or two whose
numbers mean nothing.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import json
import os
import platform
import sys
import time

from benchmarks.experiments import EXPERIMENTS

HERE = os.path.dirname(os.path.abspath(__file__))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.experiments")
    parser.add_argument("--quick", action="store_true", help="tiny settings, a smoke run")
    parser.add_argument("--only", nargs="+", choices=EXPERIMENTS, default=list(EXPERIMENTS))
    parser.add_argument("--out", help="output directory")
    args = parser.parse_args(argv)
    out = args.out or os.path.join(HERE, "results-quick" if args.quick else "results")
    os.makedirs(out, exist_ok=True)

    import keras

    from benchmarks.experiments import report

    level = "quick" if args.quick else "full"
    started = time.perf_counter()
    results = {
        "meta": {
            "date": datetime.datetime.now().isoformat(timespec="seconds"),
            "settings": level,
            "backend": keras.backend.backend(),
            "keras": keras.__version__,
            "python": platform.python_version(),
            "machine": platform.platform(),
            "cpus": os.cpu_count(),
        }
    }
    for name in args.only:
        module = importlib.import_module(f"benchmarks.experiments.{name}")
        print(f"{name} ({level} settings)", flush=True)
        t0 = time.perf_counter()
        results[name] = module.run(module.SETTINGS[level], log=lambda s: print(s, flush=True))
        results[name]["seconds"] = round(time.perf_counter() - t0, 1)
    results["meta"]["seconds"] = round(time.perf_counter() - started, 1)
    table = report.markdown(results)
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    with open(os.path.join(out, "results.md"), "w") as f:
        f.write(table + "\n")
    pictures = report.figures(results, out)
    print("\n" + table)
    print(
        f"wrote {out}/results.json, results.md, " + ", ".join(os.path.basename(p) for p in pictures)
    )
    print(f"{results['meta']['seconds']:.0f} s on {results['meta']['backend']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
