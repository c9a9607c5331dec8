"""Explanations of a table model reach its categorical columns: seen from the raw rows a
category index is cast to an integer before its one-hot, so gradients give the column
nothing (the control below); `kbm.data.tabular.encoded_view` explains the model from
its encoding, and `explain(..., feature_groups=...)` sums each column's encoded
attributions into one bar, on every backend."""

import keras
import numpy as np
import pytest

import keras_bigmodel as kbm
import zoo
from keras_bigmodel.data import tabular

COLUMNS = [
    {"name": "mass", "kind": "numeric", "mean": 4000.0, "variance": 250000.0, "indicator": True},
    {"name": "island", "kind": "categorical", "vocabulary": ["Biscoe", "Dream", "Torgersen"]},
    {"name": "depth", "kind": "numeric", "mean": 17.0, "variance": 4.0},
]
# raw rows as the model takes them: numbers, and the island's category index (1..3)
ROWS = np.array([[4500.0, 2.0, 19.0], [3600.0, 3.0, 15.5], [4100.0, 1.0, 17.0]], "float32")


def _model():
    keras.utils.set_random_seed(3)
    return zoo.build("tabular", columns=COLUMNS, hidden_units=(6,), num_classes=3)


def _logits(model, encoded):
    """The output layer's logits (its softmax's input) of encoded rows, by hand."""
    hidden = keras.Model(model.get_layer("encoding").output, model.get_layer("hidden_0").output)
    out = model.get_layer("output")
    h = np.asarray(keras.ops.convert_to_numpy(hidden(encoded)), "float64")
    kernel = np.asarray(keras.ops.convert_to_numpy(out.kernel), "float64")
    return h @ kernel + np.asarray(keras.ops.convert_to_numpy(out.bias), "float64")


def test_categorical_columns_get_their_share_and_columns_add_up(tmp_path):
    model = _model()
    network, encode, groups = tabular.encoded_view(model)
    encoded = encode(ROWS)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(network(encoded)), keras.ops.convert_to_numpy(model(ROWS)),
        atol=1e-6,
    )  # fmt: skip
    assert groups == [[0, 2], [3, 4, 5, 6], [1]]  # mass + its indicator, island's slots, depth
    classes = [0, 1, 2]
    raw = kbm.explain.integrated_gradients(network, encoded, classes, steps=64)
    per_column = np.stack([raw[:, g].sum(axis=1) for g in groups], axis=1)
    # completeness: the columns' shares add up to the logit's change from the baseline
    logits, base = _logits(model, encoded), _logits(model, np.zeros_like(encoded))
    change = logits[np.arange(3), classes] - base[np.arange(3), classes]
    np.testing.assert_allclose(per_column.sum(axis=1), change, atol=2e-3)
    assert np.all(np.abs(per_column[:, 1]) > 1e-4)  # the island has a share
    # control: from standardized raw rows (the index cast to int), the island gets none
    standardized, scale, offset = tabular.standardized_view(model)
    flat = kbm.explain.integrated_gradients(standardized, (ROWS - offset) / scale, classes)
    assert np.all(flat[:, 1] == 0.0)
    # explain() draws one bar per column from the same sums
    with kbm.explain.figures.feature_names([c["name"] for c in COLUMNS]):
        done = kbm.explain.explain(
            network, encoded, str(tmp_path / "t.png"), class_index=classes,
            feature_groups=groups, steps=64,
        )  # fmt: skip
    np.testing.assert_allclose(done["maps"], kbm.explain.attribution_map(per_column), atol=1e-5)


@pytest.mark.tensorflow_only
def test_feature_groups_are_checked(tmp_path):
    network, encode, groups = tabular.encoded_view(_model())
    encoded = encode(ROWS)
    path = str(tmp_path / "t.png")
    with pytest.raises(ValueError, match=r"split the input's 7 positions.*Received: "):
        kbm.explain.explain(network, encoded, path, feature_groups=[[0, 1], [2]])
    with pytest.raises(ValueError, match=r"groups of integers"):
        kbm.explain.explain(network, encoded, path, feature_groups=[[0.5], *groups[1:]])
    with pytest.raises(ValueError, match=r"method 'saliency' gives none"):
        kbm.explain.explain(network, encoded, path, method="saliency", feature_groups=groups)
    cnn = zoo.build("cnn", input_shape=(8, 8, 1), filters=4, dense_units=8)
    with pytest.raises(ValueError, match=r"for a model with one vector input"):
        kbm.explain.explain(cnn, np.zeros((1, 8, 8, 1)), path, feature_groups=[[0]])
    assert tabular.encoded_view(cnn) is None
