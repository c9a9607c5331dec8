"""kbm.explain against independent computations: a one-pixel model, finite differences,
Grad-CAM written out in NumPy, and attention weights recomputed from the layer."""

import keras
import numpy as np
import pytest
from PIL import Image

import keras_bigmodel as kbm
import zoo
from harness import to_numpy
from keras_bigmodel.preconditions import UnsupportedBackendError

RNG = np.random.default_rng(0)


def _normalize(maps):
    flat = maps.reshape(len(maps), -1)
    lo, hi = flat.min(1, keepdims=True), flat.max(1, keepdims=True)
    span = np.where(hi > lo, hi - lo, 1.0)  # a constant map normalizes to zeros
    return ((flat - lo) / span).reshape(maps.shape)


def one_pixel_model(row=3, col=5):
    """A classifier that only looks at pixel (row, col)."""
    inputs = keras.Input((8, 8, 1))
    dense = keras.layers.Dense(2, activation="softmax")
    model = keras.Model(inputs, dense(keras.layers.Flatten()(inputs)))
    kernel = np.zeros((64, 2), "float32")
    kernel[row * 8 + col] = [2.0, -2.0]
    dense.set_weights([kernel, np.zeros(2, "float32")])
    return model


@pytest.mark.tensorflow_only
def test_saliency_of_a_one_pixel_model_peaks_at_that_pixel():
    x = RNG.uniform(size=(4, 8, 8, 1)).astype("float32")
    maps = kbm.explain.saliency(one_pixel_model(), x, class_index=0)
    assert maps.shape == (4, 8, 8)
    for m in maps:
        assert np.unravel_index(np.argmax(m), m.shape) == (3, 5)
        assert m[3, 5] == pytest.approx(1.0) and np.sum(m > 1e-6) == 1


@pytest.mark.tensorflow_only
def test_saliency_equals_finite_differences_of_the_logits():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4, 4, 2))
    hidden = keras.layers.Dense(8, activation="tanh")(keras.layers.Flatten()(inputs))
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="out")(hidden))
    logits_model = keras.Model(inputs, keras.layers.Dense(3, name="out_linear")(hidden))
    logits_model.get_layer("out_linear").set_weights(model.get_layer("out").get_weights())
    x = RNG.uniform(size=(2, 4, 4, 2)).astype("float64")
    eps = 1e-3
    grads = np.zeros_like(x)
    for idx in np.ndindex(x.shape[1:]):
        for b in range(2):
            up, down = x.copy(), x.copy()
            up[(b,) + idx] += eps
            down[(b,) + idx] -= eps
            f = lambda z: to_numpy(logits_model(z.astype("float32")))[b, 2]  # noqa: E731
            grads[(b,) + idx] = (f(up) - f(down)) / (2 * eps)
    expected = _normalize(np.abs(grads).max(axis=-1))
    maps = kbm.explain.saliency(model, x.astype("float32"), class_index=2)
    np.testing.assert_allclose(maps, expected, atol=2e-2)
    assert model.get_layer("out").activation is keras.activations.softmax  # untouched


def _cam_model():
    inputs = keras.Input((6, 6, 2))
    conv = keras.layers.Conv2D(3, 3, padding="same", activation="relu", name="conv")(inputs)
    pooled = keras.layers.GlobalAveragePooling2D()(conv)
    return keras.Model(inputs, keras.layers.Dense(4, activation="softmax", name="out")(pooled))


@pytest.mark.tensorflow_only
def test_gradcam_equals_numpy_grad_cam():
    keras.utils.set_random_seed(0)
    model = _cam_model()
    x = RNG.uniform(size=(3, 6, 6, 2)).astype("float32")
    cam = kbm.explain.gradcam(model, x, class_index=[0, 1, 3])
    activations = to_numpy(keras.Model(model.input, model.get_layer("conv").output)(x))
    kernel = keras.ops.convert_to_numpy(model.get_layer("out").kernel)
    expected = []
    for b, c in enumerate([0, 1, 3]):
        # linear logits through global average pooling: d score / d A_k(i,j) = w_kc / (H W)
        alpha = kernel[:, c] / 36.0
        expected.append(np.maximum((activations[b] * alpha).sum(-1), 0))
    np.testing.assert_allclose(cam, _normalize(np.array(expected)), atol=1e-4)


@pytest.mark.tensorflow_only
@pytest.mark.parametrize("method", ["gradcam", "gradcam++", "scorecam"])
def test_every_cam_method_finds_the_evidence(method):
    """A bright square in the bottom right is the only evidence for class 1."""
    inputs = keras.Input((8, 8, 1))
    conv = keras.layers.Conv2D(1, 1, activation="relu", name="conv")
    pooled = keras.layers.GlobalAveragePooling2D()(conv(inputs))
    dense = keras.layers.Dense(2, activation="softmax")
    model = keras.Model(inputs, dense(pooled))
    conv.set_weights([np.ones((1, 1, 1, 1), "float32"), np.zeros(1, "float32")])
    dense.set_weights([np.array([[-1.0, 1.0]], "float32"), np.zeros(2, "float32")])
    x = np.zeros((2, 8, 8, 1), "float32")
    x[:, 5:, 5:] = 1.0
    x[1, 0, 0] = 0.2
    cam = kbm.explain.gradcam(model, x, class_index=1, method=method)
    assert cam.shape == (2, 8, 8) and cam.min() >= 0 and cam.max() <= 1
    for m in cam:
        assert m[5:, 5:].mean() > 0.9 and m[:4, :4].mean() < 0.2


@pytest.mark.tensorflow_only
def test_multi_output_models_are_explained_per_head():
    model = zoo.build("multitask")
    x = RNG.uniform(size=(2, 64)).astype("float32")
    one = kbm.explain.saliency(model, x, class_index=1, output="task1")
    two = kbm.explain.saliency(model, x, class_index=1, output="task2")
    assert one.shape == two.shape == (2, 64)
    assert not np.allclose(one, two)
    with pytest.raises(ValueError, match=r"has outputs \['task1', 'task2'\]; pick one"):
        kbm.explain.saliency(model, x, class_index=1)
    with pytest.raises(ValueError, match=r"`output` must be one of"):
        kbm.explain.saliency(model, x, class_index=1, output="task3")
    with pytest.raises(ValueError, match=r"`class_index` must be an integer in \[0, 5\)"):
        kbm.explain.saliency(model, x, class_index=7, output="task2")


@pytest.mark.tensorflow_only
def test_crossmodal_and_sequential_models():
    model = zoo.build("crossmodal", image_shape=(16, 16, 1))
    x = {"image": RNG.uniform(size=(2, 16, 16, 1)).astype("float32"),
         "sequence": RNG.uniform(size=(2, 16, 8)).astype("float32")}
    maps = kbm.explain.saliency(model, x, class_index=3)
    assert maps["image"].shape == (2, 16, 16) and maps["sequence"].shape == (2, 16)
    assert kbm.explain.gradcam(model, x, class_index=3)["image"].shape == (2, 16, 16)
    seq = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(2, 3, name="c"),
                            keras.layers.Flatten(), keras.layers.Dense(3, activation="softmax")])
    assert kbm.explain.gradcam(seq, np.ones((1, 8, 8, 1), "float32"), 0).shape == (1, 8, 8)


@pytest.mark.tensorflow_only
def test_explain_argument_errors():
    model = _cam_model()
    x = RNG.uniform(size=(2, 6, 6, 2)).astype("float32")
    with pytest.raises(ValueError, match=r"`method` must be one of"):
        kbm.explain.gradcam(model, x, 0, method="lime")
    with pytest.raises(ValueError, match=r"`layer` must name an image layer .*\['conv'\]"):
        kbm.explain.gradcam(model, x, 0, layer="out")
    with pytest.raises(ValueError, match=r"Input '.*' must have shape \(batch,\) \+ \(6, 6, 2\)"):
        kbm.explain.saliency(model, x[..., :1], 0)
    with pytest.raises(ValueError, match=r"list of 2 of them"):
        kbm.explain.saliency(model, x, [0, 1, 2])
    with pytest.raises(ValueError, match="no 4-D"):
        kbm.explain.gradcam(zoo.build("rnn"), np.zeros((1, 8, 8), "float32"), 0)


@pytest.mark.not_tensorflow
def test_tf_keras_vis_features_say_they_need_tensorflow():
    with pytest.raises(UnsupportedBackendError, match="kbm.explain.saliency needs the TensorFlow"):
        kbm.explain.saliency(one_pixel_model(), np.zeros((1, 8, 8, 1), "float32"), 0)


def test_attention_scores_equal_the_layers_own_scores():
    model = zoo.build("attention_rnn", input_shape=(None, 8), mask_value=0.0)
    x = RNG.uniform(size=(3, 8, 8)).astype("float32")
    x[1, 5:] = 0.0
    scores = kbm.explain.attention_scores(model, x)
    encoder = keras.Model(model.input, model.get_layer("encoder").output)
    hidden = encoder(x)
    mask = np.any(x != 0.0, axis=-1)
    _, expected = model.get_layer("attention")(hidden, mask=mask, return_attention_scores=True)
    np.testing.assert_allclose(scores, to_numpy(expected), atol=1e-6)
    np.testing.assert_allclose(scores.sum(1), 1.0, atol=1e-6)
    assert np.all(scores[1, 5:] == 0)


def test_attention_scores_finds_nested_layers_and_names_them():
    model = zoo.build("crossmodal", fusion_mode="attention", image_shape=(8, 8, 1))
    x = {"image": np.zeros((2, 8, 8, 1), "float32"), "sequence": np.ones((2, 16, 8), "float32")}
    fused = kbm.explain.attention_scores(model, x, layer="attention")  # inside the Fusion layer
    assert fused.shape == (2, 2)  # two branches: image and sequence
    with pytest.raises(ValueError, match=r"several AttentionLayers \['sequence_attention', 'attention'\]"):
        kbm.explain.attention_scores(model, x)
    with pytest.raises(ValueError, match="has no AttentionLayer"):
        kbm.explain.attention_scores(zoo.build("rnn"), np.zeros((1, 8, 8), "float32"))


def test_pngs_are_written(tmp_path):
    heat = RNG.uniform(size=(3, 8, 8))
    path = kbm.explain.save_heatmap(heat, tmp_path / "h.png", images=RNG.uniform(size=(3, 8, 8, 1)),
                                    titles=["a", "b", "c"])
    with Image.open(path) as img:
        assert img.format == "PNG" and img.size[0] > 100
    path = kbm.explain.save_attention_plot(RNG.dirichlet(np.ones(8), size=2), tmp_path / "a.png",
                                           sequences=RNG.uniform(size=(2, 8, 8)))
    with Image.open(path) as img:
        assert img.format == "PNG"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "h.png"]
    with pytest.raises(ValueError, match=r"`path` must end in '.png'"):
        kbm.explain.save_heatmap(heat, tmp_path / "h.jpg")
    with pytest.raises(ValueError, match=r"`heatmaps` must be finite"):
        kbm.explain.save_heatmap(np.full((2, 2), np.nan), tmp_path / "n.png")
    with pytest.raises(ValueError, match=r"`scores` must be finite, of shape \(batch, time\)"):
        kbm.explain.save_attention_plot(np.ones(3), tmp_path / "s.png")
    with pytest.raises(ValueError, match=r"`images` must match"):
        kbm.explain.save_heatmap(heat, tmp_path / "m.png", images=np.ones((2, 8, 8)))
