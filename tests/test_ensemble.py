"""kbm.ensemble: the fused prediction equals the members' predictions fused in NumPy."""

import keras
import numpy as np
import pytest
from harness import forward

import keras_bigmodel as kbm
import zoo

X = np.random.default_rng(0).uniform(size=(5, 8, 8, 1)).astype("float32")


@pytest.fixture(scope="module")
def members():
    keras.utils.set_random_seed(0)
    tiny = zoo.get_preset("cnn").tiny
    return [zoo.build("cnn", **{**tiny, "num_classes": 10}) for _ in range(3)]


def test_average_is_the_mean_of_the_members(members):
    model = kbm.ensemble(members)
    expected = np.mean([forward(m, X) for m in members], axis=0)
    np.testing.assert_allclose(forward(model, X), expected, atol=1e-6)
    # members that share a name were nested as renamed copies with the same weights
    assert len({layer.name for layer in model.layers}) == len(model.layers)


def test_weighted_uses_normalised_weights(members):
    model = kbm.ensemble(members, mode="weighted", weights=[2, 1, 1])
    expected = sum(w * forward(m, X) for w, m in zip([0.5, 0.25, 0.25], members))
    np.testing.assert_allclose(forward(model, X), expected, atol=1e-6)
    assert not model.trainable_weights or all(
        "branch_logits" not in w.path for w in model.trainable_weights
    )


def test_concat_puts_predictions_side_by_side(members):
    model = kbm.ensemble(members, mode="concat")
    np.testing.assert_allclose(
        forward(model, X), np.concatenate([forward(m, X) for m in members], -1), atol=1e-6
    )


def test_dict_outputs_are_fused_per_key():
    tiny = zoo.get_preset("multitask").tiny
    a, b = zoo.build("multitask", name="a", **tiny), zoo.build("multitask", name="b", **tiny)
    x = np.random.default_rng(1).normal(size=(4, 12)).astype("float32")
    fused = forward(kbm.ensemble([a, b]), x)
    for key in ("task1", "task2"):
        np.testing.assert_allclose(
            fused[key], (forward(a, x)[key] + forward(b, x)[key]) / 2, atol=1e-6
        )


def test_ensemble_roundtrips_and_records_its_members(members, tmp_path):
    model = kbm.ensemble(members, mode="weighted", weights=[1, 2, 3])
    kbm.save_model(model, tmp_path / "ens.keras")
    restored = kbm.load_model(tmp_path / "ens.keras")
    np.testing.assert_allclose(forward(restored, X), forward(model, X), atol=1e-6)
    record = kbm.models.provenance(restored)
    assert record["name"] == "ensemble" and record["config"]["mode"] == "weighted"
    assert [m["name"] for m in record["members"]] == ["cnn", "cnn", "cnn"]
    assert record["members"][0]["config"]["input_shape"] == [8, 8, 1]


def test_trainable_weights_learn_which_member_to_trust(members):
    keras.utils.set_random_seed(0)
    good = members[0]
    target = forward(good, X)
    model = kbm.ensemble(members, mode="weighted", trainable_weights=True)
    for member in members:
        member.trainable = False
    model.compile(keras.optimizers.Adam(0.1), "mse")
    for _ in range(50):
        model.train_on_batch(X, target)
    weights = keras.ops.convert_to_numpy(keras.ops.softmax(model.layers[-1].branch_logits))
    for member in members:
        member.trainable = True
    assert weights[0] > 0.5, weights


@pytest.mark.parametrize(
    "build_args, match",
    [
        (lambda m: ([m[0]],), r"`models` must be a list of at least two"),
        (lambda m: (m[0],), r"`models` must be a list of at least two"),
        (lambda m: (m, "vote"), r"`mode` must be one of"),
        (lambda m: (m, "average", [1, 1, 1]), r"`weights` only applies to mode='weighted'"),
        (lambda m: (m, "weighted", [1, 1]), r"`weights` must be a list of 3"),
        (lambda m: (m, "weighted", [1, -1, 1]), r"`branch_weights` must be a list of positive"),
        (lambda m: (m + [zoo.build("cnn", input_shape=(8, 8, 3))],), r"must take the same inputs"),
        (
            lambda m: (m + [zoo.build("cnn", input_shape=(8, 8, 1), num_classes=3)],),
            r"needs outputs of the same shapes",
        ),
    ],
)
def test_bad_arguments(members, build_args, match):
    with pytest.raises(ValueError, match=match):
        kbm.ensemble(*build_args(members))
