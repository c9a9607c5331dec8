"""`python -m benchmarks.report RUN.json [--png PATH]`: the Markdown tables of a
`--backend all` run (the ones in benchmarks/README.md), every ratio with its quartiles,
and with `--png` one figure of the same ratios (`figure`; matplotlib, imported only then).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile

from benchmarks.__main__ import PROJECTION_TARGET
from benchmarks.common import fmt_ratio

__all__ = ["DPI", "FIGSIZE", "attention", "figure", "int8", "main", "presets", "runtimes"]

PRESET_TARGET = 1.02  # zoo / plain Keras, train step (benchmarks.__main__.targets)


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


# ------------------------------------------------------------------------------- figure
DPI = 150
"""Pixels per inch of the PNG `figure` writes."""
FIGSIZE = (9.0, 10.5)
"""The figure's size in inches: 9 inches (1350 px) wide, drawn so that its 9-pt text
stays legible when a README shows it ~900 px wide."""

_COLOURS = {"tensorflow": "#E69F00", "jax": "#0072B2", "torch": "#CC79A7"}  # Okabe-Ito
_MARKERS = {"tensorflow": "o", "jax": "s", "torch": "^"}
_NAMES = {"tensorflow": "TensorFlow", "jax": "JAX", "torch": "PyTorch"}


def _ratio(r: dict, key: str):
    """(median, q1, q3) of `r[key]`, or None where the entry failed or lacks it."""
    if not isinstance(r, dict) or "error" in r:
        return None
    value = r.get(key)
    if isinstance(value, (int, float)):  # a single number (a file-size ratio)
        return float(value), float(value), float(value)
    if not isinstance(value, dict) or not all(k in value for k in ("median", "q1", "q3")):
        return None
    return float(value["median"]), float(value["q1"]), float(value["q3"])


def _points_attention(backends: dict) -> list[tuple]:
    points = []
    for backend, report in backends.items():
        for r in report.get("attention", []):
            if r.get("shape") != "large" or r.get("phase") != "train step" or "xla" not in r:
                continue
            value = _ratio(r, "vs_projection")
            if value:
                category = "jit" if r["xla"] else "no jit"
                points.append((category, backend, False, value))
    return sorted(points, key=lambda p: p[0] == "jit")  # "no jit" on top; stable


def _points_presets(backends: dict) -> list[tuple]:
    points = []
    for backend, report in backends.items():
        for r in report.get("presets", []):
            value = _ratio(r, "zoo_vs_plain")
            if value and "preset" in r:
                points.append((r["preset"], backend, False, value))
    return points


def _points_int8(backends: dict) -> list[tuple]:
    points = []
    for backend, report in backends.items():
        for r in report.get("int8", []):
            if "preset" not in r:
                continue
            for key, what in (("size_ratio", "file size"), ("int8_vs_float32", "inference time")):
                value = _ratio(r, key)
                if value:
                    points.append((f"{r['preset']}\n{what}", backend, False, value))
    return points


def _points_runtimes(backends: dict) -> list[tuple]:
    points = []
    for backend, report in backends.items():
        for r in report.get("runtimes", []):
            if "preset" not in r or "batch" not in r:
                continue
            for key, hollow in (("onnx_vs_keras", False), ("litert_vs_keras", True)):
                value = _ratio(r, key)
                if value:
                    points.append((f"{r['preset']}\nbatch {r['batch']}", backend, hollow, value))
    return points


def _panel(ax, points, *, title, xlabel, ylabel, target=None, log=False, hollow_means=None):
    """Medians as markers with q1-q3 error bars, one row per category (top to bottom in
    the order met), the backends side by side within a row."""
    from matplotlib.lines import Line2D

    ax.set_title(title, fontsize=10, loc="left")
    ax.set_xlabel(xlabel, fontsize=9)
    ax.set_ylabel(ylabel, fontsize=9)
    ax.tick_params(labelsize=9)
    if not points:
        ax.text(0.5, 0.5, "not in this run", ha="center", va="center", transform=ax.transAxes)
        ax.set_xticks([])
        ax.set_yticks([])
        return
    categories = list(dict.fromkeys(p[0] for p in points))
    series = {c: [p for p in points if p[0] == c] for c in categories}
    widest = max(len(s) for s in series.values())
    step = 0.72 / widest
    for row, category in enumerate(categories):
        members = series[category]
        for j, (_, backend, hollow, (median, q1, q3)) in enumerate(members):
            y = row + (j - (len(members) - 1) / 2) * step
            colour = _COLOURS.get(backend, "0.4")
            ax.errorbar(
                median,
                y,
                xerr=[[max(0.0, median - q1)], [max(0.0, q3 - median)]],
                fmt=_MARKERS.get(backend, "D"),
                color=colour,
                markerfacecolor="white" if hollow else colour,
                markeredgewidth=1.5,
                markersize=6,
                elinewidth=1.4,
                capsize=3,
            )
    ax.set_yticks(range(len(categories)), categories)
    ax.set_ylim(len(categories) - 0.5, -0.5)  # the first category on top
    for row in range(1, len(categories)):
        ax.axhline(row - 0.5, color="0.88", linewidth=0.8, zorder=0)
    ax.grid(axis="x", color="0.92", zorder=0)
    ax.set_axisbelow(True)
    if log:
        from matplotlib.ticker import FuncFormatter, LogLocator

        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
    ax.axvline(1.0, color="0.25", linewidth=1.0, zorder=1)
    backend_handles = [
        Line2D(
            [],
            [],
            linestyle="none",
            marker=_MARKERS.get(b, "D"),
            color=_COLOURS.get(b, "0.4"),
            label=_NAMES.get(b, b),
        )
        for b in dict.fromkeys(p[1] for p in points)
    ]
    other = [Line2D([], [], color="0.25", linewidth=1.0, label="1.0 (equal)")]
    if target is not None:
        ax.axvline(target, color="black", linestyle="--", linewidth=1.2, zorder=1)
        other.append(
            Line2D([], [], color="black", linestyle="--", linewidth=1.2, label=f"target {target}")
        )
    if hollow_means:
        other += [
            Line2D([], [], linestyle="none", marker="o", color="0.3", label=hollow_means[0]),
            Line2D(
                [],
                [],
                linestyle="none",
                marker="o",
                color="0.3",
                markerfacecolor="white",
                markeredgewidth=1.5,
                label=hollow_means[1],
            ),
        ]
    _legend_below(ax, [backend_handles, other])


def _legend_below(ax, rows: list[list]) -> None:
    """A frameless legend under the axis label, one row per list (the backends, then the
    reference lines), so that it never hides a marker."""
    from matplotlib.lines import Line2D
    from matplotlib.transforms import ScaledTranslation

    ncol = max(len(row) for row in rows)
    blank = Line2D([], [], linestyle="none", label=" ")
    padded = [row + [blank] * (ncol - len(row)) for row in rows]
    handles = [row[c] for c in range(ncol) for row in padded]  # legends fill by column
    below = ScaledTranslation(0, -0.45, ax.figure.dpi_scale_trans)
    ax.legend(
        handles=handles,
        fontsize=9,
        loc="upper center",
        bbox_to_anchor=(0.5, 0.0),
        bbox_transform=ax.transAxes + below,
        ncol=ncol,
        handlelength=1.6,
        handletextpad=0.5,
        columnspacing=1.0,
        frameon=False,
    )


def _batch(backends: dict) -> str:
    """The " (batch N)" of a title, when every int8 entry ran at one batch size."""
    sizes = {r.get("batch") for report in backends.values() for r in report.get("int8", [])}
    return f" (batch {sizes.pop()})" if len(sizes) == 1 and None not in sizes else ""


def _machine_line(backends: dict) -> str:
    report = backends.get("tensorflow") or next(
        (r for r in backends.values() if isinstance(r, dict) and "machine" in r), {}
    )
    machine = report.get("machine", {}) if isinstance(report, dict) else {}
    lscpu = machine.get("lscpu", {})
    cpu = lscpu.get("Model name") or machine.get("cpu") or "unknown CPU"
    cpus = lscpu.get("CPU(s)") or machine.get("cores")
    text = cpu + (f", {cpus} CPUs" if cpus else "")
    if lscpu.get("Hypervisor vendor"):
        text += f" ({lscpu['Hypervisor vendor']} guest)"
    return text


def figure(backends: dict, path: str) -> str:
    """Writes one PNG summarising a run: four panels of ratios, each a median with its
    quartiles, per backend.

    (a) AttentionLayer / its projection, train step at the large shape, without and with
    the compiler (target 1.05); (b) each preset's train step against plain Keras
    (target 1.02); (c) int8 against float32, file size and inference time; (d)
    onnxruntime and LiteRT against Keras's `predict_on_batch`. Entries with an "error"
    or without the ratio are left out; a panel with nothing to show says so.

    Args:
        backends: `{backend: report}`, as in a `--backend all` run's `report["backends"]`.
        path: The PNG to write (`.png`); its directory must exist. The image is
            `FIGSIZE` inches at `DPI` pixels per inch.

    Returns:
        `path`.

    Raises:
        TypeError: If `backends` is not a dict or `path` not a str / os.PathLike.
        ValueError: If `path` does not end in `.png`.

    Example:
        >>> run = json.load(open("benchmarks/reference-run.json"))
        >>> figure(run["backends"], "/tmp/run.png")
        '/tmp/run.png'
    """
    if not isinstance(backends, dict):
        raise TypeError(
            f"`backends` must be a dict {{backend: report}}. Received: backends of type "
            f"{type(backends).__name__}"
        )
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"`path` must be a str or os.PathLike. Received: path={path!r}")
    path = os.fspath(path)
    if not path.lower().endswith(".png"):
        raise ValueError(f"`path` must end in '.png'. Received: path={path!r}")
    fig = _draw(backends)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(suffix=".png", dir=directory)  # written whole, then renamed
    os.close(fd)
    try:
        fig.savefig(tmp, format="png", dpi=DPI)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def _draw(backends: dict):
    """The matplotlib Figure that `figure` writes (on an Agg canvas; no pyplot)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    backends = {b: r for b, r in backends.items() if isinstance(r, dict) and "error" not in r}
    fig = Figure(figsize=FIGSIZE, dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    # Column by column: (a) over (b), (c) over (d), each panel as tall as its rows need.
    counts = [
        len({p[0] for p in points}) or 1
        for points in (
            _points_attention(backends),
            _points_presets(backends),
            _points_int8(backends),
            _points_runtimes(backends),
        )
    ]
    left, right = fig.subfigures(1, 2, wspace=0.02)
    ax_a, ax_b = left.subplots(2, 1, height_ratios=[c + 2.5 for c in counts[:2]])
    ax_c, ax_d = right.subplots(2, 1, height_ratios=[c + 2.5 for c in counts[2:]])
    ratio = "ratio (lower is better)"
    _panel(
        ax_a,
        _points_attention(backends),
        title="(a) AttentionLayer / its W projection alone:\ntrain step, large shape",
        xlabel=ratio,
        ylabel="compiler (jit: XLA, torch.compile)",
        target=PROJECTION_TARGET,
    )
    _panel(
        ax_b,
        _points_presets(backends),
        title="(b) zoo preset / the same network in plain\nKeras: train step",
        xlabel=ratio,
        ylabel="preset",
        target=PRESET_TARGET,
    )
    _panel(
        ax_c,
        _points_int8(backends),
        title="(c) int8 / float32 model: .keras file size\nand inference time" + _batch(backends),
        xlabel=ratio,
        ylabel="preset and measure",
    )
    _panel(
        ax_d,
        _points_runtimes(backends),
        title="(d) onnxruntime and LiteRT / Keras:\ninference (predict_on_batch)",
        xlabel=ratio + ", log scale",
        ylabel="preset and batch",
        log=True,
        hollow_means=("onnxruntime", "LiteRT"),
    )
    fig.suptitle(
        f"Benchmark ratios on {_machine_line(backends)}, CPU only\n"
        "markers: medians of per-sample ratios; error bars: quartiles (q1-q3)",
        fontsize=11,
    )
    return fig


def main(argv=None) -> int:
    """Prints the four Markdown tables of a run's JSON and, with `--png`, writes its figure.

    Args:
        argv: `[RUN.json, "--png", PATH]` (the PNG optional); default `sys.argv[1:]`.

    Returns:
        0.

    Example:
        >>> main(["benchmarks/reference-run.json", "--png", "/tmp/run.png"])
        0
    """
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.report",
        description="The Markdown tables (and optionally a PNG figure) of a benchmark run.",
    )
    parser.add_argument("run", help="a run's JSON (python -m benchmarks ... --out RUN.json)")
    parser.add_argument("--png", metavar="PATH", help="also write a figure of the ratios here")
    args = parser.parse_args(argv)
    with open(args.run, encoding="utf-8") as f:
        report = json.load(f)
    backends = report.get("backends") or {report["machine"]["backend"]: report}
    for title, fn in (
        ("AttentionLayer", attention),
        ("Presets", presets),
        ("int8", int8),
        ("ONNX and LiteRT", runtimes),
    ):
        print(f"### {title}\n\n{fn(backends)}\n")
    if args.png:
        print(f"wrote {figure(backends, args.png)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
