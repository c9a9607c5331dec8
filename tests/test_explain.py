"""kbm.explain against independent computations, on every backend: a one-pixel model,
finite differences of hand-built logits, Grad-CAM written out in NumPy, flat models
against the same weights nested or Sequential, and attention recomputed from the layer."""

import keras
import numpy as np
import pytest
from explain_helpers import ZEROS, build_tiny, inputs_for, numpy_init
from harness import to_numpy

import keras_bigmodel as kbm

RNG = np.random.default_rng(0)
E = kbm.explain


def _normalize(maps):
    """tf-keras-vis's normalization, written out."""
    axes = tuple(range(1, maps.ndim))
    low, high = maps.min(axes, keepdims=True), maps.max(axes, keepdims=True)
    return (maps - low) / (high - low + 1e-7)


def one_pixel_model(row=3, col=5):
    """A classifier that only looks at pixel (row, col)."""
    inputs = keras.Input((8, 8, 1))
    dense = keras.layers.Dense(2, activation="softmax", **ZEROS)
    model = keras.Model(inputs, dense(keras.layers.Flatten()(inputs)))
    kernel = np.zeros((64, 2), "float32")
    kernel[row * 8 + col] = [2.0, -2.0]
    dense.set_weights([kernel, np.zeros(2, "float32")])
    return model


def test_saliency_of_a_one_pixel_model_peaks_at_that_pixel():
    x = RNG.uniform(size=(4, 8, 8, 1)).astype("float32")
    maps = E.saliency(one_pixel_model(), x, class_index=0)
    assert maps.shape == (4, 8, 8) and maps.dtype == np.float32
    for m in maps:
        assert np.unravel_index(np.argmax(m), m.shape) == (3, 5)
        assert m[3, 5] == pytest.approx(1.0, abs=1e-6) and np.sum(m > 1e-6) == 1


def test_a_second_call_sees_the_new_weights():
    """Compiled explanations are reused (on JAX) with the weights of the moment."""
    model = one_pixel_model(3, 5)
    x = RNG.uniform(size=(2, 8, 8, 1)).astype("float32")
    first = E.saliency(model, x, class_index=0)
    model.set_weights(one_pixel_model(6, 1).get_weights())
    second = E.saliency(model, x, class_index=0)
    assert np.unravel_index(np.argmax(first[0]), (8, 8)) == (3, 5)
    assert np.unravel_index(np.argmax(second[0]), (8, 8)) == (6, 1)


def test_subclassed_models_are_explained_as_they_are():
    class Subclassed(keras.Model):
        def __init__(self):
            super().__init__()
            self.hidden = keras.layers.Dense(4, activation="tanh", **ZEROS)
            self.out = keras.layers.Dense(3, activation="softmax", **ZEROS)

        def call(self, x):
            return self.out(self.hidden(x))

    model = Subclassed()
    x = RNG.uniform(size=(2, 5)).astype("float32")
    model(x)
    numpy_init(model)
    with pytest.raises(ValueError, match=r"is subclassed: .* Pass logits=False"):
        E.saliency(model, x, 1)
    assert E.saliency(model, x, 1, logits=False).shape == (2, 5)
    attributions = E.integrated_gradients(model, x, 1, logits=False, steps=16)
    gap = E.class_scores(model, x, 1, logits=False) - E.class_scores(
        model, np.zeros_like(x), 1, logits=False
    )
    np.testing.assert_allclose(attributions.sum(axis=1), gap, rtol=1e-3, atol=1e-6)
    with pytest.raises(ValueError, match=r"is subclassed: a class activation map"):
        E.gradcam(model, x, 1, logits=False)


def _softmax_and_logits_models():
    inputs = keras.Input((4, 3))
    hidden = keras.layers.Dense(6, activation="tanh", **ZEROS)(keras.layers.Flatten()(inputs))
    model = keras.Model(
        inputs, keras.layers.Dense(3, activation="softmax", name="out", **ZEROS)(hidden)
    )
    logits = keras.Model(inputs, keras.layers.Dense(3, name="out_linear", **ZEROS)(hidden))
    numpy_init(model)
    logits.get_layer("out_linear").set_weights(model.get_layer("out").get_weights())
    return model, logits


def test_gradients_equal_finite_differences_of_the_logits_and_leave_the_model_alone():
    model, logits_model = _softmax_and_logits_models()
    x = RNG.uniform(size=(2, 4, 3))
    before = to_numpy(model(x.astype("float32")))
    nodes = [len(layer._inbound_nodes) for layer in model.layers]
    eps = 1e-2
    grads = np.zeros_like(x)
    for idx in np.ndindex(x.shape[1:]):
        up, down = x.copy(), x.copy()
        up[(slice(None),) + idx] += eps
        down[(slice(None),) + idx] -= eps
        f_up = to_numpy(logits_model(up.astype("float32")))[:, 2]
        f_down = to_numpy(logits_model(down.astype("float32")))[:, 2]
        grads[(slice(None),) + idx] = (f_up - f_down) / (2 * eps)
    # a (time, features) input keeps both axes; the score is the class-2 logit
    maps = E.saliency(model, x.astype("float32"), class_index=2)
    np.testing.assert_allclose(maps, _normalize(np.abs(grads)), atol=2e-3)
    np.testing.assert_allclose(
        E.class_scores(model, x.astype("float32"), 2),
        to_numpy(logits_model(x.astype("float32")))[:, 2],
        rtol=1e-5,
        atol=1e-6,
    )
    # the probabilities, when asked for
    probabilities = E.class_scores(model, x.astype("float32"), 2, logits=False)
    np.testing.assert_allclose(probabilities, before[:, 2], rtol=1e-5)
    assert model.get_layer("out").activation is keras.activations.softmax
    assert [len(layer._inbound_nodes) for layer in model.layers] == nodes  # no node added
    np.testing.assert_array_equal(to_numpy(model(x.astype("float32"))), before)


def _cam_model():
    inputs = keras.Input((6, 6, 2))
    conv = keras.layers.Conv2D(3, 3, padding="same", activation="relu", name="conv", **ZEROS)(
        inputs
    )
    pooled = keras.layers.GlobalAveragePooling2D()(conv)
    model = keras.Model(
        inputs, keras.layers.Dense(4, activation="softmax", name="out", **ZEROS)(pooled)
    )
    return numpy_init(model)


def test_gradcam_and_gradcam_plus_plus_equal_numpy():
    model = _cam_model()
    x = RNG.uniform(size=(3, 6, 6, 2)).astype("float32")
    classes = [0, 1, 3]
    activations = to_numpy(keras.Model(model.input, model.get_layer("conv").output)(x))
    kernel = keras.ops.convert_to_numpy(model.get_layer("out").kernel)
    cam, plus = [], []
    for b, c in enumerate(classes):
        # linear logits through global average pooling: d logit / d A_k(i, j) = w_kc / 36
        grad = np.broadcast_to(kernel[:, c] / 36.0, activations[b].shape)
        cam.append(np.maximum((activations[b] * grad.mean((0, 1))).sum(-1), 0))
        # Grad-CAM++ (Chattopadhay et al., eq. 19) with that constant gradient
        g2, g3 = grad**2, grad**3
        alpha = g2 / (2 * g2 + g3 * activations[b].sum((0, 1)) + (g2 == 0))
        alpha = alpha / alpha.sum((0, 1))
        weights = (np.maximum(grad, 0) * alpha).sum((0, 1))
        plus.append(np.maximum((activations[b] * weights).sum(-1), 0))
    np.testing.assert_allclose(E.gradcam(model, x, classes), _normalize(np.array(cam)), atol=1e-5)
    np.testing.assert_allclose(
        E.gradcam_plus_plus(model, x, classes), _normalize(np.array(plus)), atol=1e-5
    )


@pytest.mark.parametrize("method", ["gradcam", "gradcam++", "scorecam"])
def test_every_cam_method_finds_the_evidence(method):
    """A bright square in the bottom right is the only evidence for class 1."""
    inputs = keras.Input((8, 8, 1))
    conv = keras.layers.Conv2D(1, 1, activation="relu", name="conv", **ZEROS)
    pooled = keras.layers.GlobalAveragePooling2D()(conv(inputs))
    dense = keras.layers.Dense(2, activation="softmax", **ZEROS)
    model = keras.Model(inputs, dense(pooled))
    conv.set_weights([np.ones((1, 1, 1, 1), "float32"), np.zeros(1, "float32")])
    dense.set_weights([np.array([[-1.0, 1.0]], "float32"), np.zeros(2, "float32")])
    x = np.zeros((2, 8, 8, 1), "float32")
    x[:, 5:, 5:] = 1.0
    x[1, 0, 0] = 0.2
    cam = E.gradcam(model, x, class_index=1, method=method)
    assert cam.shape == (2, 8, 8) and cam.min() >= 0 and cam.max() <= 1
    for m in cam:
        assert m[5:, 5:].mean() > 0.9 and m[:4, :4].mean() < 0.2


def test_nested_and_sequential_models_give_the_maps_of_the_flat_model():
    flat_in = keras.Input((8, 8, 1), name="image")
    conv = keras.layers.Conv2D(4, 3, activation="relu", name="conv", **ZEROS)
    pool = keras.layers.GlobalAveragePooling2D()
    dense = keras.layers.Dense(3, activation="softmax", name="classifier", **ZEROS)
    flat = numpy_init(keras.Model(flat_in, dense(pool(conv(flat_in)))), seed=1)
    # the same layers, as a Sequential backbone and a functional head inside a model
    backbone = keras.Sequential([keras.Input((8, 8, 1)), conv], name="backbone")
    head_in = keras.Input(conv.output.shape[1:])
    head = keras.Model(head_in, dense(pool(head_in)), name="head")
    outer_in = keras.Input((8, 8, 1), name="image")
    nested = keras.Model(outer_in, head(backbone(outer_in)), name="nested")
    sequential = keras.Sequential([keras.Input((8, 8, 1)), conv, pool, dense])
    x = RNG.uniform(size=(2, 8, 8, 1)).astype("float32")
    for method in (E.saliency, E.gradcam):
        expected = method(flat, x, [0, 2])
        np.testing.assert_allclose(method(nested, x, [0, 2]), expected, atol=1e-5)
        np.testing.assert_allclose(method(sequential, x, [0, 2]), expected, atol=1e-5)
    # linearized inside the nested head: logits, not probabilities
    np.testing.assert_allclose(
        E.class_scores(nested, x, 1), E.class_scores(flat, x, 1), rtol=1e-5, atol=1e-6
    )
    assert not np.allclose(E.class_scores(nested, x, 1), E.class_scores(nested, x, 1, logits=False))
    assert [c.name for c in E.conv_layers(nested)] == ["conv"]


def test_outputs_by_name_and_index():
    model = build_tiny("multitask")
    (x,) = inputs_for(model)
    one = E.saliency(model, x, class_index=1, output="task1")
    two = E.saliency(model, x, class_index=1, output="task2")
    assert one.shape == two.shape == (2, 6) and not np.allclose(one, two)
    # the head's logits: the output Dense of the TaskHead, without its softmax
    head = model.get_layer("heads").heads["task2"].output_dense
    trunk = to_numpy(keras.Model(model.input, model.get_layer("trunk_0").output)(x))  # relu
    kernel, bias = (keras.ops.convert_to_numpy(w) for w in (head.kernel, head.bias))
    np.testing.assert_allclose(
        E.class_scores(model, x, 1, output="task2"), (trunk @ kernel + bias)[:, 1], rtol=1e-5
    )
    inputs = keras.Input((5,))
    listed = keras.Model(
        inputs,
        [
            keras.layers.Dense(2, activation="softmax", **ZEROS)(inputs),
            keras.layers.Dense(3, **ZEROS)(inputs),
        ],
    )
    numpy_init(listed)
    z = RNG.uniform(size=(2, 5)).astype("float32")
    assert E.integrated_gradients(listed, z, 2, output=1, steps=4).shape == (2, 5)
    with pytest.raises(ValueError, match=r"has outputs \['task1', 'task2'\]; pick one"):
        E.saliency(model, x, class_index=1)
    with pytest.raises(ValueError, match=r"`output` must be one of \['task1', 'task2'\]"):
        E.saliency(model, x, class_index=1, output="task3")
    with pytest.raises(ValueError, match=r"`class_index` must be an integer in \[0, 5\)"):
        E.saliency(model, x, class_index=7, output="task2")
    with pytest.raises(
        ValueError, match=r"has 2 outputs; pick one with output=<index> in \[0, 2\)"
    ):
        E.saliency(listed, z, 0, output=2)


def test_several_inputs_give_one_map_each_keyed_by_name():
    model = build_tiny("crossmodal")
    image, sequence = inputs_for(model)
    x = {"image": image, "sequence": sequence}
    maps = E.saliency(model, x, class_index=[1, 9])
    assert set(maps) == {"image", "sequence"}
    assert maps["image"].shape == (2, 8, 8) and maps["sequence"].shape == (2, 5, 3)
    # the same inputs as a list, in the order of model.inputs
    listed = E.saliency(model, [image, sequence], class_index=[1, 9])
    np.testing.assert_array_equal(listed["image"], maps["image"])
    assert set(E.gradcam(model, x, class_index=[1, 9])) == {"image"}
    fusion = build_tiny("fusion")
    pair = inputs_for(fusion)
    maps = E.saliency(fusion, pair, class_index=1)
    # output 1 is branch 2's logit: the first input has no influence on it
    assert set(maps) == {"input_1", "input_2"} and np.all(maps["input_1"] == 0)
    assert maps["input_2"].max() == pytest.approx(1.0, abs=1e-4)


def test_argument_errors_name_the_argument_and_value():
    model = _cam_model()
    x = RNG.uniform(size=(2, 6, 6, 2)).astype("float32")
    cases = [
        (
            ValueError,
            r"`method` must be one of .*Received: method='lime'",
            E.gradcam,
            (model, x, 0),
            {"method": "lime"},
        ),
        (
            ValueError,
            r"`layer` must name a convolutional layer .*\['conv'\]. Received: layer='out'",
            E.gradcam,
            (model, x, 0),
            {"layer": "out"},
        ),
        (
            ValueError,
            r"Input '.*' must have shape \(batch,\) \+ \(6, 6, 2\)",
            E.saliency,
            (model, x[..., :1], 0),
            {},
        ),
        (ValueError, r"list of 2 of them", E.saliency, (model, x, [0, 1, 2]), {}),
        (
            ValueError,
            r"`class_index` must be an integer in \[0, 4\)",
            E.saliency,
            (model, x, True),
            {},
        ),
        (
            ValueError,
            r"`steps` must be a positive integer. Received: steps=0",
            E.integrated_gradients,
            (model, x, 0),
            {"steps": 0},
        ),
        (
            ValueError,
            r"`baseline` for input '.*' must be a finite number or array of shape",
            E.integrated_gradients,
            (model, x, 0),
            {"baseline": np.zeros((3, 3))},
        ),
        (
            ValueError,
            r"`smooth_samples` must be a non-negative integer. Received: smooth_samples=-1",
            E.saliency,
            (model, x, 0),
            {"smooth_samples": -1},
        ),
        (
            ValueError,
            r"`samples` must be a positive integer",
            E.smoothgrad,
            (model, x, 0),
            {"samples": 0},
        ),
        (ValueError, r"contains NaN", E.saliency, (model, np.full_like(x, np.nan), 0), {}),
        (
            ValueError,
            r"`logits` must be a bool. Received: logits='yes'",
            E.saliency,
            (model, x, 0),
            {"logits": "yes"},
        ),
        (
            TypeError,
            r"`model` must be a keras.Model. Received: model of type str",
            E.saliency,
            ("cnn", x, 0),
            {},
        ),
        (TypeError, r"must be numeric", E.saliency, (model, np.array([["a"]]), 0), {}),
        (
            ValueError,
            "no convolutional layer",
            E.gradcam,
            (one_pixel_model(), np.zeros((1, 8, 8, 1), "float32"), 0),
            {},
        ),
    ]
    for error, message, function, args, kwargs in cases:
        with pytest.raises(error, match=message):
            function(*args, **kwargs)


def test_attention_scores_equal_the_layers_own_scores():
    from keras_bigmodel.layers import AttentionLayer

    inputs = keras.Input((None, 3))
    masked = keras.layers.Masking(0.0)(inputs)
    attention = AttentionLayer(4, name="attention", **ZEROS)
    model = numpy_init(keras.Model(inputs, keras.layers.Dense(2, **ZEROS)(attention(masked))))
    x = RNG.uniform(size=(3, 8, 3)).astype("float32")
    x[1, 5:] = 0.0
    scores = E.attention_scores(model, x)
    mask = np.any(x != 0.0, axis=-1)
    _, expected = attention(x, mask=mask, return_attention_scores=True)
    np.testing.assert_allclose(scores, to_numpy(expected), atol=1e-6)
    np.testing.assert_allclose(scores.sum(1), 1.0, atol=1e-6)
    assert np.all(scores[1, 5:] == 0)


def test_attention_scores_find_nested_layers_and_name_them():
    model = build_tiny("crossmodal", fusion_mode="attention")
    x = {"image": np.zeros((2, 8, 8, 1), "float32"), "sequence": np.ones((2, 5, 3), "float32")}
    fused = E.attention_scores(model, x, layer="attention")  # inside the Fusion layer
    assert fused.shape == (2, 2)  # two branches: image and sequence
    with pytest.raises(
        ValueError,
        match=r"several AttentionLayers \['sequence_attention', "
        r"'attention'\]",
    ):
        E.attention_scores(model, x)
    with pytest.raises(ValueError, match=r"`layer` must be one of"):
        E.attention_scores(model, x, layer="nope")
    with pytest.raises(ValueError, match="has no AttentionLayer"):
        E.attention_scores(_cam_model(), np.zeros((1, 6, 6, 2), "float32"))


@pytest.mark.tensorflow_only  # the wiring of explain() and the CLI; the methods run everywhere
def test_explain_and_the_cli_offer_the_methods_users_compare(tmp_path):
    """explain() draws each of the newer methods; on the one-pixel model every one of
    them puts all the evidence on that pixel, and LayerCAM finds the bright square."""
    import keras_bigmodel_cli as cli

    model = one_pixel_model(row=3, col=5)
    x = RNG.uniform(0.5, 1.0, size=(2, 8, 8, 1)).astype("float32")
    for method in ("input_x_gradient", "gradient_shap", "deeplift", "occlusion"):
        done = E.explain(model, x, tmp_path / f"{method}.png", method=method, class_index=0)
        assert done["method"] == method and (tmp_path / f"{method}.png").stat().st_size > 0
        maps = done["maps"]
        assert maps.shape == (2, 8, 8)
        np.testing.assert_allclose(maps[:, 3, 5], 1.0, atol=1e-6)
        np.testing.assert_allclose(np.delete(maps.reshape(2, -1), 3 * 8 + 5, axis=1), 0, atol=1e-6)

    inputs = keras.Input((8, 8, 1))
    conv = keras.layers.Conv2D(1, 1, activation="relu", name="conv", **ZEROS)
    dense = keras.layers.Dense(2, activation="softmax", **ZEROS)
    cam_model = keras.Model(inputs, dense(keras.layers.GlobalAveragePooling2D()(conv(inputs))))
    conv.set_weights([np.ones((1, 1, 1, 1), "float32"), np.zeros(1, "float32")])
    dense.set_weights([np.array([[-1.0, 1.0]], "float32"), np.zeros(2, "float32")])
    square = np.zeros((2, 8, 8, 1), "float32")
    square[:, 5:, 5:] = 1.0
    done = E.explain(cam_model, square, tmp_path / "layercam.png", method="layercam", class_index=1)
    np.testing.assert_allclose(done["maps"], E.layercam(cam_model, square, 1), atol=1e-6)
    assert all(m[5:, 5:].mean() > 0.9 and m[:4, :4].max() < 0.1 for m in done["maps"])

    for method in ("input_x_gradient", "gradient_shap", "deeplift", "occlusion", "layercam"):
        assert method in E.METHODS and method in E.METHOD_LABELS
        args = cli.build_parser().parse_args(
            ["explain", "m.keras", "--data", "digits", "--out", "o.png", "--method", method]
        )
        assert args.method == method
    with pytest.raises(ValueError, match=r"`method` must be one of \['auto', 'saliency'"):
        E.explain(model, x, tmp_path / "x.png", method="lrp")
