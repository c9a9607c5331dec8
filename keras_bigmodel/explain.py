"""Interpretability (the documents' trend 3.3): saliency, Grad-CAM and attention maps.

`saliency` and `gradcam` use tf-keras-vis and so need the TensorFlow backend;
`attention_scores` and the PNG writers work on every backend. Multi-output models
(e.g. the `multitask` preset) are explained one head at a time with `output=`.
"""

from __future__ import annotations

import numbers
import os
import warnings
from typing import Sequence

import keras
import numpy as np

from keras_bigmodel.layers import AttentionLayer, MultiTaskHead, TaskHead
from keras_bigmodel.preconditions import check_model, require_tensorflow
from keras_bigmodel.saving import atomic_path

CAM_METHODS = ("gradcam", "gradcam++", "scorecam")
_TF_KERAS_VIS = "tf-keras-vis is built on TensorFlow"


# ------------------------------------------------------------------ model plumbing
def _functional(model: keras.Model) -> keras.Model:
    check_model(model)
    if isinstance(model, keras.Sequential):
        # tf-keras-vis's model modifiers need a functional model.
        outputs = model.outputs[0] if len(model.outputs) == 1 else model.outputs
        return keras.Model(model.inputs, outputs, name=model.name)
    if not hasattr(model, "_nodes") or not model.inputs:
        raise ValueError(
            f"`model` must be a functional (or Sequential) keras.Model; '{model.name}' is a "
            f"subclassed model, whose graph cannot be inspected"
        )
    return model


def _select_output(model: keras.Model, output) -> keras.Model:
    """A single-output view of `model`: dict outputs by name, list outputs by index."""
    structure = model.output
    if isinstance(structure, dict):
        if output is None:
            raise ValueError(
                f"Model '{model.name}' has outputs {sorted(structure)}; pick one with "
                f"output=<name> (each head is explained separately)"
            )
        if output not in structure:
            raise ValueError(f"`output` must be one of {sorted(structure)}. Received: output={output!r}")
        return keras.Model(model.inputs, structure[output], name=f"{model.name}_{output}")
    if isinstance(structure, (list, tuple)) and len(structure) == 1 and output in (None, 0):
        return keras.Model(model.inputs, structure[0], name=model.name)
    if isinstance(structure, (list, tuple)):
        if output is None or isinstance(output, bool) or not isinstance(output, int) or not 0 <= output < len(structure):
            raise ValueError(
                f"Model '{model.name}' has {len(structure)} outputs; pick one with output=<index> "
                f"in [0, {len(structure)}). Received: output={output!r}"
            )
        return keras.Model(model.inputs, structure[output])
    if output is not None:
        raise ValueError(f"Model '{model.name}' has a single output; `output` must be None. Received: output={output!r}")
    return model


def _final_denses(layer) -> list:
    if isinstance(layer, keras.layers.Dense):
        return [layer]
    if isinstance(layer, TaskHead):
        return [layer.output_dense]
    if isinstance(layer, MultiTaskHead):
        return [head.output_dense for head in layer.heads.values()]
    return []


def _linearize(model: keras.Model) -> None:
    """tf-keras-vis model modifier: explain the logits, not the saturating softmax.

    Like tf-keras-vis's `ReplaceToLinear`, but it also reaches the `Dense` inside
    this package's heads. It runs on tf-keras-vis's clone, never on the user's model.
    """
    for dense in _final_denses(model.layers[-1]):
        dense.activation = keras.activations.linear


def _as_list(model: keras.Model, inputs) -> list:
    names = [t.name for t in model.inputs]
    if isinstance(inputs, dict):
        missing = sorted(set(names) - set(inputs))
        if missing:
            raise ValueError(f"`inputs` lacks {missing}; the model takes {names}")
        arrays = [inputs[n] for n in names]
    elif isinstance(inputs, (list, tuple)) and len(names) > 1:
        arrays = list(inputs)
    else:
        arrays = [inputs]
    if len(arrays) != len(names):
        raise ValueError(f"The model takes {len(names)} inputs {names}; received {len(arrays)}")
    out = []
    for name, tensor, array in zip(names, model.inputs, arrays):
        array = np.asarray(array)
        expected = tuple(tensor.shape[1:])
        if array.ndim != len(expected) + 1 or any(
            e is not None and e != a for e, a in zip(expected, array.shape[1:])
        ):
            raise ValueError(
                f"Input '{name}' must have shape (batch,) + {expected}. Received: {array.shape}"
            )
        out.append(array.astype("float32") if array.dtype.kind == "f" else array)
    return out


def _class_indices(class_index, batch: int, classes: int) -> list[int]:
    values = [class_index] * batch if isinstance(class_index, numbers.Integral) else class_index
    if isinstance(values, np.ndarray):
        values = values.tolist()
    if (
        not isinstance(values, (list, tuple))
        or len(values) != batch
        or any(isinstance(v, bool) or not isinstance(v, numbers.Integral) or not 0 <= v < classes for v in values)
    ):
        raise ValueError(
            f"`class_index` must be an integer in [0, {classes}) or a list of {batch} of them "
            f"(one per example). Received: class_index={class_index!r}"
        )
    return [int(v) for v in values]


def _by_input(model, maps, images_only=False):
    """Maps as float32 in [0, 1]: one array for a single-input model, else a dict keyed
    by input name (only the image inputs' with `images_only`)."""
    maps = maps if isinstance(maps, list) else [maps]
    maps = [np.clip(np.nan_to_num(np.asarray(m, dtype="float32")), 0.0, 1.0) for m in maps]
    if len(model.inputs) == 1:
        return maps[0]
    return {t.name: m for t, m in zip(model.inputs, maps)
            if not images_only or len(t.shape) == 4}


def _prepare(model, inputs, class_index, output):
    view = _select_output(_functional(model), output)
    arrays = _as_list(view, inputs)
    classes = view.output.shape[-1]
    indices = _class_indices(class_index, len(arrays[0]), classes)
    from tf_keras_vis.utils.scores import CategoricalScore

    return view, arrays, CategoricalScore(indices)


# ---------------------------------------------------------------------- saliency
def saliency(
    model: keras.Model,
    inputs,
    class_index,
    output: str | int | None = None,
    smooth_samples: int = 0,
    smooth_noise: float = 0.2,
):
    """Vanilla (or SmoothGrad) saliency: |d score / d input|, normalized to [0, 1].

    Args:
        model: A functional or Sequential `keras.Model`.
        inputs: A batch of inputs (array, or list/dict for multi-input models).
        class_index: The class to explain, one for all or one per example.
        output: For multi-output models, the output's name (dict) or index (list).
        smooth_samples: If > 0, SmoothGrad with this many noisy samples.
        smooth_noise: SmoothGrad's noise level.

    Returns:
        An array of shape `(batch, H, W)` for images (channels reduced by max),
        `(batch, time)` for sequences and `(batch, features)` for vectors, with
        values in [0, 1]; a dict keyed by input name for multi-input models.
    """
    require_tensorflow("kbm.explain.saliency", _TF_KERAS_VIS)
    if isinstance(smooth_samples, bool) or not isinstance(smooth_samples, int) or smooth_samples < 0:
        raise ValueError(f"`smooth_samples` must be a non-negative integer. Received: {smooth_samples!r}")
    view, arrays, score = _prepare(model, inputs, class_index, output)
    from tf_keras_vis.saliency import Saliency

    # tf-keras-vis reduces the last (channel) axis unless keepdims; on vectors that
    # axis is the features themselves, so keep it and reduce channels here instead.
    keepdims = any(a.ndim == 2 for a in arrays)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The structure of `inputs`")
        explainer = Saliency(view, model_modifier=_linearize, clone=True)
        maps = explainer(score, arrays if len(arrays) > 1 else arrays[0],
                         smooth_samples=smooth_samples, smooth_noise=smooth_noise,
                         keepdims=keepdims)
    maps = maps if isinstance(maps, list) else [maps]
    if keepdims:
        maps = [m if a.ndim == 2 else np.max(m, axis=-1) for m, a in zip(maps, arrays)]
    return _by_input(view, maps)


# ---------------------------------------------------------------------- Grad-CAM
_CONV_LAYERS = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.SeparableConv2D)


def conv_layers(model: keras.Model) -> list:
    """The model's top-level 2-D convolutions: where Grad-CAM can look."""
    return [l for l in model.layers if isinstance(l, _CONV_LAYERS)]


def gradcam(
    model: keras.Model,
    inputs,
    class_index,
    layer: str | None = None,
    output: str | int | None = None,
    method: str = "gradcam",
):
    """Class activation maps: where in the image the evidence for a class lies.

    Args:
        model: A functional or Sequential `keras.Model` with a convolutional layer.
        inputs: A batch of inputs (array, or list/dict for multi-input models).
        class_index: The class to explain, one for all or one per example.
        layer: Name of the convolutional layer to explain; defaults to the last one.
        output: For multi-output models, the output's name (dict) or index (list).
        method: `"gradcam"`, `"gradcam++"` or `"scorecam"`.

    Returns:
        An array of shape `(batch, H, W)` in [0, 1], resized to the image input;
        for multi-input models a dict of such maps keyed by image-input name.
    """
    require_tensorflow("kbm.explain.gradcam", _TF_KERAS_VIS)
    if method not in CAM_METHODS:
        raise ValueError(f"`method` must be one of {list(CAM_METHODS)}. Received: method={method!r}")
    view, arrays, score = _prepare(model, inputs, class_index, output)
    convs = conv_layers(view)
    if layer is None:
        if not convs:
            raise ValueError(
                f"Model '{model.name}' has no 4-D (image) layer to compute a class activation "
                f"map on; use saliency() instead"
            )
        layer = convs[-1].name
    elif layer not in {l.name for l in convs}:
        raise ValueError(
            f"`layer` must name an image layer of the model, one of {[l.name for l in convs]}. "
            f"Received: layer={layer!r}"
        )
    with warnings.catch_warnings():
        # tf-keras-vis imports scipy.ndimage.interpolation, deprecated since SciPy 1.x
        # and gone in 2.0 (hence the scipy<2 pin).
        warnings.simplefilter("ignore", DeprecationWarning)
        from tf_keras_vis.gradcam import Gradcam
        from tf_keras_vis.gradcam_plus_plus import GradcamPlusPlus
        from tf_keras_vis.scorecam import Scorecam

    cls = {"gradcam": Gradcam, "gradcam++": GradcamPlusPlus, "scorecam": Scorecam}[method]
    kwargs = {"max_N": -1} if method == "scorecam" else {}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The structure of `inputs`")
        explainer = cls(view, model_modifier=_linearize, clone=True)
        maps = explainer(score, arrays if len(arrays) > 1 else arrays[0], penultimate_layer=layer,
                         seek_penultimate_conv_layer=False, **kwargs)
    return _by_input(view, maps, images_only=True)


# ------------------------------------------------------------------ attention maps
def attention_layers(model: keras.Model) -> list[AttentionLayer]:
    """Every `AttentionLayer` in the model, nested ones included."""
    return [l for l in model._flatten_layers(include_self=False) if isinstance(l, AttentionLayer)]


def attention_scores(model: keras.Model, inputs, layer: str | None = None) -> np.ndarray:
    """The attention weights an `AttentionLayer` gives each time step.

    Works on every backend: the model runs once, eagerly, in inference mode, and
    the chosen layer hands over the weights it computed (with its mask applied).

    Args:
        model: A `keras.Model` containing an `AttentionLayer` (nested ones too).
        inputs: A batch of the model's inputs.
        layer: Name of the `AttentionLayer` if the model has several.

    Returns:
        An array of shape `(batch, time)`; each row sums to 1 over its unmasked
        steps and is 0 on masked ones.
    """
    check_model(model)
    found = attention_layers(model)
    if not found:
        raise ValueError(f"Model '{model.name}' has no AttentionLayer")
    if layer is None:
        if len(found) > 1:
            raise ValueError(
                f"Model '{model.name}' has several AttentionLayers {[l.name for l in found]}; "
                f"pick one with layer=<name>"
            )
        target = found[0]
    else:
        matches = [l for l in found if l.name == layer]
        if not matches:
            raise ValueError(f"`layer` must be one of {[l.name for l in found]}. Received: layer={layer!r}")
        target = matches[0]
    arrays = _as_list(model, inputs) if model.inputs else [np.asarray(inputs)]
    feed = inputs if isinstance(inputs, dict) else (arrays if len(arrays) > 1 else arrays[0])
    sink: list = []
    object.__setattr__(target, "score_sink", sink)
    try:
        model(feed, training=False)
    finally:
        object.__setattr__(target, "score_sink", None)
    if len(sink) != 1:
        raise ValueError(
            f"AttentionLayer '{target.name}' ran {len(sink)} times in one forward pass of "
            f"'{model.name}'; attention_scores needs a layer that runs once"
        )
    return np.asarray(keras.ops.convert_to_numpy(sink[0]), dtype="float32")


# ----------------------------------------------------------------------- pictures
def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _write_png(fig, path) -> str:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"`path` must be a str or os.PathLike. Received: path={path!r}")
    path = os.fspath(path)
    if not path.lower().endswith(".png"):
        raise ValueError(f"`path` must end in '.png'. Received: path={path!r}")
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", bbox_inches="tight")
    return path


def _image_for_display(image):
    image = np.asarray(image, dtype="float32")
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    lo, hi = float(image.min()), float(image.max())
    return (image - lo) / (hi - lo) if hi > lo else np.zeros_like(image)


def save_heatmap(
    heatmaps,
    path: str | os.PathLike,
    images=None,
    titles: Sequence[str] | None = None,
    cmap: str = "jet",
    alpha: float = 0.45,
    ncols: int = 4,
) -> str:
    """Writes heatmaps (saliency, Grad-CAM), optionally over their images, as one PNG.

    Args:
        heatmaps: `(H, W)` or `(batch, H, W)` values in [0, 1].
        path: Destination `.png` (written atomically).
        images: Optional images of the same batch, `(batch, H, W[, C])`, shown under
            the heatmaps.
        titles: Optional title per heatmap.
        cmap: A matplotlib colormap name.
        alpha: Opacity of the heatmap over the image.
        ncols: Heatmaps per row.

    Returns:
        The path written.
    """
    maps = np.asarray(heatmaps, dtype="float32")
    if maps.ndim == 2:
        maps = maps[None]
    if maps.ndim != 3 or not np.all(np.isfinite(maps)):
        raise ValueError(f"`heatmaps` must be finite, of shape (H, W) or (batch, H, W). Received: {maps.shape}")
    if images is not None:
        images = np.asarray(images)
        if images.ndim == maps.ndim - 1 or (images.ndim == 3 and images.shape[-1] in (1, 3) and len(maps) == 1):
            images = images[None]
        if len(images) != len(maps) or images.shape[1:3] != maps.shape[1:3]:
            raise ValueError(
                f"`images` must match the heatmaps' batch and size {maps.shape}. Received: {images.shape}"
            )
    if titles is not None and len(titles) != len(maps):
        raise ValueError(f"`titles` must have one title per heatmap ({len(maps)}). Received {len(titles)}")
    import matplotlib

    colormap = matplotlib.colormaps[cmap]
    cols = max(1, min(ncols, len(maps)))
    rows = -(-len(maps) // cols)
    fig = _figure(2.2 * cols, 2.3 * rows)
    for i, heat in enumerate(maps):
        ax = fig.add_subplot(rows, cols, i + 1)
        if images is not None:
            shown = _image_for_display(images[i])
            ax.imshow(shown, cmap="gray" if shown.ndim == 2 else None)
            ax.imshow(heat, cmap=colormap, alpha=alpha, vmin=0.0, vmax=1.0)
        else:
            ax.imshow(heat, cmap=colormap, vmin=0.0, vmax=1.0)
        if titles is not None:
            ax.set_title(str(titles[i]), fontsize=9)
        ax.axis("off")
    return _write_png(fig, path)


def save_attention_plot(
    scores,
    path: str | os.PathLike,
    sequences=None,
    titles: Sequence[str] | None = None,
    ncols: int = 4,
) -> str:
    """Writes attention weights per time step as a PNG.

    Args:
        scores: `(batch, time)` attention weights (e.g. from `attention_scores`).
        path: Destination `.png` (written atomically).
        sequences: Optional `(batch, time, features)` inputs, drawn as an image
            (one row per step) beside a bar of each step's weight; for the digits
            demo the steps are the image rows, so the picture is the digit.
        titles: Optional title per example.
        ncols: Examples per row.

    Returns:
        The path written.
    """
    scores = np.asarray(scores, dtype="float32")
    if scores.ndim != 2 or not np.all(np.isfinite(scores)):
        raise ValueError(f"`scores` must be finite, of shape (batch, time). Received: {scores.shape}")
    if sequences is not None:
        sequences = np.asarray(sequences, dtype="float32")
        if sequences.ndim != 3 or sequences.shape[:2] != scores.shape:
            raise ValueError(
                f"`sequences` must have shape (batch, time, features) matching scores "
                f"{scores.shape}. Received: {sequences.shape}"
            )
    if titles is not None and len(titles) != len(scores):
        raise ValueError(f"`titles` must have one title per example ({len(scores)}). Received {len(titles)}")
    cols = max(1, min(ncols, len(scores)))
    rows = -(-len(scores) // cols)
    fig = _figure(2.6 * cols, 2.4 * rows)
    grid = fig.add_gridspec(rows, 2 * cols, width_ratios=[3, 1] * cols, wspace=0.05, hspace=0.35)
    time = scores.shape[1]
    for i, row in enumerate(scores):
        r, c = divmod(i, cols)
        ax = fig.add_subplot(grid[r, 2 * c])
        if sequences is not None:
            ax.imshow(_image_for_display(sequences[i]), cmap="gray", aspect="auto")
        else:
            ax.imshow(row[:, None], cmap="viridis", aspect="auto", vmin=0.0, vmax=max(float(row.max()), 1e-6))
        ax.set_yticks(range(time))
        ax.set_xticks([])
        ax.tick_params(labelsize=6)
        if titles is not None:
            ax.set_title(str(titles[i]), fontsize=9)
        bar = fig.add_subplot(grid[r, 2 * c + 1], sharey=ax)
        bar.barh(range(time), row, color="tab:orange")
        bar.set_xlim(0, 1.05 * max(float(scores.max()), 1e-6))
        bar.tick_params(labelleft=False, labelsize=6)
    return _write_png(fig, path)


__all__ = [
    "CAM_METHODS",
    "attention_layers",
    "attention_scores",
    "conv_layers",
    "gradcam",
    "saliency",
    "save_attention_plot",
    "save_heatmap",
]
