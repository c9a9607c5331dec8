"""`explain()`: one call that picks a method for the model and data, and writes the PNG."""

from __future__ import annotations

import numbers
import os
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np

from keras_bigmodel import validation as v
from keras_bigmodel.explain import figures
from keras_bigmodel.explain._gradients import evaluate
from keras_bigmodel.explain._model import ModelView, input_kind, shown
from keras_bigmodel.explain.attention import attention_layers, attention_scores
from keras_bigmodel.explain.attribution import deeplift, gradient_shap, input_x_gradient
from keras_bigmodel.explain.cam import conv_layers, gradcam
from keras_bigmodel.explain.compare import attributions
from keras_bigmodel.explain.methods import (
    attribution_map,
    integrated_gradients,
    saliency,
)

__all__ = ["METHODS", "SIGNED_METHODS", "explain", "pick_method"]

METHODS = (
    "auto",
    "saliency",
    "smoothgrad",
    "integrated_gradients",
    "input_x_gradient",
    "gradient_shap",
    "deeplift",
    "occlusion",
    "gradcam",
    "gradcam++",
    "layercam",
    "scorecam",
    "attention",
)
# Methods of signed attributions (drawn as |attribution| summed over channels and scaled
# to [0, 1] by `attribution_map`; summed per group with `feature_groups`).
SIGNED_METHODS = ("integrated_gradients", "input_x_gradient", "gradient_shap", "deeplift")
MAX_EXAMPLES = 32


def explain(
    model: keras.Model,
    inputs,
    path: str | os.PathLike,
    labels=None,
    class_names: Sequence[str] | None = None,
    method: str = "auto",
    output: str | int | None = None,
    model_name: str | None = None,
    *,
    class_index=None,
    layer: str | None = None,
    steps: int = 32,
    smooth_samples: int = 20,
    seed: int = 0,
    ncols: int | None = None,
    feature_groups: Sequence[Sequence[int]] | None = None,
) -> dict[str, Any]:
    """Explains a model's predictions on a few examples and writes one readable PNG.

    The method is chosen from the model and its input unless `method` names one:

    | model / input                                   | `method="auto"` picks      |
    | ----------------------------------------------- | -------------------------- |
    | one input, the model has an `AttentionLayer`    | `"attention"`              |
    | one image input (H, W, C), a convolution        | `"gradcam"`                |
    | one image or sequence (time, features) input    | `"saliency"`               |
    | one vector (tabular) input                      | `"integrated_gradients"`   |
    | several inputs (e.g. `fusion`, `crossmodal`)    | `"saliency"`, one map each |

    Each example's map explains its predicted class (or `class_index`), for the
    output `output` of a multi-output model. The figure is titled with the model,
    method and class, heads each example with "true: ... / predicted: ...", draws
    images in grey under a translucent map, sequences as a time-step x feature picture
    beside the same picture under the map, vectors as bars per feature, attention as
    one bar per time step, and has a colour bar that says what the colours mean.

    Args:
        model: A functional, Sequential or nested `keras.Model`.
        inputs: A batch of at most 32 examples: an array, or a list / dict (by input
            name) for several inputs.
        path: Destination `.png` (written atomically).
        labels: Optional true classes, one per example (integers or one-hot rows).
        class_names: Optional names of the classes, indexed by class.
        method: `"auto"` or one of `"saliency"`, `"smoothgrad"`,
            `"integrated_gradients"`, `"input_x_gradient"`, `"gradient_shap"` (the
            training-free default: a zero baseline, `smooth_samples` draws),
            `"deeplift"` (rescale rule, zero baseline), `"occlusion"` (windows of about
            an eighth of each image side, one step or feature otherwise), `"gradcam"`,
            `"gradcam++"`, `"layercam"`, `"scorecam"`, `"attention"`.
        output: For several outputs, the output's name (dict) or index (list).
        model_name: The model's name in the title (defaults to `model.name`).
        class_index: The class to explain (one for all or one per example); defaults
            to each example's predicted class.
        layer: The convolutional (CAM) or `AttentionLayer` (attention) layer's name.
        steps: Integrated gradients' quadrature points.
        smooth_samples: SmoothGrad's noisy copies (GradientSHAP's draws).
        seed: SmoothGrad's (GradientSHAP's) noise seed.
        ncols: Examples per row of the figure (default: 4, or 2 for two-part panels).
        feature_groups: For a model with one vector input: the input positions that
            make up each feature shown, e.g. a table column encoded over several
            values (`kbm.data.tabular.encoded_view` gives them). Each group's signed
            attributions are summed into one bar (integrated gradients' shares of
            `f(x) - f(baseline)` add up per column). Needs a method of signed
            attributions: `"integrated_gradients"` (the default for a vector input),
            `"input_x_gradient"`, `"gradient_shap"`, `"deeplift"` or `"occlusion"`.

    Returns:
        A dict: `path`, `method` (the one used), `model`, `output`, `inputs` (name ->
        kind: image, sequence, tabular), `class_index` (explained, per example),
        `predicted` (per example, or None for a single-unit output), `labels` (or
        None), `linearized` (the layers explained without their final activation) and
        `maps` (the maps drawn: an array, or a dict by input name).

    Raises:
        ValueError: an unknown `method`, a method the model cannot use (no convolution,
            no `AttentionLayer`), labels or class names that do not fit, more than 32
            examples, inputs the model does not take, a path that is not a `.png`, or
            `feature_groups` that do not fit the input or the method.
        TypeError: `model` is not a `keras.Model` or `path` is not a path.

    Example:

    ```python
    import numpy as np
    import keras_bigmodel as kbm
    import zoo
    from keras_bigmodel.data import Digits, load_digits

    digits = load_digits()
    cnn = zoo.build("cnn", input_shape=(8, 8, 1))
    cnn.fit(digits.x_train, Digits.one_hot(digits.y_train), epochs=5, verbose=0)
    done = kbm.explain.explain(cnn, digits.x_test[:8], "cnn.png",
                               labels=digits.y_test[:8], model_name="digits CNN")
    done["method"]      # 'gradcam'
    ```
    """
    method = v.check_choice("method", method, METHODS)
    path = v.check_path("path", path)
    if not path.lower().endswith(".png"):
        raise ValueError(f"`path` must end in '.png'. Received: path={path!r}")
    if model_name is not None:
        v.check_name("model_name", model_name)
    class_names = figures._check_class_names(class_names)
    v.check_positive_int("ncols", ncols, allow_none=True)

    view = ModelView(model, output=output, logits=False)
    arrays = view.arrays(inputs)
    batch = len(arrays[0])
    if batch > MAX_EXAMPLES:
        raise ValueError(
            f"explain draws one panel per example; `inputs` must hold at most {MAX_EXAMPLES} "
            f"examples. Received: {batch}"
        )
    kinds = [input_kind(shape) for shape in view.input_shapes]
    feed = _feed(view, arrays)
    probabilities = evaluate(view.run, arrays, cache=view.cache_key("outputs"))
    classes = view.num_classes
    predicted = None if classes == 1 else probabilities.argmax(axis=-1).astype(int).tolist()
    labels = _labels(labels, batch, classes)
    if class_names is not None and classes and classes > 1 and len(class_names) < classes:
        raise ValueError(
            f"`class_names` must name all {classes} classes of the explained output. "
            f"Received {len(class_names)}: {class_names!r}"
        )
    if class_index is None:
        class_index = predicted if predicted is not None else 0
    explained = view.class_indices(class_index, batch).tolist()

    if method == "auto":
        method = _auto(model, view, kinds)
    groups = _check_groups(feature_groups, view, kinds, method)
    common = {
        "labels": labels,
        "predicted": predicted,
        "explained": explained,
        "class_names": class_names,
        "ncols": ncols,
    }
    name = model_name or model.name
    result: dict[str, Any] = {
        "path": path,
        "method": method,
        "model": name,
        "output": view.output_key,
        "inputs": dict(zip(view.input_names, kinds)),
        "class_index": explained,
        "predicted": predicted,
        "labels": labels,
        "linearized": [] if method == "attention" else ModelView(model, output).linearized,
    }

    if method == "attention":
        weights = attention_scores(model, feed, layer=layer)
        sequence = next(
            (
                a
                for a, k in zip(arrays, kinds)
                if k == "sequence" and a.shape[1] == weights.shape[1]
            ),
            None,
        )
        figures.save_attention_plot(
            weights,
            path,
            sequences=sequence,
            model_name=name,
            labels=labels,
            predicted=predicted,
            class_names=class_names,
            ncols=ncols,
        )
        result["maps"] = weights
        return result

    if method in ("gradcam", "gradcam++", "layercam", "scorecam"):
        maps = gradcam(model, feed, explained, layer=layer, output=output, method=method)
    elif method in SIGNED_METHODS:
        maps = attribution_map(
            _grouped(
                _raw(method, model, feed, explained, output, steps, smooth_samples, seed),
                groups,
            )
        )
    elif method == "occlusion" and len(view.input_names) == 1:
        maps = attribution_map(
            _grouped(attributions(model, feed, explained, "occlusion", output), groups)
        )
    elif method == "occlusion":  # one map per float input, each occluded alone
        maps = {
            name: attribution_map(attributions(model, feed, explained, method, output, input=name))
            for name in (view.input_names[i] for i in view.float_inputs())
        }
    else:
        maps = saliency(
            model,
            feed,
            explained,
            output=output,
            smooth_samples=smooth_samples if method == "smoothgrad" else 0,
            seed=seed,
        )
    by_name = maps if isinstance(maps, dict) else {view.input_names[0]: maps}
    cells = []
    for i in range(batch):
        cell = []
        for j, (input_name, kind) in enumerate(zip(view.input_names, kinds)):
            if input_name not in by_name:
                continue
            if kind == "tensor":
                raise ValueError(
                    f"explain draws images, sequences and vectors; input '{input_name}' has "
                    f"shape {view.input_shapes[j]}"
                )
            heat = by_name[input_name][i]
            if kind == "sequence" and heat.ndim == 1:  # a Conv1D CAM: one value per step
                heat = np.repeat(heat[:, None], arrays[j].shape[-1], axis=1)
            cell.append(
                figures.panel(
                    kind,
                    heat,
                    # grouped bars have no one input value each to mark
                    arrays[j][i] if groups is None else None,
                    name=input_name if len(by_name) > 1 else None,
                )
            )
        cells.append(cell)
    fig = figures.render(
        cells,
        title=figures.figure_title(method, name, explained, predicted, class_names),
        colorbar_label=figures.METHOD_LABELS[method][1],
        **common,
    )
    figures._write_png(fig, path)
    result["maps"] = maps
    return result


def _check_groups(groups, view: ModelView, kinds: list[str], method: str):
    """`feature_groups` as lists of positions, or None; checked against the input."""
    if groups is None:
        return None
    if len(kinds) != 1 or kinds[0] != "tabular":
        raise ValueError(
            f"`feature_groups` is for a model with one vector input; '{view.model.name}' "
            f"takes {dict(zip(view.input_names, kinds))}"
        )
    signed = (*SIGNED_METHODS, "occlusion")
    if method not in signed:
        raise ValueError(
            f"`feature_groups` sums signed attributions; method {method!r} gives none. "
            f"Use one of {list(signed)}"
        )
    width = view.input_shapes[0][-1]
    try:
        checked = [list(group) for group in groups]
    except TypeError:
        checked = None
    if (
        not checked
        or any(not group for group in checked)
        or any(
            isinstance(i, bool) or not isinstance(i, numbers.Integral)
            for group in checked
            for i in group
        )
        or sorted(int(i) for group in checked for i in group) != list(range(width))
    ):
        raise ValueError(
            f"`feature_groups` must split the input's {width} positions into non-empty "
            f"groups of integers, each position in exactly one. Received: "
            f"feature_groups={shown(groups)}"
        )
    checked = [[int(i) for i in group] for group in checked]
    return checked


def _grouped(attributions, groups):
    """Signed attributions summed per group (a no-op without groups)."""
    if groups is None:
        return attributions
    a = np.asarray(attributions)
    return np.stack([a[:, group].sum(axis=1) for group in groups], axis=1)


def _raw(method, model, feed, explained, output, steps, samples, seed):
    """The signed attributions of one of `SIGNED_METHODS`, shaped like the inputs."""
    if method == "integrated_gradients":
        return integrated_gradients(model, feed, explained, output=output, steps=steps)
    if method == "input_x_gradient":
        return input_x_gradient(model, feed, explained, output=output)
    if method == "gradient_shap":
        return gradient_shap(model, feed, explained, output=output, samples=samples, seed=seed)
    return deeplift(model, feed, explained, output=output)


def _feed(view: ModelView, arrays: list):
    if view.graph is not None and isinstance(view.graph.input, dict):
        return dict(zip(view.input_names, arrays))
    return arrays if len(arrays) > 1 else arrays[0]


def _labels(labels, batch: int, classes: int | None):
    if labels is None:
        return None
    array = np.asarray(labels)
    if array.ndim == 2 and classes and array.shape[1] == classes and classes > 1:
        array = array.argmax(axis=1)  # one-hot rows
    values = array.reshape(-1).tolist() if array.ndim <= 1 else None
    if (
        values is None
        or len(values) != batch
        or any(isinstance(x, bool) or not isinstance(x, numbers.Integral) for x in values)
        or any(x < 0 or (classes and classes > 1 and x >= classes) for x in values)
    ):
        raise ValueError(
            f"`labels` must be {batch} class indices in [0, {classes}) or one-hot rows, one "
            f"per example. Received: labels of shape {array.shape}"
            + (f" with values {values!r}" if values is not None and len(values) <= 32 else "")
        )
    return [int(x) for x in values]


def pick_method(model: keras.Model, output: str | int | None = None) -> str:
    """The method `explain(..., method="auto")` uses for `model` (see the table in
    `explain`); computes nothing.

    Args:
        model: A functional, Sequential or nested `keras.Model`.
        output: For several outputs, the output's name (dict) or index (list).

    Returns:
        `"attention"`, `"gradcam"`, `"saliency"` or `"integrated_gradients"`.

    Raises:
        TypeError: `model` is not a `keras.Model`, or `output` is neither None, a
            name nor an index (e.g. an input array: `pick_method` takes no inputs).
        ValueError: `output` names no output of the model.

    Example:

    ```python
    kbm.explain.pick_method(zoo.build("cnn"))             # 'gradcam'
    ```
    """
    v.check_model(model)
    if output is not None and (isinstance(output, bool) or not isinstance(output, (str, int))):
        raise TypeError(
            f"`output` must be None, an output's name (str) or index (int); pick_method "
            f"looks at the model only and takes no inputs. Received: output={shown(output)}"
        )
    view = ModelView(model, output=output, logits=False)
    return _auto(model, view, [input_kind(shape) for shape in view.input_shapes])


def _auto(model: keras.Model, view: ModelView, kinds: list[str]) -> str:
    if len(kinds) > 1:
        return "saliency"
    if attention_layers(model):
        return "attention"
    if kinds[0] == "image" and conv_layers(model):
        return "gradcam"
    if kinds[0] == "tabular":
        return "integrated_gradients"
    return "saliency"
