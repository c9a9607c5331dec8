"""The benchmarks (not tests themselves) still run: a quick pass writes its JSON."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.once
def test_quick_benchmarks_run_and_report(tmp_path):
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--only", "attention", "memory",
         "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=900,
        env={**os.environ, "KERAS_BACKEND": "tensorflow"})
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert {"machine", "attention", "memory", "targets"} <= set(report)
    assert all(r["vs_documents"]["median"] > 0 for r in report["attention"])
    assert report["memory"]["input_bytes"] == 256 * 512 * 256 * 4
    assert "== targets" in done.stdout
