"""The README's Python examples run as written, and CI runs the README's test command."""

import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
BLOCKS = re.findall(r"```python\n(.*?)```", README, flags=re.S)

RUNNER = """
import sys, traceback
blocks = sys.stdin.read().split("\\n# ---- next block ----\\n")
for i, block in enumerate(blocks):
    try:
        exec(compile(block, f"README python block {i + 1}", "exec"), {"__name__": "__readme__"})
    except Exception:
        traceback.print_exc()
        sys.exit(f"README python block {i + 1} failed")
print("ALL BLOCKS RAN")
"""


def test_readme_opens_with_the_two_commands():
    commands = re.findall(r"```bash\n(.*?)\n```", README, flags=re.S)[:2]
    assert "pip install ." in commands[0] and "keras-bigmodel demo" in commands[0]
    assert 'pip install ".[test]"' in commands[1] and "python -m pytest" in commands[1]
    ci = open(os.path.join(ROOT, ".ci", "run"), encoding="utf-8").read()
    assert "README.md" in ci and "pip install" in ci  # .ci/run reads the command from here
    # .ci/run greps the first line starting with this prefix: it must be the whole command.
    prefix = 'python3 -m venv .venv && . .venv/bin/activate && pip install ".[test]"'
    lines = [line for line in README.splitlines() if line.startswith(prefix)]
    assert lines == [commands[1]], lines
    steps = ("ruff check .", "ruff format --check .", "KERAS_BACKEND=jax", "KERAS_BACKEND=torch")
    for step in steps:
        assert step in commands[1], step


@pytest.mark.tensorflow_only
def test_every_python_example_runs(tmp_path):
    assert len(BLOCKS) >= 8
    done = subprocess.run(
        [sys.executable, "-c", RUNNER],
        input="\n# ---- next block ----\n".join(BLOCKS),
        capture_output=True,
        text=True,
        timeout=900,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": ROOT},
    )
    assert done.returncode == 0 and "ALL BLOCKS RAN" in done.stdout, done.stderr[-4000:]
    for produced in (
        "attention.keras",
        "uncertainty.keras",
        "cnn-int8.keras",
        "rnn.tflite",
        "multitask.onnx",
        "cnn.png",
        "cnn-ig.png",
        "rnn.png",
        "rnn-saliency.png",
        "my_cnn/preset.json",
        "my_cnn/model.keras",
        "iris-train.csv",
        "digits-png/test/nine",
    ):
        assert (tmp_path / produced).exists(), produced


def _anchors(markdown: str) -> set[str]:
    """GitHub's anchors for a Markdown file's headings (lower case, punctuation dropped,
    spaces as hyphens)."""
    headings = re.findall(r"^#+ (.+)$", re.sub(r"```.*?```", "", markdown, flags=re.S), re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def test_readme_links_and_figures_exist():
    targets = re.findall(r"\]\(([^)\s]+)\)", README)
    assert targets
    for target in targets:
        path, _, anchor = target.partition("#")
        if path.startswith(("http://", "https://")):
            continue
        text = README if not path else None
        if path:
            assert os.path.exists(os.path.join(ROOT, path)), target
            if path.endswith(".md"):
                text = open(os.path.join(ROOT, path), encoding="utf-8").read()
        if anchor:
            assert anchor in _anchors(text), target
    shown = set(re.findall(r"!\[[^\]]+\]\((docs/[^)]+\.png)\)", README))
    figures = {f"docs/{f}" for f in os.listdir(os.path.join(ROOT, "docs")) if f.endswith(".png")}
    assert figures and figures <= shown, sorted(figures - shown)
