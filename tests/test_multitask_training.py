"""kbm.multitask: uncertainty weighting, dynamic weights, partial labels and the gate
logger, trained with compile/fit, saved and reloaded, against references computed another
way (formulas in NumPy, samples dropped by hand)."""

import json
import math

import keras
import numpy as np
import pytest
from harness import to_numpy
from keras import ops

import keras_bigmodel as kbm
from keras_bigmodel.layers import MixtureOfExperts, MultiTaskHead
from keras_bigmodel.multitask import (
    DynamicWeightAveraging,
    DynamicWeighting,
    GateWeightLogger,
    MaskedMetric,
    TaskLoss,
    UncertaintyWeighting,
    label_present,
)

RNG = np.random.default_rng(0)
X = RNG.normal(size=(24, 6)).astype("float32")
Y = {
    "depth": (X[:, :1] - 0.5 * X[:, 1:2]).astype("float32"),
    "label": keras.utils.to_categorical((X[:, 2] > 0).astype(int) + (X[:, 3] > 0), 3),
}


def two_task_model(weighting):
    inputs = keras.Input((6,))
    trunk = keras.layers.Dense(8, activation="relu")(inputs)
    heads = MultiTaskHead({"depth": 1, "label": {"units": 3, "activation": "softmax"}})(trunk)
    return keras.Model(inputs, weighting(heads))


def np_task_losses(model, x, y):
    pred = to_numpy(model(x))
    mse = np.mean((pred["depth"] - y["depth"]) ** 2)
    ce = np.mean(-np.sum(y["label"] * np.log(np.clip(pred["label"], 1e-7, 1.0)), axis=-1))
    return {"depth": mse, "label": ce}


def scalar(t):
    return float(ops.convert_to_numpy(t))


# ------------------------------------------------------------- uncertainty weighting
def test_uncertainty_weighting_is_kendalls_formula_trains_and_reloads_bound(tmp_path):
    keras.utils.set_random_seed(1)
    weighting = UncertaintyWeighting(["depth", "label"], name="uncertainty")
    model = two_task_model(weighting)
    model.compile(
        keras.optimizers.Adam(0.05),
        loss=weighting.losses({"depth": "mse", "label": "categorical_crossentropy"}),
        metrics={"label": [MaskedMetric("categorical_accuracy")]},
    )
    # The loss: sum_k 0.5 exp(-s_k) L_k + 0.5 s_k, from task losses computed in NumPy.
    s = np.array([0.7, -0.4], "float32")
    weighting.log_variance.assign(s)
    raw = np_task_losses(model, X, Y)
    expected = sum(0.5 * np.exp(-s[i]) * raw[t] + 0.5 * s[i] for i, t in enumerate(raw))
    got = scalar(model.compute_loss(x=X, y=Y, y_pred=model(X), training=False))
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    assert weighting.task_weights() == pytest.approx(
        {t: 0.5 * math.exp(-v) for t, v in zip(["depth", "label"], s)}
    )
    # The log-variances learn through compile/fit on this backend.
    history = model.fit(X, Y, epochs=2, batch_size=8, verbose=0)
    learned = to_numpy(weighting.log_variance)
    assert np.all(np.abs(learned - s) > 1e-4), (learned, s)
    s = learned
    # the unweighted task losses are logged next to Keras's weighted ones
    assert len(history.history["depth_unweighted_loss"]) == 2
    expected = scalar(model.compute_loss(x=X, y=Y, y_pred=model(X), training=False))
    path = kbm.save_model(model, str(tmp_path / "uw.keras"))
    for restored in (keras.saving.load_model(path), kbm.load_model(path)):
        layer = restored.get_layer("uncertainty")
        assert all(loss.weighting is layer for loss in restored.loss.values())
        np.testing.assert_allclose(to_numpy(layer.log_variance), s)
        got = scalar(restored.compute_loss(x=X, y=Y, y_pred=restored(X), training=False))
        np.testing.assert_allclose(got, expected, rtol=1e-5)
    restored.fit(X, Y, epochs=1, batch_size=8, verbose=0)  # keeps learning after reload
    assert not np.allclose(to_numpy(restored.get_layer("uncertainty").log_variance), s)


def test_a_task_loss_deserialized_alone_refuses_to_train():
    weighting = UncertaintyWeighting(["depth", "label"])
    two_task_model(weighting)
    loss = weighting.losses("mse")["depth"]
    config = json.loads(json.dumps(keras.saving.serialize_keras_object(loss)))
    orphan = keras.saving.deserialize_keras_object(config)
    assert orphan.weighting is not weighting
    with pytest.raises(ValueError, match="not part of a model"):
        orphan(Y["depth"], Y["depth"])


# ----------------------------------------------------------------- dynamic weights
def test_dynamic_weights_change_without_recompiling():
    weighting = DynamicWeighting(["depth", "label"], initial_weights={"label": 2.0})
    model = two_task_model(weighting)
    model.compile(
        keras.optimizers.SGD(0.0),
        loss=weighting.losses({"depth": "mse", "label": "categorical_crossentropy"}),
    )
    raw = np_task_losses(model, X, Y)
    first = model.train_on_batch(X, Y, return_dict=True)["loss"]
    np.testing.assert_allclose(first, raw["depth"] + 2.0 * raw["label"], rtol=1e-5)
    step = model.train_function
    weighting.set_task_weights({"depth": 0.0, "label": 1.0})
    second = model.train_on_batch(X, Y, return_dict=True)["loss"]
    np.testing.assert_allclose(second, raw["label"], rtol=1e-5)
    assert model.train_function is step  # the same compiled step read the new weights


def test_dwa_callback_follows_liu_et_al():
    keras.utils.set_random_seed(2)
    weighting = DynamicWeighting(["depth", "label"])
    model = two_task_model(weighting)
    model.compile(
        keras.optimizers.Adam(0.02),
        loss=weighting.losses({"depth": "mse", "label": "categorical_crossentropy"}),
    )
    dwa = DynamicWeightAveraging(temperature=2.0)
    history = model.fit(X, Y, epochs=4, batch_size=12, verbose=0, callbacks=[dwa])
    h = history.history
    assert h["depth_weight"][:2] == [1.0, 1.0]  # the first two epochs are unweighted
    for epoch in (2, 3):  # weights used in epoch t come from the losses of t-1 and t-2
        r = np.array(
            [
                h[f"{t}_unweighted_loss"][epoch - 1] / h[f"{t}_unweighted_loss"][epoch - 2]
                for t in ("depth", "label")
            ]
        )
        expected = 2 * np.exp(r / 2.0) / np.exp(r / 2.0).sum()
        np.testing.assert_allclose(
            [h["depth_weight"][epoch], h["label_weight"][epoch]], expected, rtol=1e-4
        )


# ----------------------------------------------------------------- partial labels
def test_label_present_reads_nan_and_mask_values():
    y = np.array([[0.0, 1.0], [np.nan, 0.0], [-1.0, -1.0]])
    np.testing.assert_array_equal(to_numpy(label_present(y)), [True, False, True])
    np.testing.assert_array_equal(to_numpy(label_present(y, mask_value=-1)), [True, False, False])
    np.testing.assert_array_equal(to_numpy(label_present(np.array([2, -1]), -1)), [True, False])


def partial_model():
    keras.utils.set_random_seed(3)
    inputs = keras.Input((6,))
    trunk = keras.layers.Dense(8, activation="relu")(inputs)
    heads = MultiTaskHead({"depth": 1, "label": {"units": 3, "activation": "softmax"}})(trunk)
    return keras.Model(inputs, heads)


def test_missing_labels_count_for_nothing_in_loss_gradient_and_metrics():
    labelled = np.arange(24) % 3 != 0  # a third of the samples lack a class label
    y_nan = {"depth": Y["depth"], "label": np.where(labelled[:, None], Y["label"], np.nan)}
    sparse = np.where(labelled, Y["label"].argmax(-1), -1)

    def compiled(loss, metric, mask_value=None):
        model = partial_model()
        model.compile(
            keras.optimizers.SGD(0.1),
            loss={"depth": "mse", "label": TaskLoss(loss, mask_value=mask_value)},
            metrics={"label": [MaskedMetric(metric, mask_value=mask_value)]},
        )
        return model

    ours = compiled("categorical_crossentropy", "categorical_accuracy")
    dropped = partial_model()  # reference: the unlabelled samples are dropped
    dropped.compile(
        keras.optimizers.SGD(0.1),
        loss={"depth": "mse", "label": "categorical_crossentropy"},
        metrics={"label": ["categorical_accuracy"]},
    )
    # Task losses: the labelled samples' mean, as if the others were not there.
    pred = to_numpy(ours(X))["label"]
    reference_ce = keras.losses.categorical_crossentropy(Y["label"][labelled], pred[labelled])
    np.testing.assert_allclose(
        scalar(ours.loss["label"](y_nan["label"], pred)),
        to_numpy(reference_ce).mean(),
        rtol=1e-5,
    )
    # Metrics over several batches: only labelled samples count.
    got = ours.evaluate(X, y_nan, batch_size=5, verbose=0, return_dict=True)
    ref = dropped.evaluate(
        X[labelled],
        {k: v[labelled] for k, v in Y.items()},
        batch_size=5,
        verbose=0,
        return_dict=True,
    )
    np.testing.assert_allclose(
        got["label_categorical_accuracy"], ref["label_categorical_accuracy"], rtol=1e-6
    )
    # Integer labels marked missing by -1.
    sparse_metric = MaskedMetric("sparse_categorical_accuracy", mask_value=-1)
    sparse_metric.update_state(sparse, pred)
    reference = keras.metrics.SparseCategoricalAccuracy()
    reference.update_state(sparse[labelled], pred[labelled])
    np.testing.assert_allclose(scalar(sparse_metric.result()), scalar(reference.result()))
    sparse_loss = TaskLoss("sparse_categorical_crossentropy", mask_value=-1)
    np.testing.assert_allclose(
        scalar(sparse_loss(sparse, pred)), to_numpy(reference_ce).mean(), rtol=1e-5
    )
    # One SGD step on the label task alone moves the weights exactly as on the dropped data.
    for model in (ours, dropped):
        model.compile(
            keras.optimizers.SGD(0.1),
            loss={"depth": "mse", "label": model.loss["label"]},
            loss_weights={"depth": 0.0, "label": 1.0},
        )
    ours.train_on_batch(X, {"depth": Y["depth"], "label": y_nan["label"]})
    dropped.train_on_batch(
        X[labelled], {"depth": Y["depth"][labelled], "label": Y["label"][labelled]}
    )
    for a, b in zip(ours.weights, dropped.weights):
        np.testing.assert_allclose(to_numpy(a), to_numpy(b), atol=1e-6)


def test_task_loss_reductions_and_a_batch_without_labels():
    y = np.array([[1.0], [np.nan], [3.0], [0.0]], "float32")
    p = np.array([[0.0], [9.0], [1.0], [2.0]], "float32")
    sw = np.array([1.0, 5.0, 2.0, 0.5], "float32")
    values = np.array([1.0, 4.0, 4.0])  # the labelled samples' squared errors
    weights = np.array([1.0, 2.0, 0.5])
    assert scalar(TaskLoss("mse")(y, p)) == pytest.approx(values.mean())
    assert scalar(TaskLoss("mse", reduction="sum")(y, p, sw)) == pytest.approx(
        (values * weights).sum()
    )
    assert scalar(TaskLoss("mse", reduction="mean_with_sample_weight")(y, p, sw)) == pytest.approx(
        (values * weights).sum() / weights.sum()
    )
    np.testing.assert_allclose(to_numpy(TaskLoss("mse", reduction=None)(y, p)), [1, 0, 4, 4])
    assert scalar(TaskLoss("mse")(np.full((3, 1), np.nan, "float32"), p[:3])) == 0.0


def test_losses_and_metrics_round_trip_their_config():
    loss = TaskLoss(keras.losses.CategoricalCrossentropy(from_logits=True), mask_value=-1)
    clone = TaskLoss.from_config(json.loads(json.dumps(loss.get_config())))
    y, logits = Y["label"][:4], RNG.normal(size=(4, 3)).astype("float32")
    np.testing.assert_allclose(scalar(clone(y, logits)), scalar(loss(y, logits)), rtol=1e-6)
    metric = MaskedMetric("mae", mask_value=-1, name="depth_mae")
    clone = MaskedMetric.from_config(json.loads(json.dumps(metric.get_config())))
    assert clone.name == "depth_mae" and clone.mask_value == -1.0


@pytest.mark.parametrize(
    "make, error, message",
    [
        (lambda: TaskLoss("nope"), ValueError, "loss='nope'"),
        (lambda: TaskLoss("mse", reduction="max"), ValueError, "reduction='max'"),
        (lambda: TaskLoss("mse", mask_value="x"), ValueError, "mask_value='x'"),
        (lambda: TaskLoss("mse", weighting=object()), TypeError, "weighting="),
        (lambda: TaskLoss("mse", weighting=UncertaintyWeighting(["a"])), ValueError, "`task`"),
        (lambda: TaskLoss("mse", "b", UncertaintyWeighting(["a"])), ValueError, "task='b'"),
        (lambda: MaskedMetric("accuracy"), ValueError, "categorical_accuracy"),
        (lambda: MaskedMetric("nope"), ValueError, "metric='nope'"),
        (lambda: UncertaintyWeighting([]), ValueError, "tasks"),
        (
            lambda: UncertaintyWeighting(["a"], initial_log_variance=float("nan")),
            ValueError,
            "initial_log_variance=nan",
        ),
        (
            lambda: DynamicWeighting(["a"], initial_weights={"b": 1.0}),
            ValueError,
            "initial_weights",
        ),
        (lambda: DynamicWeighting(["a"], initial_weights={"a": -1.0}), ValueError, "-1.0"),
        (lambda: UncertaintyWeighting(["a", "b"]).losses({"a": "mse"}), ValueError, "missing"),
        (lambda: DynamicWeightAveraging(temperature=0), ValueError, "temperature=0"),
        (lambda: DynamicWeightAveraging(UncertaintyWeighting(["a"])), TypeError, "weighting="),
    ],
)
def test_invalid_arguments_are_named(make, error, message):
    with pytest.raises(error, match=message.replace("(", r"\(")):
        make()


def test_weighting_refuses_outputs_of_other_tasks():
    with pytest.raises(ValueError, match=r"weighs tasks \['a', 'b'\]"):
        UncertaintyWeighting(["a", "b"])({"a": keras.Input((1,)), "c": keras.Input((1,))})


# -------------------------------------------------------------------- gate logger
def test_gate_weight_logger_writes_each_epochs_mean_gate_weights():
    keras.utils.set_random_seed(4)
    inputs = keras.Input((6,))
    mixtures = MixtureOfExperts(
        ["depth", "label"], num_experts=3, expert_units=(4,), gate_metrics=True, name="mmoe"
    )(inputs)
    heads = {
        "depth": keras.layers.Dense(1, name="depth")(mixtures["depth"]),
        "label": keras.layers.Dense(3, activation="softmax", name="label")(mixtures["label"]),
    }
    model = keras.Model(inputs, heads)
    model.compile("adam", loss={"depth": "mse", "label": "categorical_crossentropy"})
    history = model.fit(X, Y, epochs=2, batch_size=12, verbose=0, callbacks=[GateWeightLogger()])
    h = history.history
    for task in ("depth", "label"):
        per_epoch = np.array([h[f"mmoe/{task}/expert_{i}"] for i in range(3)])  # (3, epochs)
        np.testing.assert_allclose(per_epoch.sum(0), 1.0, atol=1e-5)
    # the last epoch's figures are the layer's statistics, which the logger reset each epoch
    usage = model.get_layer("mmoe").gate_usage()
    assert h["mmoe/label/expert_2"][-1] == pytest.approx(usage["label"]["expert_2"])
    plain = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    logger = GateWeightLogger()
    logger.set_model(plain)
    with pytest.raises(ValueError, match="gate_metrics=True"):
        logger.on_epoch_begin(0)


# ------------------------------------------------------------ experiment data (smoke)
def test_mmoe_benchmark_data_has_the_requested_task_correlation():
    from benchmarks.experiments.data import mmoe_synthetic

    rng = np.random.default_rng(0)
    _, same, (u1, u2) = mmoe_synthetic(4000, 1.0, rng)
    np.testing.assert_allclose([u1 @ u1, u2 @ u2, u1 @ u2], [1.0, 1.0, 0.0], atol=1e-9)
    # p = 1: the tasks differ only by their N(0, 0.1^2) noise terms.
    np.testing.assert_allclose(np.std(same["y1"] - same["y2"]), 0.1 * np.sqrt(2), rtol=0.05)
    _, unrelated, _ = mmoe_synthetic(4000, 0.0, rng)
    assert abs(np.corrcoef(unrelated["y1"][:, 0], unrelated["y2"][:, 0])[0, 1]) < 0.06
