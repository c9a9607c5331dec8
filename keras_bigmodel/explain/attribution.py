"""Attribution methods users compare against: input x gradient, GradientSHAP, occlusion.

They return raw (signed) attributions shaped like each float input, as
`integrated_gradients` does, so that their sum means something (for input x gradient
of a linear model, and GradientSHAP in expectation, `f(x) - f(baseline)`), and follow
captum's definitions (`InputXGradient`, `GradientShap`, `Occlusion`): on the PyTorch
backend, where a Keras model is a `torch.nn.Module`, they equal captum's on the same
model and inputs. Every backend gives the same attributions.
"""

from __future__ import annotations

import math
import numbers

import keras
import numpy as np

from keras_bigmodel import validation as v
from keras_bigmodel.explain._gradients import evaluate
from keras_bigmodel.explain._model import ModelView, shown
from keras_bigmodel.explain.methods import (
    _float_positions,
    _input_gradients,
    _prepare,
)

__all__ = [
    "baseline_like",
    "deeplift",
    "gradient_shap",
    "input_position",
    "input_x_gradient",
    "occlusion",
    "scores_in_chunks",
]

Output = str | int | None


def input_x_gradient(
    model: keras.Model,
    inputs,
    class_index,
    output: Output = None,
    *,
    logits: bool = True,
    batch_size: int = 256,
):
    """Input x gradient: `x_i * d f(x) / d x_i` (captum's `InputXGradient`).

    Args:
        model, inputs, class_index, output, logits, batch_size: As for
            `kbm.explain.saliency`.

    Returns:
        Raw float32 attributions shaped like each float input (a dict by input name for
        several inputs).

    Raises:
        ValueError: `inputs`, `class_index` or `output` do not fit the model.
        TypeError: `model` is not a `keras.Model`, or has only integer inputs.

    Reference:
        Shrikumar et al., "Not Just a Black Box", 2016.

    Example:

    ```python
    attributions = kbm.explain.input_x_gradient(cnn, images, classes)
    ```
    """
    batch_size = v.check_positive_int("batch_size", batch_size)
    view, arrays, classes = _prepare(model, inputs, class_index, output, logits)
    positions = _float_positions(view, "input_x_gradient")
    _, grads = _input_gradients(view, arrays, classes, positions, batch_size)
    out = [None] * len(arrays)
    for p, g in zip(positions, grads):
        out[p] = (arrays[p] * g).astype("float32")
    return view.by_input(out, keep=positions)


def gradient_shap(
    model: keras.Model,
    inputs,
    class_index,
    output: Output = None,
    baselines=None,
    samples: int = 20,
    stdevs: float = 0.0,
    *,
    seed: int | None = 0,
    logits: bool = True,
    batch_size: int = 256,
):
    """GradientSHAP (expected gradients): SHAP values estimated by sampling.

    For each of `samples` draws per example: a baseline `b` picked uniformly from
    `baselines`, `a ~ U(0, 1)` and Gaussian noise `e ~ N(0, stdevs)`; with
    `x~ = x + e`, the draw contributes `(x~ - b) * d f(b + a (x~ - b)) / dx`, and the
    attribution is the mean over the draws (captum's `GradientShap`). Its expectation
    adds up to `f(x) - E[f(b)]`.

    Args:
        model, inputs, class_index, output, logits, batch_size: As for `saliency`.
        baselines: The reference distribution: None (one all-zero baseline), an array
            `(n, ...)` of `n` baselines shaped like examples (one input), or a list /
            dict of such arrays (several inputs).
        samples: Draws per example.
        stdevs: The noise's standard deviation (0: none).
        seed: Seed of the draws (None: fresh ones).

    Returns:
        Raw float32 attributions shaped like each float input.

    Raises:
        ValueError: bad `baselines`, `samples`, `stdevs`, inputs, classes or output.
        TypeError: `model` is not a `keras.Model`, or has only integer inputs.

    Reference:
        Lundberg and Lee, "A Unified Approach to Interpreting Model Predictions",
        NeurIPS 2017; Erion et al., "Improving performance of deep learning models
        with axiomatic attribution priors and expected gradients", 2021.

    Example:

    ```python
    attributions = kbm.explain.gradient_shap(cnn, images, classes, baselines=train[:16])
    ```
    """
    samples = v.check_positive_int("samples", samples)
    stdevs = v.check_number("stdevs", stdevs, minimum=0.0)
    seed = v.check_seed("seed", seed)
    batch_size = v.check_positive_int("batch_size", batch_size)
    view, arrays, classes = _prepare(model, inputs, class_index, output, logits)
    positions = _float_positions(view, "gradient_shap")
    pools = _baseline_pools(view, arrays, baselines, positions)
    rng = np.random.default_rng(seed)
    batch = len(classes)
    n_pool = len(pools[positions[0]])
    picks = rng.integers(0, n_pool, size=(batch, samples))
    alphas = rng.uniform(size=(batch, samples)).astype("float32")
    noisy, points = {}, []
    for i, a in enumerate(arrays):
        rep = np.repeat(a, samples, axis=0)  # example-major: example 0's draws first
        if i not in positions:
            points.append(rep)
            continue
        if stdevs:
            rep = rep + rng.normal(0.0, stdevs, rep.shape).astype("float32")
        base = pools[i][picks.reshape(-1)]
        shape = (-1,) + (1,) * (a.ndim - 1)
        noisy[i] = (rep, base)
        points.append((base + alphas.reshape(shape) * (rep - base)).astype("float32"))
    _, grads = _input_gradients(view, points, np.repeat(classes, samples), positions, batch_size)
    out = [None] * len(arrays)
    for p, g in zip(positions, grads):
        rep, base = noisy[p]
        contribution = (g * (rep - base)).reshape((batch, samples) + g.shape[1:])
        out[p] = contribution.mean(axis=1).astype("float32")
    return view.by_input(out, keep=positions)


def _baseline_pools(view: ModelView, arrays: list, baselines, positions: list[int]) -> list:
    names = view.input_names
    if baselines is None:
        given = [None] * len(arrays)
    elif isinstance(baselines, dict):
        given = [baselines.get(n) for n in names]
    elif isinstance(baselines, (list, tuple)) and len(names) > 1:
        given = list(baselines) + [None] * (len(names) - len(baselines))
    else:
        given = [baselines if i == positions[0] else None for i in range(len(arrays))]
    pools, count = [None] * len(arrays), None
    for i in positions:
        b = given[i]
        if b is None:
            b = np.zeros((1,) + arrays[i].shape[1:], "float32")
        b = np.asarray(b, dtype="float32")
        if b.ndim != arrays[i].ndim or b.shape[1:] != arrays[i].shape[1:] or len(b) == 0:
            raise ValueError(
                f"`baselines` for input '{names[i]}' must be an array (n, ...) of baselines "
                f"shaped like its examples {arrays[i].shape[1:]}. Received: {shown(given[i])}"
            )
        if count is not None and len(b) != count:
            raise ValueError(
                f"`baselines` must hold the same number of baselines for every input; "
                f"'{names[i]}' has {len(b)}, the first had {count}"
            )
        count = len(b)
        pools[i] = b
    return pools


# ------------------------------------------------------------------------ DeepLIFT
def deeplift(
    model: keras.Model,
    inputs,
    class_index,
    output: Output = None,
    baseline=None,
    *,
    logits: bool = True,
    batch_size: int = 128,
):
    """DeepLIFT with the rescale rule: each input value's share of `f(x) - f(baseline)`.

    Every elementwise activation (the `activation` of `Dense`, `Conv*` and the like,
    and `Activation` layers) back-propagates the multiplier
    `(f(z) - f(z0)) / (z - z0)` between its pre-activation for the input `z` and for
    the baseline `z0` instead of its derivative; the attributions are
    `(x - baseline) * d f / d x` under those multipliers, so they add up to
    `f(x) - f(baseline)` exactly for networks of such layers (the summation-to-delta
    property; captum's `DeepLift`). Layers with nonlinearities inside (pooling by
    maximum, LSTM, attention, normalization) pass gradients as they are, as captum does
    for modules it has no rule for, and the sum is then approximate.

    Args:
        model, inputs, class_index, output, logits: As for `saliency`.
        baseline: The reference input, as for `integrated_gradients` (default zeros).
        batch_size: Examples (and as many baselines) per forward/backward pass.

    Returns:
        Raw float32 attributions shaped like each float input.

    Raises:
        ValueError: bad inputs, classes, output or baseline.
        TypeError: `model` is not a `keras.Model`, or has only integer inputs.

    Reference:
        Shrikumar, Greenside and Kundaje, "Learning Important Features Through
        Propagating Activation Differences", ICML 2017.

    Example:

    ```python
    attributions = kbm.explain.deeplift(mlp, rows, classes)
    ```
    """
    from keras_bigmodel.explain._gradients import value_and_gradients
    from keras_bigmodel.explain.methods import _baselines

    batch_size = v.check_positive_int("batch_size", batch_size)
    plain, arrays, classes = _prepare(model, inputs, class_index, output, logits)
    if plain.graph is None:
        raise ValueError(
            f"Model '{model.name}' is subclassed: DeepLIFT replays a model's layers to change "
            f"how their activations pass gradients; use integrated_gradients() instead"
        )
    view = ModelView(model, output=output, logits=logits, rescale=True)
    positions = _float_positions(view, "deeplift")
    baselines = _baselines(view, arrays, baseline)
    cache = view.cache_key("deeplift", tuple(positions))

    def fn(leaves, constants, references, chunk_classes):
        tensors = []
        for i, (c, r) in enumerate(zip(constants, references)):
            x = leaves[positions.index(i)] if i in positions else c
            tensors.append(keras.ops.concatenate([x, keras.ops.cast(r, x.dtype)], axis=0))
        both = keras.ops.concatenate([chunk_classes, chunk_classes], axis=0)
        return view.scores(tensors, both)[: chunk_classes.shape[0]], ()

    out = [np.zeros(arrays[p].shape, "float32") for p in positions]
    total = len(classes)
    pad = keras.backend.backend() == "jax" and total > batch_size
    for start in range(0, total, batch_size):
        stop = min(start + batch_size, total)
        rows = np.arange(start, start + batch_size if pad else stop).clip(max=stop - 1)
        chunk = [a[rows] for a in arrays]
        refs = [baselines[i][rows] if i in positions else a[rows] for i, a in enumerate(arrays)]
        constants = [None if i in positions else a for i, a in enumerate(chunk)]
        _, _, grads = value_and_gradients(
            fn,
            [chunk[p] for p in positions],
            args=(constants, refs, classes[rows]),
            cache=cache,
        )
        for k, (p, g) in enumerate(zip(positions, grads)):
            part = (chunk[p] - refs[p]) * g
            out[k][start:stop] = part[: stop - start]
    result = [None] * len(arrays)
    for p, a in zip(positions, out):
        result[p] = a
    return view.by_input(result, keep=positions)


# ---------------------------------------------------------------------- occlusion
def scores_in_chunks(view: ModelView, arrays: list, classes: np.ndarray, batch_size: int = 256):
    """`view.scores` of many examples, in chunks of `batch_size` (padded to one shape on
    JAX, so one compiled program serves them all), as a float32 NumPy array."""
    total = len(classes)
    out = np.zeros(total, "float32")
    size = min(batch_size, total)
    pad = keras.backend.backend() == "jax"
    for start in range(0, total, size):
        stop = min(start + size, total)
        rows = np.arange(start, start + size if pad else stop).clip(max=stop - 1)
        values = evaluate(
            view.scores,
            [a[rows] for a in arrays],
            args=(classes[rows],),
            cache=view.cache_key("scores"),
        )
        out[start:stop] = values[: stop - start]
    return out


def occlusion(
    model: keras.Model,
    inputs,
    class_index,
    window,
    stride=None,
    baseline: float = 0.0,
    output: Output = None,
    *,
    input: str | None = None,
    logits: bool = True,
    batch_size: int = 256,
):
    """Occlusion: how much the score drops when a window of the input is replaced.

    A window of shape `window` slides over one input with step `stride` (from 0, so
    that the last window reaches the end; windows are cut at the edges); at each
    position the window's values are set to `baseline` and every value in it gets
    `f(x) - f(occluded)`; each value's attribution is the mean over the windows that
    cover it (captum's `Occlusion`).

    Args:
        model, inputs, class_index, output, logits, batch_size: As for `saliency`.
        window: The window's shape over one example, e.g. `(2, 2, 1)` for an image
            `(H, W, 1)`; for an image a 2-tuple covers every channel at once.
        stride: The step per axis (an int for all); defaults to `window` (no overlap).
        baseline: The value that replaces the occluded window.
        input: The input occluded, by name (the only float input by default).

    Returns:
        A float32 array shaped like the occluded input.

    Raises:
        ValueError: a window or stride that does not fit the input, or bad inputs.

    Reference:
        Zeiler and Fergus, "Visualizing and Understanding Convolutional Networks", 2014.

    Example:

    ```python
    attributions = kbm.explain.occlusion(cnn, images, classes, window=(2, 2))
    ```
    """
    batch_size = v.check_positive_int("batch_size", batch_size)
    baseline = v.check_number("baseline", baseline)
    view, arrays, classes = _prepare(model, inputs, class_index, output, logits)
    index = input_position(view, input)
    x = arrays[index]
    shape = x.shape[1:]
    window = _window("window", window, shape)
    stride = window if stride is None else _window("stride", stride, shape, stride=True)
    counts = [math.ceil((d - w) / s) + 1 for d, w, s in zip(shape, window, stride)]
    masks = []
    for position in np.ndindex(*counts):
        mask = np.zeros(shape, bool)
        mask[tuple(slice(p * s, p * s + w) for p, s, w in zip(position, stride, window))] = True
        masks.append(mask)
    masks = np.stack(masks)  # (windows, *shape)
    batch, n = len(x), len(masks)
    base = scores_in_chunks(view, arrays, classes, batch_size)
    occluded = np.where(masks[None], np.float32(baseline), x[:, None]).reshape((-1,) + shape)
    feed = [np.repeat(a, n, axis=0) if i != index else occluded for i, a in enumerate(arrays)]
    scores = scores_in_chunks(view, feed, np.repeat(classes, n), batch_size)
    drops = (base[:, None] - scores.reshape(batch, n)).astype("float64")
    total = np.tensordot(drops, masks.astype("float64"), axes=1)  # (batch, *shape)
    return (total / masks.sum(axis=0)).astype("float32")


def _window(name, value, shape, stride=False) -> tuple:
    """A window (or stride) per axis of an example: an int covers that many positions
    along every axis but the last, whose size it takes whole (channels, features); a
    tuple one entry short does the same."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        value = (int(value),) * (len(shape) if stride else max(len(shape) - 1, 1))
    value = v.check_int_tuple(name, value)
    if len(value) == len(shape) - 1:
        value = value + ((1,) if stride else (shape[-1],))
    if len(value) != len(shape) or (not stride and any(w > d for w, d in zip(value, shape))):
        raise ValueError(
            f"`{name}` must have one positive entry per axis of an example {shape}"
            + ("" if stride else " (each at most that axis's size)")
            + f". Received: {name}={value!r}"
        )
    return value


def input_position(view: ModelView, name: str | None) -> int:
    """The position of the input named `name` (the only float input by default)."""
    floats = view.float_inputs()
    if name is None:
        if len(floats) != 1:
            raise ValueError(
                f"Model '{view.model.name}' has float inputs "
                f"{[view.input_names[i] for i in floats]}; pick the one to perturb with "
                f"input=<name>"
            )
        return floats[0]
    if name not in view.input_names or view.input_names.index(name) not in floats:
        raise ValueError(
            f"`input` must name a float input of the model, one of "
            f"{[view.input_names[i] for i in floats]}. Received: input={name!r}"
        )
    return view.input_names.index(name)


def baseline_like(name: str, baseline, x: np.ndarray) -> np.ndarray:
    """A baseline (a number, an example or a batch) as an array shaped like `x`."""
    if isinstance(baseline, numbers.Real) and not isinstance(baseline, bool):
        return np.full(x.shape, float(baseline), "float32")
    b = np.asarray(baseline, dtype="float32") if baseline is not None else None
    if b is not None and b.shape == x.shape[1:]:
        b = np.broadcast_to(b, x.shape)
    if b is None or b.shape != x.shape or not np.all(np.isfinite(b)):
        raise ValueError(
            f"`{name}` must be a finite number, or an array shaped like one example "
            f"{x.shape[1:]} or like the batch {x.shape}. Received: {shown(baseline)}"
        )
    return np.array(b, dtype="float32")
