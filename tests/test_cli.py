"""The `keras-bigmodel` command, run for real in subprocesses."""

import json
import os
import shutil
import subprocess
import sys

import pytest

import zoo


def run(*args, timeout=300):
    """Runs `python -m keras_bigmodel ARGS` as a user would; returns the process."""
    return subprocess.run([sys.executable, "-m", "keras_bigmodel", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout)


def assert_one_line_error(done, *fragments):
    assert done.returncode == 1, (done.returncode, done.stdout[-2000:], done.stderr[-2000:])
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("keras-bigmodel: error: ") and "Traceback" not in done.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_console_script_lists_presets():
    script = shutil.which("keras-bigmodel", path=os.path.dirname(sys.executable)) or shutil.which(
        "keras-bigmodel")
    assert script, "the keras-bigmodel console script is not installed"
    done = subprocess.run([script, "list"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    names = [line.split()[0] for line in done.stdout.strip().splitlines()]
    assert names == zoo.list_presets()
    assert done.stderr == ""  # no TensorFlow start-up noise


def test_show_and_build(tmp_path):
    done = run("show", "cnn")
    assert done.returncode == 0, done.stderr
    assert "parameters: 3,938,570" in done.stdout and '"num_classes": 10' in done.stdout
    out = tmp_path / "fusion.keras"
    done = run("build", "fusion", "--out", out, "--set", "mode=sum", "--set", "input_shape=[4]")
    assert done.returncode == 0, done.stderr
    assert f"-> {out}" in done.stdout
    from keras_bigmodel import load_model

    model = load_model(out)
    assert model.get_layer("fusion").mode == "sum" and tuple(model.inputs[0].shape) == (None, 4)


def test_train_evaluate_verify_quantize_explain(tmp_path):
    trained = tmp_path / "cnn"
    done = run("train", "cnn", "--data", "digits", "--epochs", 2, "--out", trained)
    assert done.returncode == 0, done.stderr
    assert sorted(os.listdir(trained)) == ["metrics.json", "model.keras", "preset.json"]
    accuracy = json.loads((trained / "metrics.json").read_text())["test_accuracy"]["accuracy"]
    assert 0.5 < accuracy <= 1.0

    done = run("evaluate", trained)
    assert done.returncode == 0, done.stderr
    assert float(done.stdout.split("accuracy:")[1]) == pytest.approx(accuracy, abs=1e-4)

    done = run("verify", trained)
    assert done.returncode == 0 and done.stdout.strip().endswith("OK"), done.stdout + done.stderr
    assert "probe predictions vs recorded" in done.stdout

    done = run("quantize", trained / "model.keras", "--out", tmp_path / "int8.keras")
    assert done.returncode == 0, done.stderr
    assert os.path.getsize(tmp_path / "int8.keras") < 0.5 * os.path.getsize(trained / "model.keras")

    if __import__("keras").backend.backend() == "tensorflow":
        done = run("explain", trained, "--out", tmp_path / "cam.png")
        assert done.returncode == 0, done.stderr
        assert "gradcam" in done.stdout
        assert (tmp_path / "cam.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # tamper with the recorded predictions: verify must fail with one line
    meta = json.loads((trained / "preset.json").read_text())
    meta["probe"]["outputs"][0][0] += 0.5
    (trained / "preset.json").write_text(json.dumps(meta))
    assert_one_line_error(run("verify", trained), "verification FAILED")


def test_train_attention_rnn_then_explain_attention(tmp_path):
    done = run("train", "attention_rnn", "--epochs", 1, "--out", tmp_path / "arnn")
    assert done.returncode == 0, done.stderr
    done = run("explain", tmp_path / "arnn", "--out", tmp_path / "att.png")
    assert done.returncode == 0 and "attention map" in done.stdout, done.stderr


def test_user_errors_are_one_line(tmp_path):
    assert_one_line_error(run("build", "cnnn", "--out", tmp_path / "x.keras"),
                          "Unknown preset 'cnnn'", "Did you mean 'cnn'")
    assert_one_line_error(run("build", "cnn", "--out", tmp_path / "x.keras", "--set", "num_classes"),
                          "--set expects key=value")
    assert_one_line_error(run("build", "cnn", "--out", tmp_path / "x.keras", "--set", "num_classes=0"),
                          "`num_classes` must be a positive integer")
    assert_one_line_error(run("build", "cnn", "--out", tmp_path / "x.keras", "--set", "colour=3"),
                          "Unknown override(s) ['colour']")
    assert_one_line_error(run("verify", tmp_path / "missing.keras"), "No such file")
    (tmp_path / "corrupt.keras").write_bytes(b"PK\x03\x04 not really")
    assert_one_line_error(run("evaluate", tmp_path / "corrupt.keras"), "not a valid .keras archive")
    assert_one_line_error(run("train", "cnn", "--epochs", 0, "--out", tmp_path / "t"),
                          "--epochs must be at least 1")
    assert not (tmp_path / "x.keras").exists() and not (tmp_path / "t").exists()


def test_wrong_input_shape_and_refused_files(tmp_path):
    run("build", "cnn", "--out", tmp_path / "big.keras")  # 64x64x3 images, not digits
    assert_one_line_error(run("evaluate", tmp_path / "big.keras"), "not a view of the 8x8 digits")
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "security"))
    import hostile

    sentinel = tmp_path / "SENTINEL"
    path = hostile.lambda_bytecode(str(tmp_path), str(sentinel))
    for command in ("verify", "evaluate"):
        assert_one_line_error(run(command, path), "Lambda layer")
    assert not sentinel.exists()


def test_demo_quick(tmp_path):
    out = tmp_path / "demo"
    done = run("demo", "--quick", "--out", out, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert set(results["models"]) == {"cnn", "attention_rnn", "multitask"}
    for r in results["models"].values():
        assert r["reload_max_difference"] <= 1e-6
    assert results["int8"]["bytes"] < 0.3 * results["models"]["cnn"]["bytes"]
    expected = {"cnn.keras", "cnn-int8.keras", "attention_rnn.keras", "multitask.keras",
                "attention_rnn-attention.png", "results.json"}
    assert expected <= set(os.listdir(out))
    assert "CNN float32 vs int8" in done.stdout and "test accuracy" in done.stdout
