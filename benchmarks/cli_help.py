"""`keras-bigmodel --help` (and each command's `--help`, and `--version`) against
`python -c pass`, each in a fresh process: the command line answers before Keras is
imported, so the difference is argparse and this package's entry module only.

Target (issue 14): every `--help` under one second on the 2-core machine. The table
shows medians of interleaved runs; the JSON also says which heavy modules the help
process imported (none is expected).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

from benchmarks.common import median

TARGET_SECONDS = 1.0
HEAVY = ("keras", "tensorflow", "jax", "torch", "numpy", "keras_bigmodel", "zoo")
_PROBE = (
    "import sys, keras_bigmodel_cli as c; c.main({argv!r}); "
    "sys.stderr.write(repr([m for m in {heavy!r} if m in sys.modules]))"
)


def _commands() -> list[str]:
    import keras_bigmodel_cli

    return list(keras_bigmodel_cli.COMMANDS)


def _script() -> list[str]:
    """The installed console script, else the entry module through this Python."""
    found = shutil.which("keras-bigmodel", path=os.path.dirname(sys.executable))
    return [found] if found else [sys.executable, "-m", "keras_bigmodel_cli"]


def _time(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - start


def run(quick: bool = False) -> dict:
    """Times each case `reps` times, round-robin, after one warm-up round.

    Returns:
        A JSON-able dict: `cases` ({name: {"median_seconds", "minus_python_seconds"}}),
        `python_seconds` (the `python -c pass` median), `worst_help_seconds`,
        `target_seconds`, `target_met` and `heavy_modules_imported` by `--help`.
    """
    reps = 3 if quick else 7
    script = _script()
    cases = {"python -c pass": [sys.executable, "-c", "pass"]}
    cases["keras-bigmodel --help"] = [*script, "--help"]
    cases["keras-bigmodel --version"] = [*script, "--version"]
    for command in _commands():
        cases[f"keras-bigmodel {command} --help"] = [*script, command, "--help"]
    for argv in cases.values():  # warm-up: the file system cache
        _time(argv)
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(reps):
        for name, argv in cases.items():
            samples[name].append(_time(argv))
    python = median(samples["python -c pass"])
    results = {
        name: {
            "median_seconds": median(values),
            "minus_python_seconds": median(values) - python,
        }
        for name, values in samples.items()
    }
    probe = subprocess.run(
        [sys.executable, "-c", _PROBE.format(argv=["--help"], heavy=HEAVY)],
        capture_output=True,
        text=True,
        check=False,
    )
    heavy = probe.stderr.strip().splitlines()[-1] if probe.stderr.strip() else "?"
    helps = [r["median_seconds"] for n, r in results.items() if n.endswith("--help")]
    report = {
        "cases": results,
        "python_seconds": python,
        "worst_help_seconds": max(helps),
        "target_seconds": TARGET_SECONDS,
        "target_met": max(helps) < TARGET_SECONDS,
        "heavy_modules_imported": heavy,
        "repetitions": reps,
    }
    _print_table(report)
    return report


def _print_table(report: dict) -> None:
    width = max(len(n) for n in report["cases"])
    print(f"{'case':<{width}}  median s  minus python -c pass")
    for name, r in report["cases"].items():
        print(f"{name:<{width}}  {r['median_seconds']:8.3f}  {r['minus_python_seconds']:+8.3f}")
    verdict = "met" if report["target_met"] else "MISSED"
    print(
        f"worst --help {report['worst_help_seconds']:.3f} s (target < "
        f"{report['target_seconds']:.1f} s): {verdict}; heavy modules imported by --help: "
        f"{report['heavy_modules_imported']}"
    )


if __name__ == "__main__":
    print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
