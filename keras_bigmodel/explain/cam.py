"""Class activation maps: Grad-CAM, Grad-CAM++ and Score-CAM, on every backend.

A CAM weighs the channels of a convolutional layer's output by how much the explained
class's logit depends on them and sums them: where in the image (or along the
sequence, for `Conv1D`) the evidence lies. The activation and its gradient come from
one replay of the model with a probe on that layer (see `ModelView`); the rest is the
NumPy arithmetic of tf-keras-vis, so the maps equal tf-keras-vis's on TensorFlow and
each other's across backends.
"""

from __future__ import annotations

import keras
import numpy as np

from keras_bigmodel import _compat
from keras_bigmodel import validation as v
from keras_bigmodel.explain._gradients import evaluate, value_and_gradients
from keras_bigmodel.explain._model import ModelView, Probe, normalize

__all__ = ["CAM_METHODS", "conv_layers", "gradcam", "gradcam_plus_plus", "layercam", "scorecam"]

CAM_METHODS = ("gradcam", "gradcam++", "layercam", "scorecam")

_CONV_TYPES = tuple(
    getattr(keras.layers, name)
    for name in (
        "Conv1D",
        "Conv2D",
        "Conv3D",
        "DepthwiseConv1D",
        "DepthwiseConv2D",
        "SeparableConv1D",
        "SeparableConv2D",
    )
    if hasattr(keras.layers, name)
)


def conv_layers(model: keras.Model) -> list:
    """The model's convolutional layers (nested ones included): where a CAM can look.

    Args:
        model: A `keras.Model`.

    Returns:
        The `Conv1D`/`Conv2D`/`Conv3D` (depthwise and separable too) layers, in the
        order Keras tracks them; the last is the default layer of `gradcam`.

    Example:

    ```python
    [layer.name for layer in kbm.explain.conv_layers(zoo.build("cnn"))]   # ['conv']
    ```
    """
    v.check_model(model)
    return [
        layer
        for layer in _compat.all_layers(model, include_self=False)
        if isinstance(layer, _CONV_TYPES)
    ]


def _target_layer(model, view: ModelView, layer):
    convs = conv_layers(model)
    names = [c.name for c in convs]
    if layer is None:
        if not convs:
            raise ValueError(
                f"Model '{model.name}' has no convolutional layer to compute a class activation "
                f"map on; use saliency() or integrated_gradients() instead"
            )
        return convs[-1]
    if isinstance(layer, keras.layers.Layer):
        matches = [c for c in convs if c is layer]
    elif isinstance(layer, str):
        matches = [c for c in convs if c.name == layer]
    else:
        matches = []
    if not matches:
        raise ValueError(
            f"`layer` must name a convolutional layer of the model, one of {names}. "
            f"Received: layer={getattr(layer, 'name', layer)!r}"
        )
    return matches[0]


def _activation(view, arrays, layer) -> np.ndarray:
    """The layer's output in one forward pass."""

    def fn(tensors):
        probes = {id(layer): Probe(layer)}
        view.run(tensors, probes)
        return probes[id(layer)].activation()

    return evaluate(fn, arrays, cache=view.cache_key("activation", id(layer)))


def _activation_and_gradient(view, arrays, classes, layer):
    shape = _output_shape(view, arrays, layer)

    def fn(leaves, constants, chunk_classes):
        probes = {id(layer): Probe(layer, offset=leaves[0])}
        return view.scores(constants, chunk_classes, probes), probes[id(layer)].activation()

    scores, activation, grads = value_and_gradients(
        fn,
        [np.zeros(shape, "float32")],
        args=(arrays, classes),
        cache=view.cache_key("cam", id(layer)),
    )
    return scores, activation, grads[0]


def _output_shape(view, arrays, layer) -> tuple:
    try:
        shape = tuple(layer.output.shape[1:])
    except (AttributeError, ValueError):
        shape = (None,)
    if all(d is not None for d in shape):
        return (len(arrays[0]),) + shape
    return _activation(view, arrays, layer).shape


def _expand(view: ModelView, cam: np.ndarray):
    """Resizes the CAM to each input of matching rank, as tf-keras-vis does (linear
    interpolation with scipy.ndimage.zoom), and normalizes it."""
    from scipy.ndimage import zoom

    spatial = cam.ndim - 1
    maps = [None] * len(view.input_names)
    keep = []
    for i, shape in enumerate(view.input_shapes):
        if shape is None or len(shape) != spatial + 1 or any(d is None for d in shape[:-1]):
            continue
        factors = (1.0,) + tuple(float(t) / float(f) for f, t in zip(cam.shape[1:], shape[:-1]))
        maps[i] = normalize(zoom(cam, factors, order=1))
        keep.append(i)
    if not keep:  # no input has the layer's layout: the map stays at the layer's resolution
        return normalize(cam)
    return view.by_input(maps, keep=keep)


def gradcam(
    model: keras.Model,
    inputs,
    class_index,
    layer: str | keras.layers.Layer | None = None,
    output: str | int | None = None,
    method: str = "gradcam",
    *,
    logits: bool = True,
):
    """Class activation maps: where in the image the evidence for a class lies.

    Grad-CAM weighs each channel of a convolutional layer's output by the mean gradient
    of the class's logit with respect to it; Grad-CAM++ weighs positive gradients by
    their second-order share; Score-CAM masks the input with each upsampled channel and
    weighs the channel by the class probability that remains. The map is passed
    through a ReLU, resized to the input and normalized to [0, 1]. Runs on TensorFlow,
    JAX and PyTorch.

    Args:
        model: A functional, Sequential or nested `keras.Model` with a convolutional
            layer (`conv_layers(model)`).
        inputs: A batch: an array, or a list / dict (by input name) for several inputs.
        class_index: One integer for all examples or one per example.
        layer: The convolutional layer (name or layer object); defaults to the last one.
        output: For several outputs, the output's name (dict) or index (list).
        method: `"gradcam"`, `"gradcam++"`, `"layercam"` or `"scorecam"`.
        logits: Explain the logits (default) or the model's outputs as they are.

    Returns:
        Float32 maps in [0, 1], resized to the inputs whose layout matches the layer
        (`(batch, H, W)` for a 2-D convolution, `(batch, time)` for a 1-D one): one
        array for a single-input model, else a dict keyed by those inputs' names.

    Raises:
        ValueError: no convolutional layer, an unknown `layer` or `method`, or inputs,
            `class_index` or `output` that do not fit the model.
        TypeError: `model` is not a `keras.Model`.

    References:
        Selvaraju et al., "Grad-CAM", ICCV 2017; Chattopadhay et al., "Grad-CAM++",
        WACV 2018; Jiang et al., "LayerCAM", IEEE TIP 2021; Wang et al., "Score-CAM",
        CVPR workshops 2020.

    Example:

    ```python
    cam = kbm.explain.gradcam(cnn, images, classes)               # (batch, H, W)
    cam = kbm.explain.gradcam(cnn, images, classes, method="gradcam++")
    ```
    """
    v.check_choice("method", method, CAM_METHODS)
    view = ModelView(model, output=output, logits=logits)
    if view.graph is None:
        raise ValueError(
            f"Model '{model.name}' is subclassed: a class activation map needs to replay its "
            f"layers to read a convolution's output; use saliency() or integrated_gradients()"
        )
    target = _target_layer(model, view, layer)
    arrays = view.arrays(inputs)
    classes = view.class_indices(class_index, len(arrays[0]))
    if method == "scorecam":
        cam = _scorecam(view, arrays, classes, target)
    else:
        _, activation, grads = _activation_and_gradient(view, arrays, classes, target)
        axes = tuple(range(1, activation.ndim - 1))
        if method == "gradcam":
            weights = grads.mean(axis=axes, keepdims=True)
            cam = np.maximum((activation * weights).sum(axis=-1), 0.0)
        elif method == "layercam":
            # LayerCAM: every position weighs its channels by its own positive gradient.
            cam = np.maximum((activation * np.maximum(grads, 0.0)).sum(axis=-1), 0.0)
        else:
            cam = _gradcam_plus_plus(activation, grads, axes)
    return _expand(view, cam.astype("float32"))


def gradcam_plus_plus(
    model: keras.Model,
    inputs,
    class_index,
    layer=None,
    output=None,
    *,
    logits: bool = True,
):
    """Grad-CAM++: `gradcam(..., method="gradcam++")`; see `gradcam`.

    Example:

    ```python
    cam = kbm.explain.gradcam_plus_plus(cnn, images, classes)
    ```
    """
    return gradcam(
        model,
        inputs,
        class_index,
        layer=layer,
        output=output,
        method="gradcam++",
        logits=logits,
    )


def layercam(
    model: keras.Model,
    inputs,
    class_index,
    layer=None,
    output=None,
    *,
    logits: bool = True,
):
    """LayerCAM: `gradcam(..., method="layercam")`; see `gradcam`.

    Example:

    ```python
    cam = kbm.explain.layercam(cnn, images, classes)
    ```
    """
    return gradcam(
        model,
        inputs,
        class_index,
        layer=layer,
        output=output,
        method="layercam",
        logits=logits,
    )


def scorecam(
    model: keras.Model,
    inputs,
    class_index,
    layer=None,
    output=None,
    *,
    logits: bool = True,
):
    """Score-CAM (gradient-free): `gradcam(..., method="scorecam")`; see `gradcam`.

    Example:

    ```python
    cam = kbm.explain.scorecam(cnn, images, classes)
    ```
    """
    return gradcam(
        model,
        inputs,
        class_index,
        layer=layer,
        output=output,
        method="scorecam",
        logits=logits,
    )


def _gradcam_plus_plus(activation, grads, axes):
    """tf-keras-vis's Grad-CAM++ arithmetic. Its factor exp(score) multiplies every
    term of one example alike and cancels in the normalized map, so it is left out
    (it overflows float32 for logits above 88)."""
    first = grads
    second = grads * grads
    third = second * grads
    global_sum = activation.sum(axis=axes, keepdims=True)
    denominator = 2.0 * second + third * global_sum
    denominator = denominator + (second == 0.0)
    alphas = second / denominator
    total = alphas.sum(axis=axes, keepdims=True)
    alphas = alphas / (total + (total == 0.0))
    weights = (np.maximum(first, 0.0) * alphas).sum(axis=axes, keepdims=True)
    return np.maximum((weights * activation).sum(axis=-1), 0.0)


def _probabilities(view):
    def fn(tensors):
        return keras.ops.softmax(keras.ops.cast(view.run(tensors), "float32"))

    return fn


def _scorecam(view, arrays, classes, layer, batch_size: int = 256):
    from scipy.ndimage import zoom

    activation = _activation(view, arrays, layer)
    batch, channels = activation.shape[0], activation.shape[-1]
    spatial = activation.ndim - 2
    masked = []
    for i, a in enumerate(arrays):
        shape = view.input_shapes[i]
        if len(shape) != spatial + 1 or a.dtype.kind != "f":
            masked.append(np.concatenate([a] * channels))
            continue
        factors = (
            (1.0,)
            + tuple(float(t) / float(f) for f, t in zip(activation.shape[1:-1], a.shape[1:-1]))
            + (1.0,)
        )
        up = zoom(activation, factors, order=1, mode="nearest")
        axes = tuple(range(1, up.ndim - 1))
        low, high = up.min(axis=axes, keepdims=True), up.max(axis=axes, keepdims=True)
        up = (up - low) / (high - low + 1e-7)
        # (batch, *spatial, channels) -> (channels * batch, *spatial, 1): one mask per channel
        masks = np.moveaxis(up, -1, 0).reshape((channels * batch,) + up.shape[1:-1] + (1,))
        masked.append((np.concatenate([a] * channels) * masks).astype("float32"))
    all_classes = np.tile(classes, channels)
    weights = np.zeros(channels * batch, "float32")
    for start in range(0, channels * batch, batch_size):
        stop = min(start + batch_size, channels * batch)
        probabilities = evaluate(
            _probabilities(view),
            [m[start:stop] for m in masked],
            cache=view.cache_key("probabilities"),
        )
        weights[start:stop] = probabilities[np.arange(stop - start), all_classes[start:stop]]
    weights = weights.reshape(channels, batch).T  # (batch, channels)
    weights = weights.reshape((batch,) + (1,) * spatial + (channels,))
    return np.maximum((activation * weights).sum(axis=-1), 0.0)
