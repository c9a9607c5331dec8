"""FusionConcat: the documents' fusion, masks along the concatenated axis, errors, and
the contract."""

import keras
import numpy as np
import pytest
from harness import layer_case, layer_contract, to_numpy

from keras_bigmodel.layers import Fusion, FusionConcat

RNG = np.random.default_rng(0)
A = RNG.normal(size=(5, 6)).astype("float32")
B = RNG.normal(size=(5, 6)).astype("float32")
C = RNG.normal(size=(5, 3)).astype("float32")

CASES = [
    layer_case(
        "vectors",
        lambda **kw: FusionConcat(**kw),
        [(6,), (4,)],
        quantizable=False,
        trainable_weights=0,
        non_trainable_weights=0,
    ),
    layer_case(
        "masked_sequences",
        lambda **kw: FusionConcat(axis=-1, **kw),
        [(None, 3), (None, 2)],
        masking=True,
        quantizable=False,
    ),
    layer_case(
        "named_branches",
        lambda **kw: FusionConcat(**kw),
        [(3,), (2,)],
        names=["text", "image"],
        quantizable=False,
    ),
]
test_contract = layer_contract(CASES)


def test_fusion_concat_is_the_documents_fusion():
    np.testing.assert_array_equal(to_numpy(FusionConcat()([A, C])), np.concatenate([A, C], -1))
    input1, input2 = keras.Input(shape=(10,)), keras.Input(shape=(10,))
    dense1 = keras.layers.Dense(1, activation="sigmoid")(input1)
    dense2 = keras.layers.Dense(1, activation="sigmoid")(input2)
    output = FusionConcat(axis=-1)([dense1, dense2])
    model = keras.Model([input1, input2], output)
    assert tuple(output.shape) == (None, 2)
    assert model.count_params() == 22


def test_time_axis_concat_concatenates_masks():
    layer = FusionConcat(axis=1)
    m1 = np.array([[1, 1, 0]], bool)
    m2 = np.array([[1, 0]], bool)
    mask = to_numpy(layer.compute_mask([np.ones((1, 3, 2)), np.ones((1, 2, 2))], [m1, m2]))
    np.testing.assert_array_equal(mask, [[1, 1, 0, 1, 0]])
    mask = to_numpy(
        Fusion("concat", axis=1).compute_mask([np.ones((1, 3, 2)), np.ones((1, 2, 2))], [m1, None])
    )
    np.testing.assert_array_equal(mask, [[1, 1, 0, 1, 1]])


def test_fusion_concat_bad_axis():
    with pytest.raises(ValueError, match=r"`axis`.*Received: axis='1'"):
        FusionConcat(axis="1")
    with pytest.raises(ValueError, match=r"axis=3, outside the rank 2"):
        FusionConcat(axis=3)([A, B])


def test_is_fusion_concat_and_shares_its_path():
    layer = FusionConcat()
    assert isinstance(layer, Fusion) and layer.mode == "concat"
    np.testing.assert_array_equal(to_numpy(layer([A, C])), to_numpy(Fusion("concat")([A, C])))
    assert sorted(layer.get_config()) == ["axis", "dtype", "name", "trainable"]
    with pytest.raises(ValueError, match=r"FusionConcat does not take `units`.*Received: units=3"):
        FusionConcat(units=3)


def test_missing_branch_is_zeros():
    present = np.array([[1, 0]] * 5, "float32")
    out = to_numpy(FusionConcat()([A, C], modality_mask=present))
    np.testing.assert_allclose(out, np.concatenate([A, np.zeros_like(C)], -1), atol=0)
