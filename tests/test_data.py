"""keras_bigmodel.data: image folders, .npz/.npy arrays, CSV files and the digits, read
into a Dataset that Keras streams on every backend; each bad-data message by type and
text. The helpers at the top write real digits as files (tests/test_cli*.py use them)."""

import os

import keras
import numpy as np
import pytest
from data_files import digits_csv, digits_subset, to_uint8, write_csv, write_image_folder
from PIL import Image

from keras_bigmodel import data
from keras_bigmodel.data import ClassMismatchError, DataError, load


# ------------------------------------------------------------------------- images
def test_image_folder_in_memory_and_streamed(tmp_path):
    images, labels = digits_subset(per_class=6)
    names = ["zero", "one", "two"]
    root = write_image_folder(tmp_path / "imgs", images, labels, names)
    (tmp_path / "imgs" / "notes.txt").write_text("ignored")
    ds = load(root)
    assert ds.format == "images" and ds.in_memory and len(ds) == 18
    assert ds.class_names == {"label": ["one", "two", "zero"]}  # sorted folder names
    assert ds.input_shapes() == {"x": (8, 8, 1)} and ds.info["color_mode"] == "grayscale"
    expected = to_uint8(images) / 255.0
    order = [names.index(p.split(os.sep)[0]) for p in ds.ids]
    np.testing.assert_array_equal(
        ds.sparse_labels()["label"], [["one", "two", "zero"].index(names[o]) for o in order]
    )
    by_id = {f"{names[c]}{os.sep}{i:04d}.png": i for i, c in enumerate(labels)}
    np.testing.assert_allclose(
        ds.features()[..., 0], expected[[by_id[i] for i in ds.ids]], atol=1e-7
    )
    assert ds.summary() == f"18 images (8x8 grayscale) in 3 classes from {root}"

    streamed = load(root, memory_limit=0)
    assert not streamed.in_memory and "read from disk batch by batch" in streamed.summary()
    batches = streamed.batches(5, shuffle=True, seed=1)
    assert isinstance(batches, keras.utils.PyDataset) and len(batches) == 4
    seen = np.concatenate([batches.indices(i) for i in range(len(batches))])
    assert sorted(seen) == list(range(18))
    x, y = batches[0]
    np.testing.assert_allclose(x, ds.features()[batches.indices(0)])
    np.testing.assert_array_equal(y, ds.labels["label"][batches.indices(0)])

    train, validation = ds.split(1 / 3, seed=0)
    assert len(train) == 12 and len(validation) == 6
    assert validation.class_counts("label") == {"one": 2, "two": 2, "zero": 2}
    assert not set(train.ids) & set(validation.ids)

    flat = tmp_path / "flat"
    flat.mkdir()
    for p in sorted((tmp_path / "imgs" / "one").iterdir())[:3]:
        (flat / p.name).write_bytes(p.read_bytes())
    unlabelled = load(str(flat))
    assert not unlabelled.labelled and len(unlabelled) == 3 and "unlabelled" in unlabelled.summary()
    with pytest.raises(DataError, match="holds no labels; put the images in one sub-folder"):
        load(str(flat), require_labels=True)


def test_image_folder_resizing_colour_and_bad_images(tmp_path):
    images, labels = digits_subset(per_class=3)
    root = write_image_folder(tmp_path / "big", images, labels, scale=2, mode="RGB")
    ds = load(root)
    assert ds.input_shapes() == {"x": (16, 16, 3)} and ds.info["color_mode"] == "rgb"
    small = load(root, image_size=(8, 8), color_mode="grayscale")
    assert small.input_shapes() == {"x": (8, 8, 1)} and small.info["resized"]

    # an image of another size: refused with both sizes and the way out
    Image.new("L", (9, 7)).save(os.path.join(root, "0", "odd.png"))
    with pytest.raises(
        DataError,
        match=r"images differ in size: .* is 16x16, .*odd.png is 7x9; "
        r"resize them all with --image-size",
    ):
        load(root)
    os.remove(os.path.join(root, "0", "odd.png"))

    # a corrupt image: refused by default, skipped and counted on request
    bad = os.path.join(root, "1", "broken.png")
    with open(bad, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n this is not an image")
    with pytest.raises(
        DataError,
        match=r"cannot read image .*broken.png \(UnidentifiedImageError"
        r".*\); fix or remove it, or skip .*--bad-images skip",
    ):
        load(root)
    skipped = load(root, bad_images="skip")
    assert len(skipped) == 9 and [p for p, _ in skipped.skipped] == [bad]
    assert "skipped 1 unreadable" in skipped.summary()

    # a truncated PNG passes the header check and fails when decoded
    whole = open(os.path.join(root, "2", os.listdir(os.path.join(root, "2"))[0]), "rb").read()
    with open(bad, "wb") as f:
        f.write(whole[: len(whole) // 2])
    with pytest.raises(DataError, match=r"cannot read image .*broken\.png"):
        load(root)
    assert len(load(root, bad_images="skip", memory_limit=0).skipped) == 1

    os.makedirs(os.path.join(root, "3"))
    with pytest.raises(
        DataError,
        match=r"class folder .*3 holds no images \(.bmp, .gif, .jpeg, "
        r".jpg, .png\); add images to it or remove it",
    ):
        load(root)


# ---------------------------------------------------------------------- npz / npy
def test_npz_inputs_and_tasks_by_name(tmp_path):
    images, labels = digits_subset(per_class=4)
    path = tmp_path / "multi.npz"
    np.savez(
        path,
        x_image=images,
        x_sequence=images[..., 0],
        y_task1=np.eye(3)[labels],
        y_task2=labels % 2,
        class_names_task2=np.array(["even", "odd"]),
    )
    ds = load(str(path))
    assert ds.input_shapes() == {"image": (8, 8, 1), "sequence": (8, 8)}
    assert ds.class_names == {"task1": ["0", "1", "2"], "task2": ["even", "odd"]}
    assert ds.labels["task1"].shape == (12, 3) and ds.names_from["task1"] == "indices"
    features = ds.take([0, 5])
    assert set(features) == {"image", "sequence"}
    np.testing.assert_array_equal(features["sequence"], images[[0, 5], ..., 0])
    np.testing.assert_array_equal(ds.sparse_labels()["task1"], labels)

    def refused(match, **arrays):
        np.savez(tmp_path / "bad.npz", **arrays)
        with pytest.raises(DataError, match=match):
            load(str(tmp_path / "bad.npz"))

    refused(r"mismatched lengths: x has 12, y has 11 rows", x=images, y=labels[:11])
    nan = images.copy()
    nan[3, 2, 2, 0] = np.nan
    refused(r"NaN in features: 'x' row 3; fill or drop them first", x=nan, y=labels)
    refused(r"holds arrays \['z'\] that are neither features", x=images, y=labels, z=labels)
    refused(r"holds no features: name them 'x'", y=labels)
    refused(r"'y' holds fractional values", x=images, y=labels + 0.5)
    refused(r"'y' holds a negative class index \(-1\)", x=images, y=labels - 1)
    refused(r"rows are neither one-hot", x=images, y=np.full((12, 3), 0.5))
    np.savez(tmp_path / "objects.npz", x=np.array([{"a": 1}] * 3, dtype=object))
    with pytest.raises(DataError, match="holds Python objects, which need pickle"):
        load(str(tmp_path / "objects.npz"))
    # class names of a trained model: labels beyond them are refused
    np.savez(tmp_path / "ok.npz", x=images, y=labels)
    with pytest.raises(ClassMismatchError, match=r"'y' has 3 classes; the model knows 2: a, b"):
        load(str(tmp_path / "ok.npz"), class_names=["a", "b"])


def test_npy_is_memory_mapped_and_streamed_to_keras(tmp_path):
    images, labels = digits_subset(per_class=10)
    flat = images.reshape(len(images), 64)
    np.save(tmp_path / "x.npy", flat)
    ds = load(str(tmp_path / "x.npy"))
    assert ds.format == "npy" and not ds.in_memory and not ds.labelled
    assert isinstance(ds._features.arrays["x"], np.memmap)
    np.testing.assert_array_equal(ds.take([7, 2]), flat[[7, 2]])

    # A streamed fit and predict through the PyDataset on this backend (batches of 10
    # divide the 30 examples: one traced shape).
    train = data.Dataset.from_arrays(ds.features(), labels)
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(3, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy")
    before = keras.ops.convert_to_numpy(
        keras.losses.sparse_categorical_crossentropy(labels, model(flat))
    ).mean()
    model.fit(train.batches(10, shuffle=True), epochs=4, verbose=0)
    after = keras.ops.convert_to_numpy(
        keras.losses.sparse_categorical_crossentropy(labels, model(flat))
    ).mean()
    assert after < before
    streamed = model.predict(ds.batches(10), verbose=0)
    np.testing.assert_allclose(streamed, keras.ops.convert_to_numpy(model(flat)), atol=1e-6)

    np.save(tmp_path / "flat.npy", np.arange(5.0))
    with pytest.raises(
        DataError,
        match=r"one row per example \(shape \(n, \.\.\.\)\); the array "
        r"has shape \(5,\)",
    ):
        load(str(tmp_path / "flat.npy"))
    with pytest.raises(DataError, match=r"a \.npy holds features only"):
        load(str(tmp_path / "x.npy"), require_labels=True)


# --------------------------------------------------------------------------- csv
def test_csv_columns_labels_and_class_names(tmp_path):
    images, labels = digits_subset(per_class=5)
    names = ["cat", "dog", "emu"]
    path = digits_csv(
        tmp_path / "d.csv",
        images,
        labels,
        names,
        extra={"size": [str(10 + (i % 2) * 90) for i in range(15)]},
    )
    ds = load(path, label_columns=["label", "size"])
    assert ds.class_names == {"label": ["cat", "dog", "emu"], "size": ["10", "100"]}  # numeric
    assert ds.info["feature_columns"] == [f"p{i}" for i in range(64)]
    np.testing.assert_allclose(ds.features(), images.reshape(15, 64), atol=1e-6)
    np.testing.assert_array_equal(ds.labels["label"], labels)
    assert ds.ids[:2] == ["line 2", "line 3"]
    assert load(path).class_names == {"label": names}  # 'label' by default

    # a trained model's feature order and class names are followed
    reordered = load(
        path,
        feature_columns=[f"p{i}" for i in reversed(range(64))],
        label_columns=["label"],
        class_names={"label": ["emu", "dog", "cat"]},
    )
    np.testing.assert_allclose(reordered.features(), images.reshape(15, 64)[:, ::-1], atol=1e-6)
    np.testing.assert_array_equal(reordered.labels["label"], 2 - labels)
    with pytest.raises(
        ClassMismatchError,
        match=r"label in column 'label': 'emu' \(line \d+\) is "
        r"not one of the model's classes: cat, dog",
    ):
        load(path, class_names=["cat", "dog"])

    with pytest.raises(
        DataError,
        match=r"unknown label column 'species'; the columns are: p0, p1, "
        r".*\(\d+ more\).*, p63, label, size",
    ):
        load(path, label_columns=["species"])
    pixels = [f"p{i}" for i in range(64)]
    assert not load(
        path, label_columns=["species"], feature_columns=pixels, missing_labels="unlabelled"
    ).labelled

    header = ["a", "b", "label"]
    bad = [
        (
            [["1", "2", "x"], ["", "3", "y"]],
            r"missing value in features: column 'a', line 3 of .*bad.csv \(1 rows have one\); "
            r"impute them with --missing impute .* or drop the rows with --missing drop",
        ),
        ([["1", "nan", "x"], ["2", "3", "y"]], r"missing value in features: column 'b', line 2"),
    ]
    for rows, match in bad:
        with pytest.raises(DataError, match=match):
            load(write_csv(tmp_path / "bad.csv", rows, header), missing="error")
    bad = [
        ([["1", "2", "x"], ["2", "3"]], r"line 3 has 2 fields; the header has 3"),
        (
            [["1", "2", ""], ["2", "3", "y"]],
            r"missing label: column 'label', line 2 of .*; drop such rows with --missing drop",
        ),
    ]
    for rows, match in bad:
        with pytest.raises(DataError, match=match):
            load(write_csv(tmp_path / "bad.csv", rows, header))
    # a string column is categorical, a missing number NaN (imputed inside the model)
    mixed = load(write_csv(tmp_path / "mixed.csv", [["1", "red", "x"], ["", "blue", "y"]], header))
    assert mixed.info["schema"] == [
        {"name": "a", "kind": "numeric"},
        {"name": "b", "kind": "categorical", "vocabulary": ["blue", "red"]},
    ]
    np.testing.assert_array_equal(mixed.features(), [[1, 2], [np.nan, 1]])
    assert mixed.info["missing_values"] == {"a": 1}
    dropped = load(tmp_path / "mixed.csv", missing="drop")
    assert len(dropped) == 1 and dropped.ids == ["line 2"] and dropped.info["dropped_rows"] == 1
    no_label = write_csv(tmp_path / "nolabel.csv", [["1", "2"]], ["a", "b"])
    with pytest.raises(
        DataError,
        match=r"holds no labels; name the label column with "
        r"--label-column .* no 'label' column among: a, b",
    ):
        load(no_label, require_labels=True)


def test_digits_and_arrays(tmp_path):
    test = load("digits", subset="test")
    assert len(test) == 450 and test.class_names == {"label": [str(i) for i in range(10)]}
    assert len(load("digits", subset="train")) == 1347 and len(load("digits")) == 1797
    with pytest.raises(FileNotFoundError, match=r"No such file or folder: nowhere\.csv"):
        load("nowhere.csv")
    (tmp_path / "x.parquet").write_text("")
    with pytest.raises(DataError, match=r"unknown kind of data file '\.parquet'"):
        load(str(tmp_path / "x.parquet"))
    with pytest.raises(
        DataError, match="mismatched lengths: features 'x' has 3, labels 'label' has 2 rows"
    ):
        data.Dataset.from_arrays(np.zeros((3, 2)), np.array([0, 1]))
    with pytest.raises(ValueError, match="`bad_images` must be one of"):
        load("digits", bad_images="ignore")


# ------------------------------------------------------------------ the package
@pytest.mark.backend_independent
def test_options_readers_and_a_real_folder_called_digits(tmp_path, monkeypatch):
    options = data.LoadOptions(label_columns="species", drop_columns=["year"], missing="drop")
    assert options.label_columns == ("species",) and options.drop_columns == ("year",)
    with pytest.raises(ValueError, match=r"`missing` must be one of \['impute', 'drop', 'error'\]"):
        data.LoadOptions(missing="fill")
    with pytest.raises(ValueError, match=r"`memory_limit` must be an integer >= 0"):
        data.LoadOptions(memory_limit=-1)
    with pytest.raises(TypeError, match="Give `options` or keyword fields, not both"):
        load("digits", options, subset="test")
    assert {r.format for r in data.READERS} == set(data.FORMATS)
    assert data.reader_for("digits").format == "digits"
    # a real folder named digits is a folder of images, not the bundled digits
    images, labels = digits_subset(per_class=2)
    monkeypatch.chdir(tmp_path)
    write_image_folder(tmp_path / "digits", images, labels, ["a", "b", "c"])
    ds = load("digits")
    assert ds.format == "images" and ds.kind == "image" and len(ds) == 6
    assert data.kind_of_path("digits") == "image"
