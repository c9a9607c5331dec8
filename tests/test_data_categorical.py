"""Integer-coded categorical columns and the embedding option of `TabularEncoding`:
the lookup inside the model against Keras's own `IntegerLookup`, the one-hot and
embedding outputs against numpy, a few training steps, save and reload through the
hardened loader on every backend, ONNX on TensorFlow and PyTorch; the CSV reader's
`categorical_columns`; every bad argument by type and message."""

import os

import keras
import numpy as np
import pytest
from data_files import write_csv

import keras_bigmodel as kbm
import zoo
from keras_bigmodel import data
from keras_bigmodel.data import DataError, tabular

COLUMNS = [
    {"name": "mass", "kind": "numeric", "mean": 4000.0, "variance": 250000.0, "indicator": True},
    {"name": "grade", "kind": "integer_categorical", "vocabulary": [1, 3, 5, 40]},
    {"name": "island", "kind": "categorical", "vocabulary": ["Biscoe", "Dream"]},
]
ROWS = {  # a missing mass; grade 4 unknown, 40 known, one missing; an unknown island
    "mass": [3500, None, 4500, 5000, 4000],
    "grade": [3, 4, None, 40, 1],
    "island": ["Dream", "Biscoe", "Mars", None, "Biscoe"],
}


def _integer_lookup_indices(codes, vocabulary):
    """Keras's IntegerLookup (run eagerly: its TensorFlow ops) as the reference; a
    missing code (NaN) is out of vocabulary, index 0."""
    lookup = keras.layers.IntegerLookup(vocabulary=vocabulary, num_oov_indices=1)
    codes = np.where(np.isnan(codes), -(10**6), codes).astype("int64")
    return np.asarray(keras.ops.convert_to_numpy(lookup(codes)))


def test_integer_lookup_one_hot_and_embedding_train_and_reload(tmp_path):
    x = tabular.encode_rows(COLUMNS, ROWS)
    assert np.isnan(x[2, 1]) and x[1, 1] == 4  # integer codes travel raw; the model looks up
    grade = _integer_lookup_indices(x[:, 1], COLUMNS[1]["vocabulary"])
    np.testing.assert_array_equal(grade, [2, 0, 0, 4, 1])
    island = np.array([2, 1, 0, 0, 1])
    mass = np.array([3500, 4000, 4500, 5000, 4000]) - 4000.0
    numeric = np.stack([mass / 500.0, [0, 1, 0, 0, 0]], 1)
    y = np.array([0, 1, 2, 1, 0])
    for encoding in ("onehot", "embedding"):
        model = zoo.build(
            "tabular", columns=COLUMNS, hidden_units=(8,), num_classes=3, labels="sparse",
            categorical_encoding=encoding,
        )  # fmt: skip
        layer = model.get_layer("encoding")
        encoded = keras.ops.convert_to_numpy(layer(x))
        if encoding == "onehot":
            expected = np.concatenate([numeric, np.eye(5)[grade], np.eye(3)[island]], 1)
            assert layer.output_width == 10
        else:
            tables = [keras.ops.convert_to_numpy(e.embeddings) for e in layer.encoders]
            assert [t.shape for t in tables] == [(5, 4), (3, 3)]  # round(1.6 * k**0.56)
            expected = np.concatenate([numeric, tables[0][grade], tables[1][island]], 1)
        np.testing.assert_allclose(encoded, expected, atol=1e-6, err_msg=encoding)

        before = [keras.ops.convert_to_numpy(w).copy() for w in layer.weights]
        losses = [float(np.ravel(model.train_on_batch(x, y))[0]) for _ in range(4)]
        assert np.isfinite(losses).all() and losses[-1] < losses[0], losses
        after = [keras.ops.convert_to_numpy(w) for w in layer.weights]
        if encoding == "embedding":  # the embeddings train; one-hot has nothing to train
            assert any(not np.allclose(a, b) for a, b in zip(after, before))
        path = kbm.save_model(model, os.path.join(tmp_path, f"{encoding}.keras"))
        restored = kbm.load_model(path)  # the hardened loader: vocabularies inline
        restored_layer = restored.get_layer("encoding")
        assert restored_layer.categorical_encoding == encoding
        assert restored_layer.columns[1]["vocabulary"] == [1, 3, 5, 40]
        np.testing.assert_allclose(
            restored.predict(tabular.encode_rows(restored, ROWS), verbose=0),
            model.predict(x, verbose=0),
            atol=1e-6,
        )
    # The lookups and the embeddings export to ONNX and run there on raw rows (NaN
    # included); JAX's converter, the slowest, was checked by hand (same result).
    if keras.backend.backend() != "jax":
        onnx = kbm.compress.export_onnx(model, os.path.join(tmp_path, "embedding.onnx"))
        np.testing.assert_allclose(
            np.asarray(kbm.compress.run_onnx(onnx, x)[0]), model.predict(x, verbose=0), atol=1e-5
        )


def test_integer_lookup_inside_a_plain_keras_model_cannot_train_on_jax():
    # The plain-Keras control behind the comparisons: IntegerLookup runs TensorFlow ops,
    # which a JAX train step cannot trace (TensorFlow and PyTorch, which run it eagerly,
    # train). TabularEncoding's comparisons train on every backend (the test above).
    inputs = keras.Input((1,), dtype="int32")
    hot = keras.layers.IntegerLookup(vocabulary=[3, 7], output_mode="one_hot")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(hot))
    model.compile("adam", "sparse_categorical_crossentropy")
    x = np.array([[3], [7], [5]], "int32")
    assert model.predict(x, verbose=0).shape == (3, 2)
    if keras.backend.backend() == "jax":
        with pytest.raises(RuntimeError, match="Unable to automatically build the model"):
            model.train_on_batch(x, np.array([0, 1, 0]))
    else:
        assert np.isfinite(model.train_on_batch(x, np.array([0, 1, 0])))


@pytest.mark.backend_independent
def test_bad_encoding_arguments_name_the_argument_value_and_choices():
    with pytest.raises(
        ValueError,
        match=r"`categorical_encoding` must be one of \['onehot', 'embedding'\]\. "
        r"Received: categorical_encoding='embed'",
    ):
        tabular.TabularEncoding(COLUMNS, categorical_encoding="embed")
    for bad in (0, 2000, 2.5, True):
        with pytest.raises(ValueError, match=rf"`embedding_dim` must be None or an integer in "
                           rf"\[1, 1024\]\. Received: embedding_dim={bad!r}"):  # fmt: skip
            tabular.TabularEncoding(COLUMNS, categorical_encoding="embedding", embedding_dim=bad)
    for vocabulary in ([1.5, 2], [True, 2], [1, 1], [2**25], "codes.txt", ["1", "2"]):
        columns = [{"name": "g", "kind": "integer_categorical", "vocabulary": vocabulary}]
        with pytest.raises(
            ValueError,
            match=r"`columns\[0\]\['vocabulary'\]` \(g\) of an integer_categorical column must "
            r"be an inline list of distinct integers within \+-16,777,216 .*Received: ",
        ):
            tabular.TabularEncoding(columns)
    kinds = r"\['numeric', 'categorical', 'integer_categorical'\]"
    with pytest.raises(ValueError, match=rf"`columns\[0\]\['kind'\]` must be one of {kinds}\. "
                       r"Received: 'ordinal'"):  # fmt: skip
        tabular.TabularEncoding([{"name": "g", "kind": "ordinal"}])
    with pytest.raises(ValueError, match="Received: categorical_encoding='dense'"):
        zoo.build("tabular", columns=COLUMNS, categorical_encoding="dense")
    layer = tabular.TabularEncoding(COLUMNS, categorical_encoding="embedding", embedding_dim=6)
    assert layer.output_width == 2 + 6 + 6
    config = layer.get_config()
    assert (config["categorical_encoding"], config["embedding_dim"]) == ("embedding", 6)
    assert tabular.TabularEncoding.from_config(config).output_width == 14
    with pytest.raises(DataError, match=r"column 'grade' is integer-coded categorical \(integers "
                       r"within \+-16,777,216\) but holds '2.5' \(row 1\)"):  # fmt: skip
        tabular.encode_rows(COLUMNS, {"mass": [1, 2], "grade": [1, 2.5], "island": ["a", "b"]})
    with pytest.raises(DataError, match=r"column 'grade' is integer-coded .* holds 'A' \(row 0\)"):
        tabular.encode_rows(COLUMNS, {"mass": [1], "grade": ["A"], "island": ["a"]})


@pytest.mark.backend_independent
def test_csv_categorical_columns(tmp_path):
    header = ["grade", "height", "town", "zip", "label"]
    rows = [
        [str(1 + i % 3), f"{150.5 + i:.1f}", ["A", "B"][i % 2], "" if i == 4 else str(7000 + i % 2),
         ["x", "y"][i % 2]]
        for i in range(8)
    ]  # fmt: skip
    path = write_csv(tmp_path / "t.csv", rows, header)
    plain = data.load(path)
    assert [c["kind"] for c in plain.info["schema"]] == ["numeric", "numeric", "categorical",
                                                        "numeric"]  # fmt: skip
    ds = data.load(path, categorical_columns=["grade", "zip", "town"])
    assert ds.info["schema"] == [
        {"name": "grade", "kind": "integer_categorical", "vocabulary": [1, 2, 3]},
        {"name": "height", "kind": "numeric"},
        {"name": "town", "kind": "categorical", "vocabulary": ["A", "B"]},
        {"name": "zip", "kind": "integer_categorical", "vocabulary": [7000, 7001]},
    ]
    features = ds.features()
    np.testing.assert_array_equal(features[:4, 0], [1, 2, 3, 1])  # raw codes
    assert np.isnan(features[4, 3]) and ds.info["missing_values"] == {"zip": 1}
    columns = tabular.fit_columns(ds.info["schema"], features)
    assert columns[0] == {"name": "grade", "kind": "integer_categorical", "vocabulary": [1, 2, 3]}

    # new rows read with the trained schema: an unknown code is counted, not refused
    new = write_csv(tmp_path / "new.csv", [["9", "151", "A", "7000", "x"]], header)
    again = data.load(new, schema=ds.info["schema"], class_names=ds.class_names)
    assert again.info["unknown_categories"] == {"grade": 1}
    with pytest.raises(DataError, match=r"categorical column 'height' is numeric in the model's "
                       r"schema"):  # fmt: skip
        data.load(new, schema=ds.info["schema"], categorical_columns=["height"])
    # bad declarations, each named
    with pytest.raises(DataError, match=r"t.csv: categorical column 'height' holds '150.5' \(line "
                       r"2\); a numeric categorical column must hold integer codes"):  # fmt: skip
        data.load(path, categorical_columns=["grade", "height"])
    with pytest.raises(DataError, match=r"unknown categorical column 'grad' \(did you mean "
                       r"'grade'\?\)"):  # fmt: skip
        data.load(path, categorical_columns="grad")
    with pytest.raises(DataError, match=r"categorical column 'label' is not a feature column"):
        data.load(path, categorical_columns=["label"])
    with pytest.raises(TypeError, match=r"`categorical_columns` must be a list of column names. "
                       r"Received: categorical_columns=3"):  # fmt: skip
        data.LoadOptions(categorical_columns=3)
    # the data description keeps integer vocabularies, and refuses strings in their place
    record = {"format": "csv", "schema": ds.info["schema"], "class_names": ds.class_names}
    data.write_record(str(tmp_path), record)
    assert data.read_record(str(tmp_path))["schema"][0]["vocabulary"] == [1, 2, 3]
    bad = {**record, "schema": [{"name": "g", "kind": "integer_categorical", "vocabulary": ["1"]}]}
    data.write_record(str(tmp_path), bad)
    with pytest.raises(ValueError, match="schema"):
        data.read_record(str(tmp_path))
