"""`kbm.explain.compare` and `keras-bigmodel explain MODEL --data PATH --evaluate`: the
methods that apply to a model ranked by the metrics, a table and a PNG of the curves, on
an image folder and on a CSV."""

import numpy as np
import pytest
from data_files import digits_csv, digits_subset, write_image_folder
from explain_helpers import ZEROS, numpy_init
from PIL import Image

import keras_bigmodel as kbm
import keras_bigmodel_cli as cli

E = kbm.explain
NAMES = ["zero", "one", "two"]


def _run(capsys, *args):
    code = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def _image_model():
    import keras

    image = keras.Input((8, 8, 1), name="image")
    conv = keras.layers.Conv2D(2, 3, padding="same", activation="relu", name="conv", **ZEROS)
    pooled = keras.layers.GlobalAveragePooling2D()(conv(image))
    out = keras.layers.Dense(3, activation="softmax", name="predictions", **ZEROS)(pooled)
    return numpy_init(keras.Model(image, out, name="cnn"))


def _table_model():
    import keras

    features = keras.Input((64,), name="features")
    out = keras.layers.Dense(3, activation="softmax", name="predictions", **ZEROS)(features)
    return numpy_init(keras.Model(features, out, name="table"))


@pytest.mark.once  # the command's plumbing, once; compare and the metrics run on every backend
def test_evaluate_ranks_methods_on_an_image_folder_and_a_csv(capsys, tmp_path):
    x, y = digits_subset(per_class=2)
    folder = write_image_folder(tmp_path / "images", x, y, NAMES)
    table = digits_csv(tmp_path / "digits.csv", x, y, NAMES)
    for model, data, methods in (
        (_image_model(), folder, ["Grad-CAM", "LayerCAM", "Occlusion", "Random (floor)"]),
        (_table_model(), table, ["Integrated gradients", "Occlusion", "Random (floor)"]),
    ):
        path = tmp_path / f"{model.name}.keras"
        kbm.save_model(model, path)
        picture = tmp_path / f"{model.name}-ranking.png"
        code, out, err = _run(
            capsys,
            "explain",
            path,
            "--data",
            data,
            "--out",
            picture,
            "--samples",
            "2",
            "--evaluate",
        )
        assert code == 0 and err == "", err
        lines = out.splitlines()
        header = next(i for i, line in enumerate(lines) if line.startswith("| method |"))
        assert "deletion AUC ↓" in lines[header] and "max-sensitivity ↓" in lines[header]
        rows = [line.split(" | ")[0].lstrip("| ") for line in lines[header + 2 :]]
        rows = rows[: next(i for i, r in enumerate(rows) if r.startswith("best by"))]
        assert set(methods) <= set(rows)
        ranks = [float(line.split(" | ")[1]) for line in lines[header + 2 : header + 2 + len(rows)]]
        assert ranks == sorted(ranks)  # best first
        assert f"on 2 examples (input '{model.inputs[0].name}')" in out
        with Image.open(picture) as png:
            assert png.format == "PNG" and min(png.size) >= 500


def test_compare_returns_sorted_rows_curves_and_refuses_bad_arguments():
    model = _image_model()
    x = np.random.default_rng(0).uniform(size=(2, 8, 8, 1)).astype("float32")
    result = E.compare(
        model, x, methods=["gradcam", "random"], metrics=["deletion", "insertion"], steps=4
    )
    predicted = np.asarray(model.predict(x, verbose=0)).argmax(-1).tolist()
    assert result["class_index"] == predicted  # the predicted class by default
    rows = result["rows"]
    assert [r["rank"] for r in rows] == sorted(r["rank"] for r in rows)
    for row in rows:
        curves = result["curves"][row["method"]]
        assert curves["deletion"]["scores"].shape == (2, 5)
        assert row["deletion"] == pytest.approx(float(curves["deletion"]["auc"].mean()))
        assert row["insertion_std"] == pytest.approx(float(curves["insertion"]["auc"].std()))
    # the mean rank: each metric's rank (deletion: lower is better, insertion: higher)
    d = {r["method"]: r for r in rows}
    by_deletion = 1.0 if d["gradcam"]["deletion"] < d["random"]["deletion"] else 2.0
    by_insertion = 1.0 if d["gradcam"]["insertion"] > d["random"]["insertion"] else 2.0
    assert d["gradcam"]["rank"] == (by_deletion + by_insertion) / 2
    cases = [
        (dict(methods=["attention"]), r"`methods` must be methods model 'cnn' can use, from \["),
        (dict(methods="saliency"), r"`methods` must be a list of method names"),
        (dict(metrics=["accuracy"]), r"`metrics` must be a list from \['deletion'"),
        (dict(path="curves.jpg"), r"`path` must end in '.png'. Received: path='curves.jpg'"),
        (dict(steps=0), r"`steps` must be a positive integer. Received: steps=0"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ValueError, match=message):
            E.compare(model, x, **kwargs)
