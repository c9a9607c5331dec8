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


@pytest.mark.tensorflow_only
def test_every_python_example_runs(tmp_path):
    assert len(BLOCKS) >= 8
    done = subprocess.run([sys.executable, "-c", RUNNER], input="\n# ---- next block ----\n".join(BLOCKS),
                          capture_output=True, text=True, timeout=900, cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": ROOT})
    assert done.returncode == 0 and "ALL BLOCKS RAN" in done.stdout, done.stderr[-4000:]
    for produced in ("attention.keras", "cnn-int8.keras", "rnn.tflite", "gradcam.png",
                     "attention.png", "my_cnn/preset.json"):
        assert (tmp_path / produced).exists(), produced
