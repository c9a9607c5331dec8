"""The README's and the docs pages' Python examples run as written, their links hold,
and CI runs the README's test command."""

import json
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.path.join(ROOT, "docs")


def _read(path):
    return open(path, encoding="utf-8").read()


def _nav_pages() -> list[str]:
    """The docs pages in the site's order (mkdocs.yml's nav)."""
    return re.findall(r"^\s+- [^:]+: (\S+\.md)$", _read(os.path.join(ROOT, "mkdocs.yml")), re.M)


README = _read(os.path.join(ROOT, "README.md"))
PAGES = {page: _read(os.path.join(DOCS, page)) for page in _nav_pages()}
# (where, block): the README's blocks, then each page's, in the site's order.
BLOCKS = [
    (where, block)
    for where, text in [("README.md", README), *PAGES.items()]
    for block in re.findall(r"```python\n(.*?)```", text, flags=re.S)
]

# Blocks of one page share a namespace (a page reads as one script); each page starts
# afresh, and every page runs in the same directory, so files a page writes are there
# for the pages after it.
RUNNER = """
import json, sys, time, traceback
namespaces = {}
for i, (where, block) in enumerate(json.loads(sys.stdin.read())):
    namespace = namespaces.setdefault(where, {"__name__": "__docs__"})
    began = time.time()
    try:
        exec(compile(block, f"{where}, python block {i + 1}", "exec"), namespace)
        print(f"TIME {where} {i + 1} {time.time() - began:.1f}", file=sys.stderr)
    except Exception:
        traceback.print_exc()
        sys.exit(f"{where}: python block {i + 1} failed")
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
    steps = (
        "ruff check .",
        "ruff format --check .",
        "mkdocs build --strict",
        "KERAS_BACKEND=jax",
        "KERAS_BACKEND=torch",
    )
    for step in steps:
        assert step in commands[1], step


# The pages run in two groups, each in its own process and directory, side by side on
# the two xdist workers: no page of the second group reads a file the first writes.
SECOND_GROUP = "compression.md"
GROUPS = {
    "readme-to-cli": ("README.md", *list(PAGES)[: list(PAGES).index(SECOND_GROUP)]),
    "compression-to-end": tuple(list(PAGES)[list(PAGES).index(SECOND_GROUP) :]),
}
PRODUCED = {
    "readme-to-cli": (
        "attention.keras",
        "uncertainty.keras",
        "my_cnn/preset.json",
        "my_cnn/model.keras",
        "iris-train.csv",
        "digits-png/test/nine",
    ),
    "compression-to-end": (
        "cnn-int8.keras",
        "rnn.tflite",
        "multitask.onnx",
        "cnn.png",
        "cnn-ig.png",
        "rnn.png",
        "rnn-saliency.png",
    ),
}


def test_the_groups_hold_every_page_once():
    pages = [page for group in GROUPS.values() for page in group]
    assert pages == ["README.md", *PAGES]


@pytest.mark.slow
@pytest.mark.tensorflow_only
@pytest.mark.parametrize("group", list(GROUPS))
def test_every_python_example_runs(group, tmp_path):
    blocks = [(where, block) for where, block in BLOCKS if where in GROUPS[group]]
    assert len(blocks) >= 8
    done = subprocess.run(
        [sys.executable, "-c", RUNNER],
        input=json.dumps(blocks),
        capture_output=True,
        text=True,
        timeout=900,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": ROOT},
    )
    assert done.returncode == 0 and "ALL BLOCKS RAN" in done.stdout, done.stderr[-4000:]
    for produced in PRODUCED[group]:
        assert (tmp_path / produced).exists(), produced


def _anchors(markdown: str) -> set[str]:
    """GitHub's anchors for a Markdown file's headings (lower case, punctuation dropped,
    spaces as hyphens)."""
    headings = re.findall(r"^#+ (.+)$", re.sub(r"```.*?```", "", markdown, flags=re.S), re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def test_every_page_is_in_the_site_and_the_readme_links_them():
    pages = {f for f in os.listdir(DOCS) if f.endswith(".md")}
    assert pages == set(PAGES), sorted(pages ^ set(PAGES))
    linked = set(re.findall(r"\]\(docs/([^)#\s]+\.md)", README))
    assert set(PAGES) - {"index.md", "development.md"} <= linked, sorted(set(PAGES) - linked)


@pytest.mark.parametrize("name", ["README.md", *PAGES])
def test_links_and_anchors_exist(name):
    text = README if name == "README.md" else PAGES[name]
    base = ROOT if name == "README.md" else DOCS
    targets = re.findall(r"\]\(([^)\s]+)\)", re.sub(r"```.*?```", "", text, flags=re.S))
    for target in targets:
        path, _, anchor = target.partition("#")
        if path.startswith(("http://", "https://")):
            continue
        linked = text
        if path:
            full = os.path.normpath(os.path.join(base, path))
            assert os.path.exists(full), (name, target)
            if path.endswith(".md"):
                linked = _read(full)
        if anchor and (not path or path.endswith(".md")):
            assert anchor in _anchors(linked), (name, target)


def test_every_docs_figure_is_shown():
    shown = {
        os.path.normpath(os.path.join(DOCS, f))
        for text in PAGES.values()
        for f in re.findall(r"!\[[^\]]+\]\(([^)]+\.png)\)", text)
    }
    figures = {os.path.join(DOCS, f) for f in os.listdir(DOCS) if f.endswith(".png")}
    assert figures and figures <= shown, sorted(figures - shown)
