"""The `tabular` preset: raw table rows preprocessed inside the model (standardized,
imputed with an indicator, one-hot), against NumPy; its regression head; vocabularies
that travel inline through the hardened loader; and the plain-Keras control that shows
why strings are mapped to indices outside the model."""

import os

import keras
import numpy as np
import pytest

import keras_bigmodel as kbm
import zoo
from keras_bigmodel.data import DataError, tabular
from keras_bigmodel.data.tabular import TabularEncoding, encode_rows, fit_columns

COLUMNS = [
    {"name": "mass", "kind": "numeric", "mean": 4000.0, "variance": 250000.0, "indicator": True},
    {"name": "depth", "kind": "numeric", "mean": 17.0, "variance": 4.0},
    {"name": "island", "kind": "categorical", "vocabulary": ["Biscoe", "Dream", "Torgersen"]},
]
ROWS = {
    "mass": [4500, None, "NA", 3000.0],
    "depth": [19.0, 17.0, 15.0, float("nan")],
    "island": ["Dream", "Mars", None, "Torgersen"],
}


def reference(rows):
    """The encoding written out in NumPy."""
    mass = np.array([4500, np.nan, np.nan, 3000.0])
    depth = np.array([19.0, 17.0, 15.0, np.nan])
    std = [
        (np.where(np.isnan(mass), 4000.0, mass) - 4000.0) / 500.0,
        (np.where(np.isnan(depth), 17.0, depth) - 17.0) / 2.0,
    ]
    indicator = np.isnan(mass).astype("float32")
    island = np.eye(4)[[2, 0, 0, 3]]  # slot 0: missing or unknown
    return np.column_stack([*std, indicator, island]).astype("float32")


@pytest.mark.backend_independent
def test_encode_rows_maps_strings_and_missing_values():
    x = encode_rows(COLUMNS, ROWS)
    np.testing.assert_array_equal(
        x, [[4500, 19, 2], [np.nan, 17, 0], [np.nan, 15, 0], [3000, np.nan, 3]]
    )
    as_dicts = [dict(zip(ROWS, values)) for values in zip(*ROWS.values())]
    np.testing.assert_array_equal(encode_rows(COLUMNS, as_dicts), x)
    with pytest.raises(DataError, match=r"rows lack the column\(s\) \['island'\]"):
        encode_rows(COLUMNS, {"mass": [1], "depth": [2]})
    with pytest.raises(DataError, match=r"column 'mass' is numeric but holds 'heavy' \(row 0\)"):
        encode_rows(COLUMNS, {"mass": ["heavy"], "depth": [1], "island": ["Dream"]})
    with pytest.raises(ValueError, match=r"inline list of distinct strings .* not accepted"):
        TabularEncoding([{"name": "s", "kind": "categorical", "vocabulary": "/etc/passwd"}])
    with pytest.raises(ValueError, match=r"`columns\[0\]\['kind'\]` must be one of"):
        TabularEncoding([{"name": "s", "kind": "text"}])
    fitted = fit_columns(
        [{"name": "a", "kind": "numeric"}, {"name": "b", "kind": "numeric"}],
        np.array([[1.0, 5.0], [3.0, 5.0], [np.nan, 5.0]]),
    )
    assert fitted == [
        {"name": "a", "kind": "numeric", "mean": 2.0, "variance": 1.0, "indicator": True},
        {"name": "b", "kind": "numeric", "mean": 5.0, "variance": 1.0, "indicator": False},
    ]  # a constant column gets variance 1, a column with gaps an indicator


def test_encoding_layer_matches_numpy_and_reloads_from_a_file(tmp_path):
    layer = TabularEncoding(COLUMNS)
    x = encode_rows(COLUMNS, ROWS)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(x)), reference(ROWS), atol=1e-6)
    model = zoo.build("tabular", columns=COLUMNS, hidden_units=(4,), num_classes=2)
    expected = model.predict(x, verbose=0)
    assert np.isfinite(expected).all()  # missing values and unknown categories included
    path = kbm.save_model(model, os.path.join(tmp_path, "t.keras"))
    restored = kbm.load_model(path)  # the inline vocabularies pass the hardened loader
    np.testing.assert_allclose(
        restored.predict(encode_rows(restored, ROWS), verbose=0), expected, atol=1e-6
    )
    assert tabular.columns_of(restored) == [
        {**c, "indicator": c.get("indicator", False)} if c["kind"] == "numeric" else c
        for c in COLUMNS
    ]


def test_regression_head_trains_with_mse_and_reloads(tmp_path):
    keras.utils.set_random_seed(0)
    model = zoo.build(
        "tabular", columns=COLUMNS, hidden_units=(8,), regression=True, num_classes=1, loss="mse"
    )
    assert model.get_layer("output").activation is keras.activations.linear
    rng = np.random.default_rng(0)
    rows = {
        "mass": rng.normal(4000, 500, 64),
        "depth": rng.normal(17, 2, 64),
        "island": rng.choice(["Biscoe", "Dream"], 64),
    }
    x = encode_rows(COLUMNS, rows)
    y = ((rows["mass"] - 4000) / 500 + (rows["island"] == "Dream")).astype("float32")[:, None]

    def mse():
        return float(np.mean((keras.ops.convert_to_numpy(model(x)) - y) ** 2))

    before = mse()
    for _ in range(30):
        model.train_on_batch(x, y)
    after = mse()
    assert after < 0.5 * before, (before, after)
    restored = kbm.load_model(kbm.save_model(model, os.path.join(tmp_path, "r.keras")))
    np.testing.assert_allclose(
        restored.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5
    )


@pytest.mark.backend_independent
def test_stringlookup_cannot_take_strings_in_a_model_and_file_vocabularies_are_refused(tmp_path):
    # The plain-Keras control behind the design: a StringLookup inside a functional
    # model cannot be fed strings (Keras 3.15, every backend), so strings are mapped to
    # indices by encode_rows with the vocabulary the model stores.
    inputs = keras.Input((1,), dtype="string")
    lookup = keras.Model(inputs, keras.layers.StringLookup(vocabulary=["a", "b"])(inputs))
    for strings in (np.array([["a"], ["z"]]), np.array([["a"], ["z"]], dtype=object)):
        with pytest.raises(ValueError, match="Invalid dtype"):
            lookup.predict(strings, verbose=0)
    # A vocabulary given as a file path is refused by the hardened loader; inline passes.
    vocabulary = tmp_path / "vocab.txt"
    vocabulary.write_text("a\nb\n")
    ints = keras.Input((1,), dtype="int64")
    from_file = keras.Model(ints, keras.layers.IntegerLookup(vocabulary=[3, 7])(ints))
    path = kbm.save_model(from_file, os.path.join(tmp_path, "inline.keras"))
    kbm.load_model(path)  # inline: loads
    import json
    import zipfile

    with zipfile.ZipFile(path) as z:
        members = {n: z.read(n) for n in z.namelist()}
    config = json.loads(members["config.json"])
    for layer in config["config"]["layers"]:
        if layer["class_name"] == "IntegerLookup":
            layer["config"]["vocabulary"] = str(vocabulary)
    members["config.json"] = json.dumps(config).encode()
    bad = os.path.join(tmp_path, "file.keras")
    with zipfile.ZipFile(bad, "w") as z:
        for name, raw in members.items():
            z.writestr(name, raw)
    with pytest.raises(kbm.UnsafeModelError, match="reads its vocabulary from the file"):
        kbm.load_model(bad)
