"""`python -m benchmarks.report RUN.json`: the Markdown tables of a `--backend all` run
(the ones in benchmarks/README.md), every ratio with its quartiles."""

from __future__ import annotations

import json
import sys

from benchmarks.common import fmt_ratio


def _table(headers, rows) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + " --- |" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def attention(backends: dict) -> str:
    rows = []
    for backend, report in backends.items():
        for r in report.get("attention", []):
            head = [backend, r["shape"], "jit" if r["xla"] else "no jit", r["phase"]]
            if "error" in r:
                rows.append(head + [f"not run: {r['error'][:80]}", "", "", "", ""])
                continue
            rows.append(
                head
                + [f"{r['seconds']['ours'] * 1e3:.1f}"]
                + [
                    fmt_ratio(r[k])
                    for k in ("vs_documents", "vs_bare", "vs_projection", "bare_vs_projection")
                ]
            )
    return _table(
        [
            "backend",
            "shape",
            "compile",
            "phase",
            "ours ms",
            "ours / documents",
            "ours / bare formula",
            "ours / projection",
            "bare formula / projection",
        ],
        rows,
    )


def presets(backends: dict) -> str:
    rows = []
    for backend, report in backends.items():
        for r in report.get("presets", []):
            if "seconds" not in r:
                rows.append([backend, r["preset"], "-", "-", "no plain-Keras version"])
                continue
            rows.append(
                [
                    backend,
                    r["preset"],
                    f"{r['seconds']['zoo'] * 1e3:.2f}",
                    f"{r['seconds']['plain'] * 1e3:.2f}",
                    fmt_ratio(r["zoo_vs_plain"]),
                ]
            )
    return _table(["backend", "preset", "zoo ms/step", "plain ms/step", "zoo / plain"], rows)


def int8(backends: dict) -> str:
    rows = [
        [
            backend,
            r["preset"],
            f"{r['size_ratio']:.2f}x",
            f"{r['seconds']['float32'] * 1e3:.2f}",
            f"{r['seconds']['int8'] * 1e3:.2f}",
            fmt_ratio(r["int8_vs_float32"]),
        ]
        for backend, report in backends.items()
        for r in report.get("int8", [])
    ]
    return _table(
        [
            "backend",
            "preset",
            "int8 / float32 file",
            "float32 ms (batch 32)",
            "int8 ms",
            "int8 / float32 time",
        ],
        rows,
    )


def runtimes(backends: dict) -> str:
    rows = [
        [
            backend,
            r["preset"],
            r["batch"],
            f"{r['seconds']['keras'] * 1e3:.2f}",
            fmt_ratio(r["onnx_vs_keras"]),
            fmt_ratio(r["litert_vs_keras"]) if "litert_vs_keras" in r else "-",
        ]
        for backend, report in backends.items()
        for r in report.get("runtimes", [])
    ]
    return _table(
        [
            "backend",
            "preset",
            "batch",
            "Keras predict_on_batch ms",
            "onnxruntime / Keras",
            "LiteRT / Keras",
        ],
        rows,
    )


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    with open(argv[0], encoding="utf-8") as f:
        report = json.load(f)
    backends = report.get("backends") or {report["machine"]["backend"]: report}
    for title, fn in (
        ("AttentionLayer", attention),
        ("Presets", presets),
        ("int8", int8),
        ("ONNX and LiteRT", runtimes),
    ):
        print(f"### {title}\n\n{fn(backends)}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
