"""Explanations against known answers, on every backend: integrated gradients add up to
the change of the logit (completeness), and models trained on two synthetic tasks are
explained by the steps that decide their label."""

import keras
import numpy as np
import pytest
from explain_helpers import ZEROS, numpy_init

import keras_bigmodel as kbm
from keras_bigmodel.explain import synthetic

E = kbm.explain
RNG = np.random.default_rng(0)


def _mixed_model():
    """A small CNN (smooth activations: with ReLUs the path integral has kinks and its
    quadrature error falls only as 1/steps), a sequence branch and a softmax head:
    completeness must hold for every input together."""
    image = keras.Input((6, 6, 1), name="image")
    sequence = keras.Input((5, 3), name="sequence")
    x = keras.layers.Conv2D(3, 3, activation="softplus", **ZEROS)(image)
    x = keras.layers.Flatten()(x)
    s = keras.layers.Flatten()(keras.layers.Dense(4, activation="tanh", **ZEROS)(sequence))
    x = keras.layers.Concatenate()([x, s])
    x = keras.layers.Dense(8, activation="tanh", **ZEROS)(x)
    model = keras.Model([image, sequence], keras.layers.Dense(3, activation="softmax", **ZEROS)(x))
    return numpy_init(model)


def test_integrated_gradients_add_up_to_the_change_of_the_logit():
    model = _mixed_model()
    x = [
        RNG.uniform(size=(3, 6, 6, 1)).astype("float32"),
        RNG.uniform(size=(3, 5, 3)).astype("float32"),
    ]
    baseline = [np.full((6, 6, 1), 0.5, "float32"), 0.0]
    classes = [0, 1, 2]
    attributions = E.integrated_gradients(model, x, classes, baseline=baseline, steps=24)
    assert set(attributions) == {"image", "sequence"}
    assert attributions["image"].shape == (3, 6, 6, 1)
    total = sum(a.reshape(3, -1).sum(axis=1) for a in attributions.values())
    gap = E.class_scores(model, x, classes) - E.class_scores(
        model, [np.full_like(x[0], 0.5), np.zeros_like(x[1])], classes
    )
    assert np.all(np.abs(gap) > 1e-3)  # a real change to explain
    np.testing.assert_allclose(total, gap, rtol=1e-2)
    # the same with the probabilities explained instead of the logits
    probabilities = E.integrated_gradients(
        model, x, classes, baseline=baseline, steps=24, logits=False
    )
    total = sum(a.reshape(3, -1).sum(axis=1) for a in probabilities.values())
    gap = E.class_scores(model, x, classes, logits=False) - E.class_scores(
        model, [np.full_like(x[0], 0.5), np.zeros_like(x[1])], classes, logits=False
    )
    np.testing.assert_allclose(total, gap, rtol=1e-2, atol=1e-5)
    maps = E.attribution_map(attributions)
    assert maps["image"].shape == (3, 6, 6) and maps["sequence"].shape == (3, 5, 3)
    assert all(0.0 <= m.min() and m.max() <= 1.0 for m in maps.values())


def test_find_max_attention_and_saliency_peak_at_the_maximum():
    # 60 Adam steps: about a second of training
    model, task, error = synthetic.solve("find_max", seed=0, steps=60)
    assert error < 0.7  # it learned: under the error of predicting the mean (1.0)
    weights = E.attention_scores(model, task.x_test)
    assert weights.shape == (len(task.answer), 8)
    assert np.mean(weights.argmax(axis=1) == task.answer) >= 0.9
    assert weights.max(axis=1).mean() > 2 / 8  # peaked, not uniform
    maps = E.saliency(model, task.x_test, class_index=0)  # (batch, time, 1)
    assert np.mean(maps[..., 0].argmax(axis=1) == task.answer) >= 0.9
    truth = synthetic.regions(task)
    assert truth.sum(axis=1).tolist() == [1] * len(task.answer)
    game = E.metrics.pointing_game(weights, truth)
    assert game["hit_rate"] == np.mean(weights.argmax(axis=1) == task.answer) >= 0.9
    assert E.metrics.pointing_game(maps, truth)["hit_rate"] >= 0.9  # (batch, time, 1) maps


def test_add_two_numbers_attention_falls_on_the_two_marked_steps():
    model, task, error = synthetic.solve("add_two_numbers", seed=0, steps=40)
    assert error < 0.3
    weights = E.attention_scores(model, task.x_test)
    top_two = np.sort(np.argsort(-weights, axis=1)[:, :2], axis=1)
    assert np.mean(np.all(top_two == task.answer, axis=1)) >= 0.9
    assert np.sort(weights, axis=1)[:, -2:].sum(axis=1).mean() > 0.8
    truth = synthetic.regions(task)
    assert truth.sum(axis=1).tolist() == [2] * len(task.answer)
    assert E.metrics.pointing_game(weights, truth)["hit_rate"] >= 0.9


def _patch_detector():
    """A CNN that detects the planted patch by construction: a 4x4 filter, +1 on its
    inner 2x2 and -0.5 on its ring (a bright square on a dark surround), ReLU, global max
    pooling and a read-out that turns the detection into the class."""
    image = keras.Input((8, 8, 1))
    conv = keras.layers.Conv2D(1, 4, padding="same", activation="relu", name="conv")
    dense = keras.layers.Dense(2, activation="softmax")
    model = keras.Model(image, dense(keras.layers.GlobalMaxPooling2D()(conv(image))))
    kernel = np.full((4, 4, 1, 1), -0.5, "float32")
    kernel[1:3, 1:3] = 1.0
    conv.set_weights([kernel, np.array([-3.0], "float32")])
    dense.set_weights([np.array([[-8.0, 8.0]], "float32"), np.array([2.0, -2.0], "float32")])
    return model


def test_planted_patch_pointing_game_finds_the_patch():
    """Digits, half with a bright 2x2 square on the background; the label says whether
    it is there. On a model that detects the square, Grad-CAM and integrated gradients
    point at it and a random map does not."""
    task = synthetic.planted_patch(n_train=10, n_test=40, seed=0)
    assert task.patch_test[task.y_test == 1].sum(axis=(1, 2)).tolist() == [4] * 20
    assert not task.patch_test[task.y_test == 0].any()
    np.testing.assert_array_equal(task.x_test[..., 0][task.patch_test], 1.0)
    model = _patch_detector()
    found = E.class_scores(model, task.x_test, 1, logits=False) > 0.5
    assert (found == task.y_test).mean() >= 0.9
    patched = task.y_test == 1
    x, truth = task.x_test[patched], synthetic.regions(task)[patched]
    # One channel through global max pooling: Grad-CAM is the detector's response, so
    # it points where the response peaks (a stroke can outshine a patch now and then).
    response = keras.ops.convert_to_numpy(
        keras.Model(model.input, model.get_layer("conv").output)(x)
    )
    peaks = response[..., 0].reshape(len(x), -1).argmax(axis=1)
    expected = truth.reshape(len(x), -1)[np.arange(len(x)), peaks]
    game = E.metrics.pointing_game(E.attributions(model, x, 1, "gradcam"), truth)
    np.testing.assert_array_equal(game["hits"], expected)
    assert game["hit_rate"] >= 0.8
    assert (
        E.metrics.pointing_game(
            E.attributions(model, x, 1, "integrated_gradients", steps=8), truth
        )["hit_rate"]
        >= 0.8
    )
    assert E.metrics.pointing_game(E.attributions(model, x, 1, "random"), truth)["hit_rate"] < 0.3


def test_synthetic_tasks_check_their_arguments():
    task = synthetic.add_two_numbers(n_train=4, n_test=3, length=5, seed=1)
    assert task.x_train.shape == (4, 5, 2) and task.answer.shape == (3, 2)
    np.testing.assert_array_equal(task.x_test[np.arange(3)[:, None], task.answer, 1], 1.0)
    np.testing.assert_allclose(
        task.y_test[:, 0], task.x_test[np.arange(3)[:, None], task.answer, 0].mean(axis=1)
    )
    with pytest.raises(ValueError, match=r"`length` must be at least 3. Received: length=2"):
        synthetic.add_two_numbers(length=2)
    with pytest.raises(
        ValueError, match=r"`name` must be one of \['find_max', 'add_two_numbers'\]"
    ):
        synthetic.solve("sort")
    with pytest.raises(
        ValueError, match=r"`size` must be at most 3 on 8x8 digits. Received: size=4"
    ):
        synthetic.planted_patch(size=4)
    with pytest.raises(TypeError, match=r"`task` must be a synthetic Task or ImageTask"):
        synthetic.regions("find_max")
