"""kbm.explain.metrics and the new methods against independent NumPy computations of
their papers' definitions, on every backend; logits found through output tails."""

import keras
import numpy as np
import pytest
from explain_helpers import ZEROS, numpy_init
from references import softmax

import keras_bigmodel as kbm

E = kbm.explain
M = kbm.explain.metrics
RNG = np.random.default_rng(0)


def _linear_image_model():
    """Logits linear in the pixels: Flatten -> Dense(3) (softmax on top)."""
    image = keras.Input((4, 4, 2), name="image")
    dense = keras.layers.Dense(3, activation="softmax", name="out", **ZEROS)
    model = numpy_init(keras.Model(image, dense(keras.layers.Flatten()(image))))
    kernel = keras.ops.convert_to_numpy(dense.kernel).astype("float64")
    bias = keras.ops.convert_to_numpy(dense.bias).astype("float64")
    return model, lambda x: np.asarray(x, "float64").reshape(len(x), -1) @ kernel + bias


# ------------------------------------------------------------------- output tails
TAILS = {
    "Reshape": lambda t: keras.layers.Reshape((3,))(t),
    "Identity": lambda t: keras.layers.Identity()(t),
    "Dropout": lambda t: keras.layers.Dropout(0.5)(t),
    "Activation-linear-float32": lambda t: keras.layers.Activation("linear", dtype="float32")(t),
    "ops.cast": lambda t: keras.ops.cast(t, "float32"),
    "Reshape-Flatten": lambda t: keras.layers.Flatten()(keras.layers.Reshape((3, 1))(t)),
}


@pytest.mark.parametrize("tail", sorted(TAILS))
def test_logits_are_found_through_shape_preserving_and_casting_tails(tail):
    model, logits = _linear_image_model()
    tailed = keras.Model(model.input, TAILS[tail](model.output))
    x = RNG.uniform(size=(2, 4, 4, 2)).astype("float32")
    np.testing.assert_allclose(
        E.class_scores(tailed, x, [0, 2]), logits(x)[[0, 1], [0, 2]], atol=1e-5
    )
    assert kbm.explain._model.ModelView(tailed).linearized == ["out"]
    if tail == "Activation-linear-float32":  # one view serves every method and both modes
        probabilities = softmax(logits(x))[[0, 1], [0, 2]]
        found = E.class_scores(tailed, x, [0, 2], logits=False)
        np.testing.assert_allclose(found, probabilities, atol=1e-5)
        np.testing.assert_allclose(E.saliency(tailed, x, 1), E.saliency(model, x, 1), atol=1e-6)


@pytest.mark.backend_independent
def test_outputs_that_cannot_be_linearized_are_refused_by_layer_name():
    model, _ = _linear_image_model()
    x = np.zeros((1, 4, 4, 2), "float32")
    for layer, kind in (
        (keras.layers.Lambda(lambda t: t * 2.0, name="times_two"), "Lambda"),
        (keras.layers.BatchNormalization(name="norm"), "BatchNormalization"),
    ):
        tailed = keras.Model(model.input, layer(model.output))
        message = (
            rf"output of model '{tailed.name}' cannot be linearized to explain logits: it goes "
            rf"through layer '{layer.name}' \({kind}\).*Pass logits=False"
        )
        with pytest.raises(ValueError, match=message):
            E.saliency(tailed, x, 0)
        assert E.saliency(tailed, x, 0, logits=False).shape == (1, 4, 4)


# ---------------------------------------------------------- deletion / insertion
def _reference_curve(logits, x, units, classes, steps, insert):
    """Deletion / insertion written out: rank pixels, zero (or restore) the top ones."""
    batch, n = units.shape
    curves = np.zeros((batch, steps + 1))
    for b in range(batch):
        order = sorted(range(n), key=lambda i: (-units[b, i], i))
        for k in range(steps + 1):
            top = order[: round(k * n / steps)]
            mask = np.zeros(n, bool)
            mask[top] = True
            mask = np.repeat(mask, x.shape[-1]).reshape(x.shape[1:])
            kept = np.where(mask, x[b], 0.0) if insert else np.where(mask, 0.0, x[b])
            curves[b, k] = softmax(logits(kept[None]))[0, classes[b]]
    return curves


def test_deletion_and_insertion_equal_their_definition():
    model, logits = _linear_image_model()
    x = RNG.uniform(size=(2, 4, 4, 2)).astype("float32")
    maps = RNG.uniform(size=(2, 4, 4)).astype("float32")
    for function, insert in ((M.deletion, False), (M.insertion, True)):
        result = function(model, x, [1, 2], maps, steps=4)
        expected = _reference_curve(logits, x, maps.reshape(2, -1), [1, 2], 4, insert)
        np.testing.assert_allclose(result["fractions"], [0, 0.25, 0.5, 0.75, 1.0])
        np.testing.assert_allclose(result["scores"], expected, atol=1e-5)
        np.testing.assert_allclose(result["auc"], np.trapezoid(expected, dx=0.25), atol=1e-5)


def test_road_imputes_a_removed_pixel_from_its_neighbours():
    model, logits = _linear_image_model()
    x = RNG.uniform(size=(1, 4, 4, 2)).astype("float32")
    maps = np.zeros((1, 4, 4), "float32")
    maps[0, 1, 2] = 1.0  # the one pixel removed at fraction 1/16
    result = M.road(model, x, 0, maps, fractions=(0.0, 1 / 16), noise=0.0)
    imputed = x[0].astype("float64").copy()
    # direct neighbours weigh 1/6, diagonal ones 1/12 (all eight exist for (1, 2))
    direct = x[0, 0, 2] + x[0, 2, 2] + x[0, 1, 1] + x[0, 1, 3]
    diagonal = x[0, 0, 1] + x[0, 0, 3] + x[0, 2, 1] + x[0, 2, 3]
    imputed[1, 2] = direct / 6.0 + diagonal / 12.0
    expected = softmax(logits(np.stack([x[0], imputed])))[:, 0]
    np.testing.assert_allclose(result["scores"][0], expected, atol=1e-5)
    assert M.road(model, x, 0, maps, order="lerf", noise=0.0)["scores"].shape == (1, 10)


def test_infidelity_and_max_sensitivity_equal_their_definition():
    model, logits = _linear_image_model()
    x = RNG.uniform(size=(2, 4, 4, 2)).astype("float32")
    classes = [0, 2]
    noise = RNG.normal(0.0, 0.1, (2, 3, 4, 4, 2))
    # For logits linear in x, the gradient predicts every change exactly: infidelity 0.
    gradient = E.input_x_gradient(model, x, classes) / x
    np.testing.assert_allclose(M.infidelity(model, x, classes, gradient, noise=noise), 0, atol=1e-9)
    maps = RNG.uniform(size=(2, 4, 4)).astype("float32")  # spread over the two channels
    spread = np.repeat(maps[..., None], 2, axis=-1)
    f = logits(x)[[0, 1], classes]
    f_perturbed = np.stack([logits(x[b] - noise[b])[:, classes[b]] for b in range(2)])
    dots = (noise * spread[:, None]).reshape(2, 3, -1).sum(-1)
    expected = ((dots - (f[:, None] - f_perturbed)) ** 2).mean(1)
    found = M.infidelity(model, x, classes, maps, noise=noise)
    np.testing.assert_allclose(found, expected, rtol=1e-4)
    beta = (dots * (f[:, None] - f_perturbed)).sum(1) / (dots**2).sum(1)
    normalized = ((beta[:, None] * dots - (f[:, None] - f_perturbed)) ** 2).mean(1)
    found = M.infidelity(model, x, classes, maps, noise=noise, normalize=True)
    np.testing.assert_allclose(found, normalized, rtol=1e-4)

    # input x gradient of a linear logit is x * w: its change under d is d * w
    uniform = RNG.uniform(-0.02, 0.02, (2, 3, 4, 4, 2))
    w = gradient.astype("float64")
    change = np.linalg.norm((uniform * w[:, None]).reshape(2, 3, -1), axis=-1)
    expected = (change / np.linalg.norm((x * w).reshape(2, -1), axis=-1)[:, None]).max(1)
    found = M.max_sensitivity(model, x, classes, "input_x_gradient", noise=uniform)
    np.testing.assert_allclose(found, expected, rtol=1e-4)


def test_occlusion_input_x_gradient_and_gradient_shap_of_a_linear_logit():
    model, _ = _linear_image_model()
    x = RNG.uniform(size=(2, 4, 4, 2)).astype("float32")
    w = E.input_x_gradient(model, x, 1) / x  # the logit's constant gradient
    np.testing.assert_allclose(w[0], w[1], atol=1e-6)
    # occlusion with 2x2 windows (all channels), no overlap: each value gets its window's
    # drop of the logit, sum over the window of w * x
    found = E.occlusion(model, x, 1, window=(2, 2))
    contributions = (w * x).reshape(2, 2, 2, 2, 2, 2).sum(axis=(2, 4, 5))  # (b, 2, 2)
    expected = np.repeat(np.repeat(contributions, 2, axis=1), 2, axis=2)[..., None]
    np.testing.assert_allclose(found, np.broadcast_to(expected, x.shape), atol=1e-5)
    # GradientSHAP of a linear logit: w * (x - baseline), whatever the draws
    baselines = RNG.uniform(size=(1, 4, 4, 2)).astype("float32")
    found = E.gradient_shap(model, x, 1, baselines=baselines, samples=3)
    np.testing.assert_allclose(found, w * (x - baselines), atol=1e-5)


def test_layercam_equals_numpy():
    image = keras.Input((6, 6, 2))
    conv = keras.layers.Conv2D(3, 3, padding="same", activation="relu", name="conv", **ZEROS)
    pooled = keras.layers.GlobalAveragePooling2D()(conv(image))
    dense = keras.layers.Dense(2, activation="softmax", name="out", **ZEROS)
    model = numpy_init(keras.Model(image, dense(pooled)))
    x = RNG.uniform(size=(2, 6, 6, 2)).astype("float32")
    # LayerCAM: relu(sum_c relu(dS/dA_c) A_c); through global average pooling with linear
    # logits, dS/dA_c(i, j) = w_c / 36 everywhere
    activations = keras.ops.convert_to_numpy(keras.Model(image, conv.output)(x))
    kernel = keras.ops.convert_to_numpy(dense.kernel)
    cams = [
        np.maximum((activations[b] * np.maximum(kernel[:, c] / 36.0, 0)).sum(-1), 0)
        for b, c in enumerate([0, 1])
    ]
    np.testing.assert_allclose(
        E.layercam(model, x, [0, 1]), kbm.explain._model.normalize(np.array(cams)), atol=1e-5
    )


# ------------------------------------------------------------------ randomisation
def _trained_digits_cnn():
    """A digits classifier whose read-out is trained (by least squares on the random
    convolution's features: deterministic, and the same on every backend)."""
    from keras_bigmodel.data import load_digits

    digits = load_digits()
    image = keras.Input((8, 8, 1))
    conv = keras.layers.Conv2D(8, 3, activation="relu", name="conv", **ZEROS)
    features = keras.layers.Flatten()(conv(image))
    dense = keras.layers.Dense(10, activation="softmax", name="out", **ZEROS)
    model = numpy_init(keras.Model(image, dense(features)))
    h = keras.ops.convert_to_numpy(keras.Model(image, features)(digits.x_train[:600]))
    h = np.concatenate([h, np.ones((len(h), 1))], axis=1).astype("float64")
    targets = 4.0 * np.eye(10)[digits.y_train[:600]] - 2.0
    solution = np.linalg.solve(h.T @ h + 1e-1 * np.eye(h.shape[1]), h.T @ targets)
    dense.set_weights([solution[:-1].astype("float32"), solution[-1].astype("float32")])
    x, y = digits.x_test[:4], digits.y_test[:4]
    assert (model.predict(x, verbose=0).argmax(-1) == y).mean() >= 0.75  # it learned
    return model, x, y


def test_randomisation_changes_the_maps_of_a_trained_model_and_fails_a_model_free_map():
    model, x, y = _trained_digits_cnn()
    before = [w.copy() for w in model.get_weights()]
    check = M.randomisation(model, x, y, "gradcam")
    assert check["layers"] == ["out", "conv"]  # from the top
    assert check["similarity"].shape == (2, 4)
    assert check["mean"][-1] < 0.5  # the maps of a random model are not those of the trained one
    for found, saved in zip(model.get_weights(), before):
        np.testing.assert_array_equal(found, saved)  # restored

    def the_input(model, inputs, class_index):  # an "explanation" that ignores the model
        return inputs[..., 0]

    control = M.randomisation(model, x, y, the_input)
    np.testing.assert_allclose(control["similarity"], 1.0, atol=1e-6)
    with pytest.raises(ValueError, match=r"`layers` must be a list of names .* \['out', 'conv'\]"):
        M.randomisation(model, x, y, "saliency", layers=["nope"])


def test_randomisation_applies_the_redraw_it_is_given():
    """Negating the read-out flips every input x gradient of a linear logit: Spearman
    -1 on the signed maps, 1 on their absolute values; the weights come back."""
    model, _ = _linear_image_model()
    x = RNG.uniform(0.5, 1.0, size=(2, 4, 4, 2)).astype("float32")
    before = [w.copy() for w in model.get_weights()]
    seen = []

    def negate(values, rng):
        seen.append([w.shape for w in values])
        assert isinstance(rng, np.random.Generator)
        return [-w for w in values]

    signed = M.randomisation(model, x, [0, 2], "input_x_gradient", redraw=negate, absolute=False)
    np.testing.assert_allclose(signed["similarity"], -1.0, atol=1e-6)
    assert seen == [[(32, 3), (3,)]] and signed["layers"] == ["out"]
    absolute = M.randomisation(model, x, [0, 2], "input_x_gradient", redraw=negate)
    np.testing.assert_allclose(absolute["similarity"], 1.0, atol=1e-6)
    for found, saved in zip(model.get_weights(), before):
        np.testing.assert_array_equal(found, saved)


# ----------------------------------------------------------------- pointing game
def test_pointing_game_counts_maxima_inside_the_region():
    maps = np.zeros((3, 4, 4))
    maps[0, 1, 1] = maps[1, 3, 3] = 1.0
    maps[2] = 0.5  # constant: its first position (0, 0) is the point
    regions = np.zeros((3, 4, 4), bool)
    regions[:, :2, :2] = True
    result = M.pointing_game(maps, regions)
    assert result["hits"].tolist() == [True, False, True] and result["hit_rate"] == 2 / 3
    assert M.pointing_game(np.repeat(maps[..., None], 3, -1), regions)["hit_rate"] == 2 / 3
    with pytest.raises(ValueError, match=r"`regions` must be boolean masks shaped like"):
        M.pointing_game(maps, regions.astype(int))
    with pytest.raises(ValueError, match="at least one position in every example"):
        M.pointing_game(maps, np.zeros((3, 4, 4), bool))


@pytest.mark.backend_independent
def test_metric_arguments_are_checked_with_their_names():
    model, _ = _linear_image_model()
    x = np.zeros((2, 4, 4, 2), "float32")
    maps = np.zeros((2, 4, 4), "float32")
    cases = [
        (M.deletion, (maps[:, :3],), {}, r"`attributions` must be finite and shaped like"),
        (M.deletion, (maps,), {"steps": 0}, r"`steps` must be a positive integer"),
        (M.insertion, (maps,), {"baseline": np.zeros(3)}, r"`baseline` must be a finite number"),
        (M.road, (maps,), {"fractions": (0.5, 0.2)}, r"`fractions` must be at least two"),
        (M.road, (maps,), {"order": "up"}, r"`order` must be one of \['morf', 'lerf'\]"),
        (M.infidelity, (maps,), {"noise": np.zeros((2, 2))}, r"`noise` must be finite"),
        (M.max_sensitivity, ("nope",), {}, r"`method` must be one of \['saliency'"),
        (E.occlusion, (), {"window": (5, 5)}, r"`window` must have one positive entry"),
    ]
    for function, args, kwargs, message in cases:
        with pytest.raises(ValueError, match=message):
            function(model, x, 0, *args, **kwargs)


def test_deeplift_adds_up_to_the_change_of_the_logit():
    """Summation to delta: exact for Dense / Conv / Activation networks (the rescale
    multipliers telescope)."""
    image = keras.Input((6, 6, 1))
    h = keras.layers.Conv2D(3, 3, activation="relu", **ZEROS)(image)
    h = keras.layers.Dense(4, activation="tanh", **ZEROS)(keras.layers.Flatten()(h))
    h = keras.layers.Activation("sigmoid")(keras.layers.Dense(4, **ZEROS)(h))
    model = numpy_init(keras.Model(image, keras.layers.Dense(3, activation="softmax", **ZEROS)(h)))
    x = RNG.uniform(size=(3, 6, 6, 1)).astype("float32")
    baseline = np.full((6, 6, 1), 0.5, "float32")
    found = E.deeplift(model, x, [0, 1, 2], baseline=baseline)
    gap = E.class_scores(model, x, [0, 1, 2]) - E.class_scores(
        model, np.broadcast_to(baseline, x.shape), [0, 1, 2]
    )
    np.testing.assert_allclose(found.sum(axis=(1, 2, 3)), gap, atol=1e-5)


@pytest.mark.backend_independent
def test_bad_arguments_name_the_type_and_shape_not_the_values():
    model, _ = _linear_image_model()
    x = np.full((2, 4, 4, 2), 0.123456, "float32")
    message = (
        r"`output` must be None, an output's name \(str\) or index \(int\); pick_method "
        r"looks at the model only and takes no inputs. Received: output=ndarray of shape "
        r"\(2, 4, 4, 2\) and dtype float32$"
    )
    with pytest.raises(TypeError, match=message):
        E.pick_method(model, x)
    with pytest.raises(ValueError, match=r"class_index=ndarray of shape \(2, 4, 4, 2\)") as error:
        E.saliency(model, x, x)
    assert "0.123" not in str(error.value)
