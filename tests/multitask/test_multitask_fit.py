"""MultiTaskModel: every method trains the zoo's `multitask` preset (tiny) with
compile/fit on every backend (a falling loss), its state is saved and reloaded; the two
gaps: task-named outputs for a user's MultiTaskHead model, and NaN labels in the mmoe/ple
presets."""

import keras
import numpy as np
import pytest
from harness import to_numpy

import keras_bigmodel as kbm
import zoo
from keras_bigmodel.layers import MultiTaskHead
from keras_bigmodel.layers.multi_task_head import task_outputs
from keras_bigmodel.multitask import METHODS, GradientAggregator, MultiTaskModel

RNG = np.random.default_rng(0)
X = RNG.normal(size=(32, 6)).astype("float32")
Y = {
    "a": np.eye(3, dtype="float32")[(X[:, 0] > 0).astype(int) + (X[:, 1] > 0)],
    "b": np.eye(2, dtype="float32")[(X[:, 2] > 0).astype(int)],
}
LOSS = {"a": "categorical_crossentropy", "b": "categorical_crossentropy"}
# The zoo's multitask preset (tiny: 12 features, a Dense(8) trunk, tasks task1 / task2)
XP = RNG.normal(size=(32, 12)).astype("float32")
YP = {
    "task1": np.eye(3, dtype="float32")[(XP[:, 0] > 0).astype(int) + (XP[:, 1] > 0)],
    "task2": np.eye(2, dtype="float32")[(XP[:, 2] > 0).astype(int)],
}
PRESET_LOSS = {"task1": "categorical_crossentropy", "task2": "categorical_crossentropy"}


def preset():
    return zoo.build("multitask", **zoo.get_preset("multitask").tiny)


def net():
    inputs = keras.Input((6,))
    trunk = keras.layers.Dense(8, activation="relu", name="trunk")(inputs)
    heads = MultiTaskHead(
        {"a": {"units": 3, "activation": "softmax"}, "b": {"units": 2, "activation": "softmax"}},
        name="heads",
    )(trunk)
    return keras.Model(inputs, task_outputs(heads))


def falls(method, representation=None, steps=6):
    """Trains a few full-batch steps; the loss of the last step is clearly below the first
    (train_on_batch reports each step's loss before its update)."""
    keras.utils.set_random_seed(0)
    model = MultiTaskModel(preset(), method, representation=representation)
    # TensorFlow: eager steps (tracing a graph per method would be most of this test's
    # time; every method's solver runs in a graph in test_aggregate, and the graph and
    # XLA steps are tested below); JAX and PyTorch: their defaults
    eager = keras.backend.backend() == "tensorflow"
    model.compile(
        keras.optimizers.Adam(0.05),
        loss=PRESET_LOSS,
        run_eagerly=eager,
        jit_compile=not eager and "auto",
    )
    losses = [model.train_on_batch(XP, YP, return_dict=True)["loss"] for _ in range(steps)]
    assert np.isfinite(losses).all() and losses[-1] < losses[0] - 0.05, (method, losses)
    return model


# Every method on every backend (the JAX pass pays a jit compile per method, about 1-2 s).
@pytest.mark.parametrize("method", METHODS)
def test_methods_train_with_a_falling_loss(method):
    model = falls(method)
    if method in ("famo", "gradnorm"):  # the learned logits moved
        assert np.abs(to_numpy(model.aggregator.logits)).max() > 1e-4


def test_mgda_ub_weights_from_the_shared_representation_train():
    falls("mgda", representation="trunk_0")


def test_state_is_saved_and_reloaded(tmp_path):
    keras.utils.set_random_seed(0)
    model = MultiTaskModel(preset(), GradientAggregator("famo", seed=3, learning_rate=0.5))
    jit = False if keras.backend.backend() == "tensorflow" else "auto"
    model.compile(keras.optimizers.Adam(0.05), loss=PRESET_LOSS, jit_compile=jit)
    model.fit(XP, YP, epochs=3, batch_size=8, verbose=0)
    logits = to_numpy(model.aggregator.logits)
    assert np.abs(logits).max() > 1e-3
    path = str(tmp_path / "famo.keras")
    model.save(path)
    restored = keras.saving.load_model(path)
    assert isinstance(restored, MultiTaskModel) and restored.aggregator.method == "famo"
    np.testing.assert_allclose(to_numpy(restored.aggregator.logits), logits)
    np.testing.assert_allclose(
        to_numpy(restored.aggregator.reference_losses), to_numpy(model.aggregator.reference_losses)
    )
    for task in ("task1", "task2"):
        np.testing.assert_allclose(
            to_numpy(restored(XP)[task]), to_numpy(model(XP)[task]), atol=1e-6
        )
    restored.fit(XP, YP, epochs=1, batch_size=8, verbose=0)  # keeps training, state moves on
    assert not np.allclose(to_numpy(restored.aggregator.logits), logits)


@pytest.mark.tensorflow_only
def test_partial_labels_mixed_precision_and_xla_compose():
    y = {"a": Y["a"].copy(), "b": Y["b"]}
    y["a"][::3] = np.nan  # a third of task a unlabelled: TaskLoss leaves them out
    keras.config.set_dtype_policy("mixed_float16")
    try:
        keras.utils.set_random_seed(0)
        model = MultiTaskModel(net(), "pcgrad")
        model.compile(keras.optimizers.Adam(0.05), loss=LOSS, jit_compile=True)
        assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
        history = model.fit(X, y, epochs=4, batch_size=16, verbose=0).history["loss"]
    finally:
        keras.config.set_dtype_policy("float32")
    assert np.isfinite(history).all() and history[-1] < history[0], history


@pytest.mark.tensorflow_only
def test_composes_with_uncertainty_weighting():
    """A weighting layer's TaskLoss objects under a gradient method: each task's
    gradient is that of its weighted loss, and the log-variances learn too."""
    from keras_bigmodel.multitask import UncertaintyWeighting

    keras.utils.set_random_seed(0)
    net = preset()
    weighting = UncertaintyWeighting(["task1", "task2"])
    model = MultiTaskModel(keras.Model(net.input, task_outputs(weighting(net.output))), "pcgrad")
    model.compile(keras.optimizers.Adam(0.05), loss=weighting.losses(PRESET_LOSS), run_eagerly=True)
    losses = [model.train_on_batch(XP, YP, return_dict=True)["loss"] for _ in range(6)]
    assert np.isfinite(losses).all() and losses[-1] < losses[0] - 0.05, losses
    assert np.abs(to_numpy(weighting.log_variance)).max() > 1e-3


@pytest.mark.tensorflow_only
def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match=r"`method` must be one of"):
        GradientAggregator("pcgard")
    with pytest.raises(
        ValueError, match=r"needs `loss`, a dict with one loss per task \['a', 'b'\]"
    ):
        MultiTaskModel(net(), "mgda").compile("adam", loss="mse")
    with pytest.raises(ValueError, match=r"`representation` must name a layer"):
        MultiTaskModel(net(), "mgda", representation="nope")
    inputs = keras.Input((6,))
    plain = keras.Model(inputs, MultiTaskHead({"a": 2, "b": 2})(inputs))
    with pytest.raises(ValueError, match=r"outputs named by task"):
        MultiTaskModel(plain, "mgda")


# ------------------------------------------------------------------------- the gaps
@pytest.mark.tensorflow_only
def test_task_outputs_names_a_users_model_by_task(tmp_path):
    inputs = keras.Input((6,))
    heads = MultiTaskHead({"age": 1, "kind": {"units": 3, "activation": "softmax"}})(inputs)
    # control: plain Keras names outputs after the layer that made them
    names = keras.Model(inputs, heads).output_names
    assert len(set(names)) == 1 and names[0].startswith("multi_task_head"), names
    model = keras.Model(inputs, task_outputs(heads))
    assert model.output_names == ["age", "kind"]
    model.compile("adam", loss={"age": "mse", "kind": "categorical_crossentropy"})
    path = str(tmp_path / "named.keras")
    model.save(path)
    assert keras.saving.load_model(path).output_names == ["age", "kind"]
    with pytest.raises(ValueError, match=r"non-empty dict of tensors keyed by task"):
        task_outputs([inputs])


@pytest.mark.tensorflow_only
@pytest.mark.parametrize("name", ["mmoe", "ple"])
def test_expert_presets_leave_nan_labels_out(name):
    model = zoo.build(name, **zoo.get_preset(name).tiny)
    x = RNG.normal(size=(16, 12)).astype("float32")
    y1 = np.eye(3, dtype="float32")[np.arange(16) % 3]
    y1[::4] = np.nan
    y = {"task1": y1, "task2": np.eye(2, dtype="float32")[np.arange(16) % 2]}
    losses = [model.train_on_batch(x, y, return_dict=True)["loss"] for _ in range(3)]
    assert np.isfinite(losses).all(), losses
    # the masked loss equals the loss over the labelled samples alone
    pred = to_numpy(model(x)["task1"])
    keep = ~np.isnan(y1[:, 0])
    expected = -np.mean(np.log(np.sum(y1[keep] * pred[keep], axis=1)))
    got = kbm.multitask.losses.masked_crossentropy(y1, pred)
    np.testing.assert_allclose(np.mean(to_numpy(got)), expected, rtol=1e-5)
