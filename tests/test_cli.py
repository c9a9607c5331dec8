"""The `keras-bigmodel` command, run in-process through `keras_bigmodel_cli.main` on
real files written on the fly (digits as PNG folders, CSV and .npz); the checks that
need a real process are in test_cli_process.py."""

import contextlib
import csv
import io
import json
import os
import re
import sys

import keras
import numpy as np
import pytest
from cli_helpers import one_line_error, run
from data_files import (
    digits_csv,
    digits_subset,
    read_png,
    write_image_folder,
    write_sized_folder,
)
from PIL import Image
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

import keras_bigmodel as kbm
import keras_bigmodel_cli as cli
import zoo
from keras_bigmodel.cli import demo
from keras_bigmodel.data import image_preprocessing
from keras_bigmodel.verification import predictions

NAMES = ["zero", "one", "two"]  # folder names, so classes are reported by name
CNN = ["--set", "filters=8", "--set", "dense_units=32"]
# Example counts are multiples of the batch sizes: on JAX a smaller last batch would be
# one more XLA compilation.
B16 = ["--batch-size", "16"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Digits 0-2 as PNG folders (train and held-out test) and a cnn trained on them."""
    root = tmp_path_factory.mktemp("cli")
    x, y = digits_subset(per_class=40)
    xt, yt = digits_subset(per_class=16, split="test")
    train = write_image_folder(root / "train", x, y, NAMES)
    test = write_image_folder(root / "test", xt, yt, NAMES)
    model_dir = str(root / "trained")
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = cli.main(
            [
                "train",
                "cnn",
                "--data",
                train,
                "--epochs",
                "10",
                "--batch-size",
                "24",
                "--out",
                model_dir,
                *CNN,
            ]
        )
    assert code == 0, stdout.getvalue()
    return {
        "root": root,
        "train": train,
        "test": test,
        "model": model_dir,
        "train_output": stdout.getvalue(),
        "x_test": xt,
        "y_test": yt,
    }


# --------------------------------------------------------------------------- parser
def test_parser_help_version_and_usage_errors(capsys):
    assert cli.EXPLAIN_METHODS == kbm.explain.METHODS
    code, out, _ = run(capsys, "--help")
    assert code == 0 and all(c in out for c in cli.COMMANDS)
    parser = cli.build_parser()
    commands = parser._subparsers._group_actions[0].choices
    assert set(commands) == set(cli.COMMANDS)
    for name, sub in commands.items():
        assert run(capsys, name, "--help")[0] == 0
        for action in sub._actions:
            assert action.help and action.help.strip(), (name, action.dest)

    code, out, _ = run(capsys, "--version")
    assert code == 0 and re.match(r"keras-bigmodel \S+ \(Keras 3\.\d+\.\d+, .*; backend \w+\)", out)

    usage = [
        (
            ["train", "cnn", "--data", "d", "--out", "o", "--epochs", "0"],
            "argument --epochs: must be at least 1, got 0",
        ),
        (
            ["train", "cnn", "--data", "d", "--out", "o", "--validation-split", "1"],
            "argument --validation-split: must be in [0, 1), got 1",
        ),
        (
            ["build", "cnn", "--out", "x.keras", "--set", "num_classes"],
            "argument --set: expects KEY=VALUE, e.g. --set num_classes=3; got 'num_classes'",
        ),
        (
            ["evaluate", "m", "--data", "d", "--image-size", "big"],
            "argument --image-size: expected HEIGHTxWIDTH",
        ),
        (["predict", "m", "--data", "d"], "the following arguments are required: --out"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
    ]
    for argv, message in usage:
        code, _, err = run(capsys, *argv)
        assert code == 2 and message in err, (argv, err)


def test_loading_message_and_unexpected_errors(capsys, monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setenv("KERAS_BACKEND", "jax")
    monkeypatch.delitem(sys.modules, "keras")
    assert (
        cli._loading_message(Terminal()) == "keras-bigmodel: loading Keras with the JAX backend ..."
    )
    assert cli._loading_message(io.StringIO()) is None  # not a terminal: pipes stay clean
    monkeypatch.undo()

    from keras_bigmodel.cli import catalog

    def interrupted(args, out):
        raise KeyboardInterrupt

    monkeypatch.setattr(catalog, "run_list", interrupted)
    code, _, err = run(capsys, "list")
    assert code == 130 and err == "keras-bigmodel: interrupted\n"

    def bug(args, out):
        raise ZeroDivisionError("division by zero\n   in a bug")

    monkeypatch.setattr(catalog, "run_list", bug)
    assert one_line_error(capsys, "list") == (
        "ZeroDivisionError: division by zero in a bug (run with --debug for the traceback)"
    )
    with pytest.raises(ZeroDivisionError):
        cli.main(["list", "--debug"])


# ------------------------------------------------------------------ zoo and files
def test_list_show_build_verify_quantize(files, capsys, tmp_path):
    code, out, _ = run(capsys, "list")
    assert code == 0 and [line.split()[0] for line in out.splitlines()] == zoo.list_presets()
    code, out, _ = run(capsys, "show", "cnn")
    assert code == 0 and "parameters: 3,938,570" in out and '"num_classes": 10' in out

    built = tmp_path / "fusion.keras"
    code, out, _ = run(
        capsys, "build", "fusion", "--out", built, "--set", "mode=sum", "--set", "input_shape=[4]"
    )
    assert code == 0 and f"-> {built}" in out
    model = kbm.load_model(built)
    assert model.get_layer("fusion").mode == "sum" and tuple(model.inputs[0].shape) == (None, 4)

    code, out, _ = run(capsys, "verify", files["model"])
    assert code == 0 and "probe predictions vs recorded: max difference" in out
    assert out.strip().endswith("OK")
    int8 = tmp_path / "int8.keras"
    code, out, _ = run(
        capsys, "quantize", os.path.join(files["model"], "model.keras"), "--out", int8
    )
    assert code == 0 and out.startswith("int8: ")
    assert kbm.load_model(int8).get_layer("dense").quantization_mode == "int8"
    assert image_preprocessing.front_of(kbm.load_model(int8)).size == (8, 8)  # kept

    assert one_line_error(capsys, "build", "cnnn", "--out", tmp_path / "x.keras").startswith(
        "Unknown preset 'cnnn'. Did you mean 'cnn'"
    )
    assert "Unknown override(s) ['colour']" in one_line_error(
        capsys, "build", "cnn", "--out", tmp_path / "x.keras", "--set", "colour=3"
    )
    assert one_line_error(capsys, "verify", tmp_path / "missing.keras") == (
        f"No such file or directory: {tmp_path / 'missing.keras'}"
    )
    assert not (tmp_path / "x.keras").exists()


# ----------------------------------------------------------------- image folders
def _reference(files):
    """The test folder read without keras_bigmodel.data, and the trained model's
    predictions on it, for the numbers the commands print (the model takes raw pixels
    0..255 and rescales them itself)."""
    model = zoo.load_preset(files["model"])
    record = json.load(open(os.path.join(files["model"], "data.json")))
    names = record["class_names"]["label"]
    ids, images, labels = [], [], []
    for name in sorted(os.listdir(files["test"])):
        for file in sorted(os.listdir(os.path.join(files["test"], name))):
            path = os.path.join(files["test"], name, file)
            images.append(np.asarray(Image.open(path), dtype="float32")[..., None])
            labels.append(names.index(name))
            ids.append(os.path.join(name, file))
    images = np.stack(images)
    return model, names, ids, images, np.array(labels), predictions(model, images)


def test_train_evaluate_predict_explain_on_image_folders(files, capsys, tmp_path):
    out = files["train_output"]
    assert f"data: 120 images (8x8 grayscale) in 3 classes from {files['train']}" in out
    assert "sparse labels" in out and "training on 96 examples, validating on 24" in out
    assert sorted(os.listdir(files["model"])) == [
        "data.json",
        "metrics.json",
        "model.keras",
        "preset.json",
    ]
    record = json.load(open(os.path.join(files["model"], "data.json")))
    assert record["class_names"] == {"label": ["one", "two", "zero"]}
    assert record["color_mode"] == "grayscale" and record["label_mode"] == "sparse"
    metrics = json.load(open(os.path.join(files["model"], "metrics.json")))
    assert metrics["epochs_run"] == 10 and len(metrics["history"]["val_loss"]) == 10

    _, names, ids, _, labels, predicted = _reference(files)
    best = predicted.argmax(-1)
    assert accuracy_score(labels, best) >= 0.85  # it learned the three digits

    png, report = tmp_path / "cm.png", tmp_path / "metrics.json"
    code, out, err = run(
        capsys,
        "evaluate",
        files["model"],
        "--data",
        files["test"],
        *B16,
        "--out",
        png,
        "--json",
        report,
    )
    assert code == 0 and err == ""
    assert f"accuracy: {accuracy_score(labels, best):.4f} ({(labels == best).sum()} of 48)" in out
    precision, recall, _, support = precision_recall_fscore_support(labels, best, zero_division=0)
    for i, name in enumerate(names):
        row = next(line for line in out.splitlines() if line.startswith(name + " "))
        assert row.split() == [name, f"{precision[i]:.3f}", f"{recall[i]:.3f}", str(support[i])]
    matrix = confusion_matrix(labels, best)
    table = out.split("columns: predicted class):\n")[1].splitlines()
    assert table[0].split() == names
    assert [[int(v) for v in line.split()[1:]] for line in table[1:4]] == matrix.tolist()
    assert json.load(open(report))["tasks"]["label"]["confusion_matrix"] == matrix.tolist()
    with Image.open(png) as picture:
        assert picture.format == "PNG" and min(picture.size) >= 400

    predictions = tmp_path / "predictions.csv"
    code, out, _ = run(
        capsys, "predict", files["model"], "--data", files["test"], *B16, "--out", predictions
    )
    assert code == 0 and f"predicted 48 examples -> {predictions}" in out
    rows = list(csv.DictReader(open(predictions, newline="")))
    assert [r["id"] for r in rows] == ids
    assert [r["predicted"] for r in rows] == [names[i] for i in best]
    assert [r["true"] for r in rows] == [names[i] for i in labels]
    probabilities = np.array([[float(r[f"p[{n}]"]) for n in names] for r in rows])
    np.testing.assert_allclose(probabilities, predicted, atol=1e-6)
    np.testing.assert_allclose(
        [float(r["probability"]) for r in rows], predicted.max(-1), atol=1e-6
    )

    picture = tmp_path / "explained.png"
    code, out, _ = run(
        capsys,
        "explain",
        files["model"],
        "--data",
        files["test"],
        "--out",
        picture,
        "--samples",
        "6",
    )
    assert code == 0 and f"gradcam of 6 examples (image 'image') from {files['test']}" in out
    assert out.strip().splitlines()[-1].startswith("true->predicted: one->")
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


SIZES = [(8, 8), (16, 16), (6, 5)]  # the model's size, bigger and smaller
MIXED = np.r_[0:4, 16:20, 32:36]  # 4 test digits of each class


def _probabilities(path, names):
    rows = list(csv.DictReader(open(path, newline="")))
    return [r["id"] for r in rows], np.array([[float(r[f"p[{n}]"]) for n in names] for r in rows])


@pytest.mark.backend_independent  # the commands' reading; models: test_data_images.py
def test_a_model_trained_on_a_folder_takes_images_of_any_size(files, capsys, tmp_path):
    """train put the front in the model: predict, evaluate and explain read a folder of
    8x8, 16x16 and 6x5 images at their own sizes; each prediction is the model's on
    that image alone, and within 0.02 of the old path (Pillow's resize to 8x8, then
    [0, 1] pixels through the network without the front). What the front model does
    on each backend is tested in tests/test_data_images.py."""
    assert (
        "inside the model: images of any size resized to 8x8 and pixels scaled"
        in (files["train_output"])
    )
    record = json.load(open(os.path.join(files["model"], "data.json")))
    assert record["scale"] == "1" and record["image_size"] == [8, 8]
    x, y = files["x_test"][MIXED], files["y_test"][MIXED]
    mixed = write_sized_folder(tmp_path / "mixed", x, y, NAMES, SIZES)
    predictions = tmp_path / "p.csv"
    code, out, _ = run(capsys, "predict", files["model"], "--data", mixed, "--out", predictions)
    assert code == 0 and f"data: 12 images (3 sizes grayscale) in 3 classes from {mixed}" in out
    names = record["class_names"]["label"]
    ids, got = _probabilities(predictions, names)
    model = kbm.load_model(os.path.join(files["model"], "model.keras"))
    network = image_preprocessing.network_view(model)
    own = [read_png(os.path.join(mixed, i)) for i in ids]
    assert {p.shape[:2] for p in own} == set(SIZES)
    alone = np.concatenate([predictions_of(model, p[None]) for p in own])
    np.testing.assert_allclose(got, alone, atol=1e-5)
    old = np.stack([read_png(os.path.join(mixed, i), (8, 8)) for i in ids]) / 255.0
    np.testing.assert_allclose(got, predictions_of(network, old), atol=0.02)
    labels = np.array([names.index(i.split(os.sep)[0]) for i in ids])
    hits = int((got.argmax(-1) == labels).sum())

    code, out, _ = run(
        capsys, "evaluate", files["model"], "--data", mixed, "--out", tmp_path / "c.png"
    )
    assert code == 0 and f"accuracy: {hits / 12:.4f} ({hits} of 12)" in out
    code, out, _ = run(
        capsys,
        "explain",
        files["model"],
        "--data",
        mixed,
        "--out",
        tmp_path / "e.png",
        "--samples",
        "3",
    )
    assert code == 0 and f"gradcam of 3 examples (image 'image') from {mixed}" in out


def predictions_of(model, x):
    return np.asarray(keras.ops.convert_to_numpy(model(x)))


@pytest.mark.backend_independent  # the commands' reading of an old directory
def test_a_model_trained_before_the_front_keeps_the_readers_resize(capsys, tmp_path):
    """A preset directory without the front (data.json: [0, 1] pixels, resized to 8x8)
    reads a folder of mixed sizes with Pillow's resize, as it always did."""
    keras.utils.set_random_seed(2)
    model = zoo.build("cnn", labels="sparse", **zoo.get_preset("cnn").tiny)
    directory = str(tmp_path / "old")
    zoo.save_preset(model, directory)
    record = {
        "format": "images",
        "class_names": {"label": NAMES},
        "color_mode": "grayscale",
        "image_size": [8, 8],
        "resized": True,
        "scale": "1/255",
    }
    kbm.data.write_record(directory, record)
    x, y = digits_subset(per_class=2, split="test")
    mixed = write_sized_folder(tmp_path / "mixed", x, y, NAMES, SIZES)
    code, out, _ = run(capsys, "predict", directory, "--data", mixed, "--out", tmp_path / "p.csv")
    assert code == 0 and f"data: 6 images (8x8 grayscale) in 3 classes from {mixed}" in out
    ids, got = _probabilities(tmp_path / "p.csv", NAMES)
    old = np.stack([read_png(os.path.join(mixed, i), (8, 8)) for i in ids]) / 255.0
    np.testing.assert_allclose(got, predictions_of(model, old), atol=1e-6)
    kbm.data.write_record(directory, {**record, "resized": False})
    message = one_line_error(
        capsys, "predict", directory, "--data", mixed, "--out", tmp_path / "q.csv"
    )
    assert message.startswith("images differ in size: ") and "--image-size HEIGHTxWIDTH" in message


@pytest.mark.tensorflow_only
def test_an_exported_front_model_reads_images_at_its_training_size(files, capsys, tmp_path):
    """quantize --format onnx exports the front model at 8x8 (raw pixels); predict
    with the exported directory resizes a mixed folder to that size and agrees with
    the Keras model on the class of each image."""
    import onnx

    exported = tmp_path / "onnx"
    code, out, _ = run(
        capsys,
        "quantize",
        files["model"],
        "--data",
        files["train"],
        "--format",
        "onnx",
        "--out",
        exported,
    )
    assert code == 0 and "int8 onnx" in out
    runtime = json.load(open(exported / "runtime.json"))
    assert runtime["inputs"][0]["shape"] == [8, 8, 1]
    graph = onnx.load(exported / "model.onnx").graph  # the front only rescales: no resize
    assert not {"Resize", "ScaleAndTranslate"} & {node.op_type for node in graph.node}
    x, y = files["x_test"][MIXED], files["y_test"][MIXED]
    mixed = write_sized_folder(tmp_path / "mixed", x, y, NAMES, SIZES)
    for model, csv_path in ((files["model"], "keras.csv"), (exported, "onnx.csv")):
        code, out, _ = run(capsys, "predict", model, "--data", mixed, "--out", tmp_path / csv_path)
        assert code == 0, out
    names = json.load(open(os.path.join(files["model"], "data.json")))["class_names"]["label"]
    _, keras_p = _probabilities(tmp_path / "keras.csv", names)
    _, onnx_p = _probabilities(tmp_path / "onnx.csv", names)
    assert (keras_p.argmax(-1) == onnx_p.argmax(-1)).mean() >= 0.9
    np.testing.assert_allclose(onnx_p, keras_p, atol=0.1)


def test_a_model_that_does_not_fit_the_data(files, capsys, tmp_path):
    """evaluate, predict and explain refuse a model whose input shape or classes do not
    match the data, before any work, with the same one-line message."""
    x, y = files["x_test"], files["y_test"]
    big = write_image_folder(tmp_path / "big", x, y, NAMES, scale=2, mode="RGB")
    expected = (
        f"model 'cnn' ({files['model']}) does not fit {big}: input 'image' expects images of "
        f"any size with 1 channel; the data gives 16x16 images with 3 channels; --color-mode "
        f"grayscale converts them"
    )
    # (the RGB pictures would be read in the recorded grayscale mode unless told otherwise)
    for command, out in (("evaluate", "cm.png"), ("explain", "e.png"), ("predict", "p.csv")):
        assert (
            one_line_error(
                capsys,
                command,
                files["model"],
                "--data",
                big,
                "--color-mode",
                "rgb",
                "--out",
                tmp_path / out,
            )
            == expected
        )
        assert not (tmp_path / out).exists()
    code, out, _ = run(
        capsys,
        "predict",
        files["model"],
        "--data",
        big,
        "--image-size",
        "8x8",
        "--color-mode",
        "grayscale",
        "--stream",
        *B16,
        "--out",
        tmp_path / "p.csv",
    )
    assert code == 0 and "accuracy on these labels: " in out
    assert "(8x8 grayscale) in 3 classes" in out and "read from disk batch by batch" in out

    four = write_image_folder(
        tmp_path / "four", *digits_subset((0, 1, 2, 3), 2, "test"), NAMES + ["three"]
    )
    expected = (
        f"model 'cnn' ({files['model']}) does not fit {four}: class folder 'three' is not "
        f"one of the model's classes: one, two, zero"
    )
    for command in ("evaluate", "explain"):
        assert (
            one_line_error(
                capsys, command, files["model"], "--data", four, "--out", tmp_path / "x.png"
            )
            == expected
        )
    bare = os.path.join(files["model"], "model.keras")  # no data.json: classes by count
    expected = (
        f"model 'cnn' ({bare}) does not fit {four}: it predicts 3 classes; the data has 4 "
        f"(one, three, two, zero)"
    )
    for command in ("evaluate", "explain"):
        assert (
            one_line_error(capsys, command, bare, "--data", four, "--out", tmp_path / "x.png")
            == expected
        )
    assert one_line_error(capsys, "evaluate", bare, "--data", "digits").startswith(
        f"model 'cnn' ({bare}) does not fit digits (test split): it predicts 3 classes; the "
        f"data has 10"
    )


def test_bad_data_is_one_line(files, capsys, tmp_path):
    x, y = digits_subset(per_class=4)
    folder = write_image_folder(tmp_path / "imgs", x, y, NAMES)
    broken = os.path.join(folder, "one", "broken.png")
    with open(broken, "wb") as f:
        f.write(b"not an image")
    train = ["train", "cnn", "--epochs", "1", "--out", tmp_path / "out", *CNN, "--data"]
    assert one_line_error(capsys, *train, folder).startswith(f"cannot read image {broken} (")
    code, out, _ = run(
        capsys,
        "predict",
        files["model"],
        "--data",
        folder,
        "--bad-images",
        "skip",
        "--batch-size",
        "4",
        "--out",
        tmp_path / "p.csv",
    )
    assert code == 0 and "skipped 1 unreadable image(s), e.g. " + broken in out
    assert "data: 12 images (8x8 grayscale) in 3 classes" in out
    assert len(list(csv.DictReader(open(tmp_path / "p.csv")))) == 12
    os.remove(broken)
    os.makedirs(os.path.join(folder, "three"))
    assert one_line_error(capsys, *train, folder) == (
        f"class folder {os.path.join(folder, 'three')} holds no images (.bmp, .gif, .jpeg, .jpg, "
        f".png); add images to it or remove it"
    )

    table = digits_csv(tmp_path / "d.csv", x, y, NAMES)
    # the data's kind is checked against the model's first
    assert one_line_error(capsys, *train, table) == (
        f"preset 'cnn' takes images; {table} is a table (CSV)"
    )
    mt = ["train", "multitask", "--epochs", "1", "--out", tmp_path / "out", "--data", table]
    assert one_line_error(capsys, *mt, "--label-column", "Label").startswith(
        f"{table}: unknown label column 'Label' (did you mean 'label'?); the columns are: p0, p1"
    )
    rows = open(table).read().splitlines()
    rows[3] = "nan" + rows[3][rows[3].index(",") :]
    open(table, "w").write("\n".join(rows) + "\n")
    assert one_line_error(capsys, *mt) == (
        f"preset 'multitask' takes numbers only; column 'p0' has 1 missing values in {table}: "
        f"the 'tabular' preset encodes strings and imputes missing values inside the model "
        f"(train tabular ...), or leave such columns out with --drop-columns, or rows with "
        f"--missing drop"
    )
    np.savez(tmp_path / "short.npz", x=x, y=y[:-1])
    assert one_line_error(capsys, *train, tmp_path / "short.npz") == (
        f"{tmp_path / 'short.npz'}: mismatched lengths: x has 12, y has 11 rows"
    )
    assert one_line_error(capsys, *train, tmp_path / "nowhere") == (
        f"--data {tmp_path / 'nowhere'}: no such file or folder"
    )
    assert not (tmp_path / "out").exists()


def test_failures_are_one_line(files, capsys, monkeypatch, tmp_path):
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "security"))
    import hostile

    sentinel = tmp_path / "SENTINEL"
    path = hostile.lambda_bytecode(str(tmp_path), str(sentinel))
    for argv in (["verify", path], ["evaluate", path, "--data", "digits"]):
        assert "Lambda layer" in one_line_error(capsys, *argv)
    assert not sentinel.exists()
    (tmp_path / "corrupt.keras").write_bytes(b"PK\x03\x04 not really")
    assert "not a valid .keras archive" in one_line_error(
        capsys, "evaluate", tmp_path / "corrupt.keras", "--data", "digits"
    )

    from keras_bigmodel import data

    def exhausted(*args, **kwargs):
        raise MemoryError("Unable to allocate 48.0 GiB")

    monkeypatch.setattr(data, "load", exhausted)
    assert one_line_error(
        capsys, "train", "cnn", "--data", files["train"], "--out", tmp_path / "o"
    ) == (
        "out of memory (Unable to allocate 48.0 GiB); try a smaller --batch-size, or --stream to "
        "read images from disk batch by batch"
    )
    assert one_line_error(
        capsys, "train", "cnnn", "--data", "digits", "--out", tmp_path / "o"
    ).startswith("Unknown preset 'cnnn'. Did you mean 'cnn'")


# ------------------------------------------------------------ csv, npz, multi-task
def test_multitask_csv_with_named_tasks(capsys, tmp_path):
    x, y = digits_subset(per_class=20)
    parity = ["odd" if d % 2 else "even" for d in y]
    table = digits_csv(tmp_path / "t.csv", x, y, NAMES, extra={"parity": parity})
    out_dir = tmp_path / "mt"
    code, out, _ = run(
        capsys,
        "train",
        "multitask",
        "--data",
        table,
        "--label-column",
        "label",
        "--label-column",
        "parity",
        "--epochs",
        "2",
        "--out",
        out_dir,
        "--set",
        "trunk_units=[16]",
        "--validation-split",
        "0",
        "--batch-size",
        "20",
    )
    assert code == 0
    assert "60 rows of 64 features in 3 classes of 'label', 2 classes of 'parity'" in out
    assert re.search(r"trained multitask for 2 epochs: final training loss \d\.\d{4}", out)
    model = zoo.load_preset(str(out_dir))
    assert model.output_names == ["label", "parity"]

    code, out, _ = run(
        capsys,
        "evaluate",
        out_dir,
        "--data",
        table,
        "--batch-size",
        "20",
        "--out",
        tmp_path / "cm.png",
    )
    assert code == 0 and "task 'label':" in out and "task 'parity':" in out
    assert os.path.exists(tmp_path / "cm-label.png") and os.path.exists(tmp_path / "cm-parity.png")

    code, out, _ = run(
        capsys,
        "predict",
        out_dir,
        "--data",
        table,
        "--batch-size",
        "20",
        "--out",
        tmp_path / "p.csv",
    )
    rows = list(csv.DictReader(open(tmp_path / "p.csv", newline="")))
    predicted = predictions(model, x.reshape(len(x), 64))
    assert [r["parity.true"] for r in rows] == parity
    probabilities = [[float(r[f"parity.p[{n}]"]) for n in ("even", "odd")] for r in rows]
    np.testing.assert_allclose(probabilities, predicted["parity"], atol=1e-6)
    assert [r["label.predicted"] for r in rows] == [
        ["one", "two", "zero"][i] for i in predicted["label"].argmax(-1)
    ]

    assert one_line_error(
        capsys,
        "evaluate",
        out_dir,
        "--data",
        table,
        "--label-column",
        "label",
        "--out",
        tmp_path / "cm.png",
    ) == (
        f"model 'multitask' ({out_dir}) does not fit {table}: the model's tasks are ['label', "
        f"'parity']; the data's labels are ['label'] (missing: ['parity'], unknown: []); name the "
        f"label columns with --label-column"
    )


def test_npz_named_inputs_and_streamed_npy(files, capsys, tmp_path):
    x, y = digits_subset(per_class=20)
    flat = x.reshape(len(x), 64)
    flags = np.stack([y % 2, y >= 1], axis=-1).astype("float32")
    arrays = tmp_path / "pair.npz"
    np.savez(arrays, x_input_1=flat[:, :32], x_input_2=flat[:, 32:], y=flags)
    out_dir = tmp_path / "fusion"
    code, out, _ = run(
        capsys,
        "train",
        "fusion",
        "--data",
        arrays,
        "--epochs",
        "2",
        "--out",
        out_dir,
        "--validation-split",
        "0",
        "--batch-size",
        "20",
    )
    assert code == 0 and "inputs input_1 (32,), input_2 (32,)" in out
    model = zoo.load_preset(str(out_dir))
    expected = predictions(model, {"input_1": flat[:, :32], "input_2": flat[:, 32:]})
    code, out, _ = run(
        capsys,
        "predict",
        out_dir,
        "--data",
        arrays,
        "--batch-size",
        "20",
        "--out",
        tmp_path / "p.csv",
    )
    rows = list(csv.DictReader(open(tmp_path / "p.csv", newline="")))
    np.testing.assert_allclose(
        [[float(r["p[0]"]), float(r["p[1]"])] for r in rows], expected, atol=1e-6
    )

    # the cnn trained on the image folder predicts a memory-mapped .npy, batch by batch
    np.save(tmp_path / "new.npy", x[:10])
    code, out, _ = run(
        capsys,
        "predict",
        files["model"],
        "--data",
        tmp_path / "new.npy",
        "--batch-size",
        "5",
        "--out",
        tmp_path / "new.csv",
    )
    assert code == 0 and "unlabelled from" in out and "read from disk batch by batch" in out
    rows = list(csv.DictReader(open(tmp_path / "new.csv", newline="")))
    expected = predictions(zoo.load_preset(files["model"]), x[:10])
    names = ["one", "two", "zero"]
    np.testing.assert_allclose(
        [[float(r[f"p[{n}]"]) for n in names] for r in rows], expected, atol=1e-6
    )
    assert "true" not in rows[0] and rows[0]["id"] == "row 0"


# ------------------------------------------------------------------------- demo
@pytest.mark.once  # three real-size models: once, in the TensorFlow pass (the pieces it uses
# -- DataView, fit, save/reload, quantize, explain -- are tested on every backend)
def test_demo_runs_on_the_data_views(tmp_path):
    stream = io.StringIO()
    results = demo.run_demo(str(tmp_path / "demo"), quick=True, max_train=64, stream=stream)
    assert set(results["models"]) == set(demo.DEMO_PRESETS)
    assert set(results["models"]["multitask"]["accuracy"]) == {"digit", "parity"}
    for r in results["models"].values():
        assert r["reload_max_difference"] <= 1e-6
    assert results["int8"]["bytes"] < 0.3 * results["models"]["cnn"]["bytes"]
    files = set(os.listdir(tmp_path / "demo"))
    assert {
        "cnn.keras",
        "cnn-int8.keras",
        "attention_rnn.keras",
        "multitask.keras",
        "cnn-gradcam.png",
        "attention_rnn-attention.png",
        "results.json",
    } <= files
    text = stream.getvalue()
    assert "test accuracy (450 digits)" in text and "CNN float32 vs int8" in text
    assert "(trained on only 64 digits)" in text
    saved = json.load(open(tmp_path / "demo" / "results.json"))
    assert saved["models"]["cnn"]["accuracy"] == results["models"]["cnn"]["accuracy"]
