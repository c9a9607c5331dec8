"""The benchmarks (not tests themselves) still run, and their report turns a run's JSON
into the README's tables and figure. In-process and on TensorFlow only: the benchmark
code is backend-neutral and the report touches no backend, so one pass checks both."""

import copy
import json
import os
from collections import Counter

import pytest

from benchmarks import __main__ as bench
from benchmarks import report
from benchmarks.common import fmt_ratio

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REFERENCE = os.path.join(ROOT, "benchmarks", "reference-run.json")


@pytest.mark.slow
@pytest.mark.tensorflow_only
def test_quick_attention_benchmark_runs_and_reports(tmp_path, capsys):
    out = tmp_path / "b.json"
    assert bench.main(["--quick", "--only", "attention", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    result = json.loads(out.read_text())
    assert {"machine", "attention", "targets"} <= set(result)
    assert result["machine"]["backend"] == "tensorflow"
    # --quick: the small shape only, without and with XLA, a train step and inference each.
    assert [(r["shape"], r["xla"], r["phase"]) for r in result["attention"]] == [
        ("small", xla, phase) for xla in (False, True) for phase in ("train step", "inference")
    ]
    for r in result["attention"]:
        assert "error" not in r, r["error"]
        assert set(r["seconds"]) == {"ours", "documents", "bare", "projection"}
        assert all(t > 0 for t in r["seconds"].values())
        for key in ("vs_documents", "vs_bare", "vs_projection", "bare_vs_projection"):
            assert 0 < r[key]["q1"] <= r[key]["median"] <= r[key]["q3"], (key, r[key])
    # The verdicts are printed after "== targets", one line per measured row, and are the
    # ones saved in the JSON (recomputed here from the saved numbers).
    assert "== targets" in printed
    verdicts = printed.split("== targets", 1)[1]
    assert result["targets"] == bench.targets({"attention": result["attention"]})
    assert len(result["targets"]) == len(result["attention"])
    for line in result["targets"]:
        assert line in verdicts


def _tables(markdown: str) -> dict:
    """{section title: [row cells, ...]} of the report's Markdown."""
    tables = {}
    for section in markdown.split("### ")[1:]:
        title, _, body = section.partition("\n")
        lines = [ln for ln in body.splitlines() if ln.startswith("|")]
        assert lines[1].startswith("| --- |"), lines[:2]
        tables[title] = [[c.strip() for c in ln.strip("|").split("|")] for ln in lines[2:]]
    return tables


def _markers_per_panel(backends: dict) -> dict:
    """{panel letter: median markers drawn}, from the Figure that `figure` writes."""
    fig = report._draw(backends)
    return {ax.get_title(loc="left")[1]: len(ax.containers) for ax in fig.axes}


def _expected_markers(backends: dict) -> dict:
    """The same, counted from the JSON: one marker per backend and case with the ratio."""

    def ok(r, key):
        return "error" not in r and key in r

    runs = [r for r in backends.values() if "error" not in r]
    return {
        "a": sum(
            ok(r, "vs_projection") and r["shape"] == "large" and r["phase"] == "train step"
            for run in runs
            for r in run.get("attention", [])
        ),
        "b": sum(ok(r, "zoo_vs_plain") for run in runs for r in run.get("presets", [])),
        "c": sum(
            ok(r, "size_ratio") + ok(r, "int8_vs_float32")
            for run in runs
            for r in run.get("int8", [])
        ),
        "d": sum(
            ok(r, "onnx_vs_keras") + ok(r, "litert_vs_keras")
            for run in runs
            for r in run.get("runtimes", [])
        ),
    }


@pytest.mark.tensorflow_only  # no backend involved: once is enough
def test_report_tables_and_figure_follow_the_run(tmp_path, capsys):
    from PIL import Image

    with open(REFERENCE, encoding="utf-8") as f:
        run = json.load(f)
    backends = run["backends"]
    png = tmp_path / "run.png"
    assert report.main([REFERENCE, "--png", str(png)]) == 0
    tables = _tables(capsys.readouterr().out)
    assert list(tables) == ["AttentionLayer", "Presets", "int8", "ONNX and LiteRT"]

    # One row per entry of the JSON, each backend's rows under its own name.
    for title, key in (
        ("AttentionLayer", "attention"),
        ("Presets", "presets"),
        ("int8", "int8"),
        ("ONNX and LiteRT", "runtimes"),
    ):
        expected = Counter({b: len(r.get(key, [])) for b, r in backends.items()})
        assert Counter(row[0] for row in tables[title]) == expected, title
    # ...carrying the JSON's numbers.
    assert {(row[0], row[1], row[4]) for row in tables["Presets"]} == {
        (b, p["preset"], fmt_ratio(p["zoo_vs_plain"]))
        for b, r in backends.items()
        for p in r["presets"]
    }
    assert {(row[0], row[1], row[2], row[4]) for row in tables["ONNX and LiteRT"]} == {
        (b, p["preset"], str(p["batch"]), fmt_ratio(p["onnx_vs_keras"]))
        for b, r in backends.items()
        for p in r["runtimes"]
    }

    # The figure: a PNG of the size figure() asks for, with every backend's colour drawn.
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(png) as image:
        assert image.size == (
            round(report.FIGSIZE[0] * report.DPI),
            round(report.FIGSIZE[1] * report.DPI),
        )
        colours = {c for _, c in image.convert("RGB").getcolors(maxcolors=1 << 20)}
    for backend in backends:
        rgb = tuple(int(report._COLOURS[backend][i : i + 2], 16) for i in (1, 3, 5))
        assert rgb in colours, backend
    # Each panel draws one median (with its quartiles) per backend and case of the JSON.
    drawn = _markers_per_panel(backends)
    assert drawn == _expected_markers(backends) == {"a": 6, "b": 24, "c": 12, "d": 16}


@pytest.mark.tensorflow_only
def test_figure_leaves_out_failed_entries_and_checks_its_path(tmp_path):
    from PIL import Image

    with open(REFERENCE, encoding="utf-8") as f:
        backends = copy.deepcopy(json.load(f)["backends"])
    backends["jax"] = {"error": "exit status 1"}  # a backend whose process failed
    attention = backends["torch"]["attention"]
    attention[:] = [{**r, "error": "RuntimeError: no compiler"} for r in attention]
    del backends["torch"]["runtimes"][0]["onnx_vs_keras"]  # a missing ratio
    png = tmp_path / "partial.png"
    assert report.figure(backends, str(png)) == str(png)
    with Image.open(png) as image:
        colours = {c for _, c in image.convert("RGB").getcolors(maxcolors=1 << 20)}
    hexes = {"#{:02X}{:02X}{:02X}".format(*c) for c in colours}
    assert report._COLOURS["tensorflow"] in hexes and report._COLOURS["torch"] in hexes
    assert report._COLOURS["jax"] not in hexes
    drawn = _markers_per_panel(backends)
    assert drawn == _expected_markers(backends)
    # (a) TensorFlow's two rows only; (d) TensorFlow's 4 + 4 and PyTorch's 4 - 1.
    assert drawn == {"a": 2, "b": 16, "c": 8, "d": 11}

    with pytest.raises(ValueError, match=r"`path` must end in '\.png'.*run\.jpg"):
        report.figure(backends, str(tmp_path / "run.jpg"))
    with pytest.raises(TypeError, match=r"`backends` must be a dict.*list"):
        report.figure([], str(png))
