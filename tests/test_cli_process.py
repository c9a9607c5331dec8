"""The `keras-bigmodel` console script as real processes: it is installed and runs;
`--help`, `--version` and argument errors import no Keras; and one end-to-end run on a
folder of images (train -> evaluate -> predict -> explain) with clean stderr. Timing
of `--help` is measured in benchmarks/cli_help.py, not here."""

import json
import os
import shutil
import subprocess
import sys

import pytest
from data_files import digits_subset, write_image_folder

import keras_bigmodel_cli as cli

pytestmark = pytest.mark.once

HEAVY = ("keras", "tensorflow", "jax", "torch", "numpy", "keras_bigmodel", "zoo")
PROBE = """
import contextlib, io, json, sys
import keras_bigmodel_cli as cli
codes = []
for argv in json.loads(sys.argv[1]):
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        codes.append(cli.main(argv))
print(json.dumps({"codes": codes, "heavy": [m for m in HEAVY if m in sys.modules]}))
""".replace("HEAVY", repr(HEAVY))


def script():
    found = shutil.which("keras-bigmodel", path=os.path.dirname(sys.executable)) or shutil.which(
        "keras-bigmodel"
    )
    assert found, "the keras-bigmodel console script is not installed"
    return found


def test_help_version_and_argument_errors_import_no_keras():
    argv = [
        ["--help"],
        ["--version"],
        ["frobnicate"],
        ["train", "cnn"],
        ["train", "cnn", "--data", "d", "--out", "o", "--epochs", "0"],
    ]
    argv += [[command, "--help"] for command in cli.COMMANDS]
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(argv)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["codes"] == [0, 0, 2, 2, 2] + [0] * len(cli.COMMANDS)
    assert result["heavy"] == []

    done = subprocess.run([script(), "--version"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.startswith("keras-bigmodel ") and not done.stderr


def test_end_to_end_on_an_image_folder(tmp_path):
    """What a user runs, as separate processes of the installed console script (on
    TensorFlow, whose native log lines must stay off stderr): train, then evaluate the
    trained directory. The whole chain (predict and explain too) runs in-process on
    every backend in test_cli.py; two processes here keep this check cheap."""
    x, y = digits_subset(per_class=30)
    xt, yt = digits_subset(per_class=8, split="test")
    names = ["zero", "one", "two"]
    train = write_image_folder(tmp_path / "train", x, y, names)
    test = write_image_folder(tmp_path / "test", xt, yt, names)
    model = tmp_path / "model"
    steps = [
        ["train", "cnn", "--data", train, "--epochs", "4", "--out", model]
        + ["--set", "filters=8", "--set", "dense_units=32"],
        ["evaluate", model, "--data", test, "--out", tmp_path / "cm.png"],
    ]
    outputs = []
    for argv in steps:
        done = subprocess.run(
            [script(), *map(str, argv)],
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, "KERAS_BACKEND": "tensorflow"},
        )
        assert done.returncode == 0, (argv, done.stdout[-2000:], done.stderr[-2000:])
        assert done.stderr == "", done.stderr  # no TensorFlow start-up noise
        outputs.append(done.stdout)
    assert sorted(os.listdir(model)) == ["data.json", "metrics.json", "model.keras", "preset.json"]
    assert "accuracy: " in outputs[1] and os.path.getsize(tmp_path / "cm.png") > 10_000
    for name in names:  # per-class precision and recall, by class name
        assert name in outputs[1], outputs[1]
