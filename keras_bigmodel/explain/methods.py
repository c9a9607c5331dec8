"""Input-gradient methods: saliency, SmoothGrad and integrated gradients, on every backend.

All three differentiate one score per example (the explained class's logit, see
`ModelView`) with respect to the model's float inputs, with the backend's own
autodiff. Saliency and SmoothGrad return maps normalized to [0, 1] exactly as
tf-keras-vis does; integrated gradients return raw attributions, which add up to
`f(inputs) - f(baseline)` (their completeness property; `class_scores` gives `f`).
"""

from __future__ import annotations

import numbers

import keras
import numpy as np

from keras_bigmodel import validation as v
from keras_bigmodel.explain._gradients import evaluate, value_and_gradients
from keras_bigmodel.explain._model import (
    ModelView,
    input_kind,
    normalize,
    reduce_channels,
)

__all__ = [
    "attribution_map",
    "class_scores",
    "integrated_gradients",
    "saliency",
    "smoothgrad",
]

Output = str | int | None


def _float_positions(view: ModelView, function: str) -> list[int]:
    positions = view.float_inputs()
    if not positions:
        raise TypeError(
            f"{function} differentiates the model's float inputs, and '{view.model.name}' has "
            f"only integer inputs {view.input_names} (token ids carry no gradient); explain it "
            f"with kbm.explain.attention_scores, or feed embeddings as float inputs"
        )
    return positions


def _input_gradients(
    view: ModelView,
    arrays: list,
    classes: np.ndarray,
    positions: list[int],
    batch_size: int,
):
    """d score / d input for the float inputs at `positions`, in chunks of `batch_size`."""
    grads = [np.zeros(arrays[p].shape, "float32") for p in positions]
    scores = np.zeros(len(classes), "float32")

    def fn(leaves, constants, chunk_classes):
        tensors = list(constants)
        for p, leaf in zip(positions, leaves):
            tensors[p] = leaf
        return view.scores(tensors, chunk_classes), ()

    cache = view.cache_key("input_gradients", tuple(positions))
    # On JAX every chunk has the same shape (the last one padded), so that one compiled
    # program serves them all.
    pad = keras.backend.backend() == "jax" and len(classes) > batch_size
    for start in range(0, len(classes), batch_size):
        stop = min(start + batch_size, len(classes))
        rows = np.arange(start, start + batch_size if pad else stop).clip(max=stop - 1)
        chunk = [a[rows] for a in arrays]
        constants = [None if i in positions else a for i, a in enumerate(chunk)]
        s, _, g = value_and_gradients(
            fn, [chunk[p] for p in positions], args=(constants, classes[rows]), cache=cache
        )
        scores[start:stop] = s[: stop - start]
        for out, part in zip(grads, g):
            out[start:stop] = part[: stop - start]
    return scores, grads


def _prepare(model, inputs, class_index, output, logits):
    view = ModelView(model, output=output, logits=logits)
    arrays = view.arrays(inputs)
    classes = view.class_indices(class_index, len(arrays[0]))
    return view, arrays, classes


def _maps(view: ModelView, positions: list[int], grads: list, how: str = "max"):
    maps = [None] * len(view.input_names)
    for p, g in zip(positions, grads):
        maps[p] = normalize(reduce_channels(g, input_kind(g.shape[1:]), how))
    return view.by_input(maps, keep=positions)


def saliency(
    model: keras.Model,
    inputs,
    class_index,
    output: Output = None,
    smooth_samples: int = 0,
    smooth_noise: float = 0.2,
    *,
    logits: bool = True,
    seed: int | None = 0,
    batch_size: int = 256,
):
    """Vanilla saliency (or SmoothGrad): |d score / d input|, normalized to [0, 1].

    The score is the explained class's logit: the final softmax or sigmoid is replaced
    by the identity (tf-keras-vis's `ReplaceToLinear`) without changing the model.
    Gradients come from the backend's autodiff, so this runs on TensorFlow, JAX and
    PyTorch, and equals tf-keras-vis's `Saliency` on TensorFlow.

    Args:
        model: A functional, Sequential or nested `keras.Model` (subclassed models only
            with `logits=False`).
        inputs: A batch: an array, or a list / dict (by input name) for several inputs.
        class_index: The class to explain: one integer for all examples or one per
            example. For a single-unit output, 0.
        output: For a model with several outputs, the output's name (dict outputs) or
            index (list outputs).
        smooth_samples: If > 0, SmoothGrad: the mean |gradient| over this many noisy
            copies of each input.
        smooth_noise: SmoothGrad's noise, as a fraction of each example's value range.
        logits: Explain the logits (default) or the model's outputs as they are.
        seed: Seed of SmoothGrad's noise (None: a fresh one each call).
        batch_size: Examples (noisy copies included) per forward/backward pass.

    Returns:
        Per input, a float32 map in [0, 1]: `(batch, H, W)` for images (channels
        reduced by their maximum, as tf-keras-vis does), `(batch, time, features)` for
        sequences and `(batch, features)` for vectors. One array for a single-input
        model, else a dict keyed by input name (float inputs only).

    Raises:
        ValueError: `inputs` do not fit the model, `class_index` is out of range, the
            model has several outputs and `output` is missing or unknown.
        TypeError: `model` is not a `keras.Model`, or has only integer inputs.

    Example:

    ```python
    maps = kbm.explain.saliency(cnn, images, class_index=[3, 1, 4])   # (3, H, W)
    ```
    """
    smooth_samples = _check_non_negative_int("smooth_samples", smooth_samples)
    smooth_noise = v.check_number("smooth_noise", smooth_noise, minimum=0.0)
    seed = v.check_seed("seed", seed)
    batch_size = v.check_positive_int("batch_size", batch_size)
    view, arrays, classes = _prepare(model, inputs, class_index, output, logits)
    positions = _float_positions(view, "saliency")
    if smooth_samples == 0:
        _, grads = _input_gradients(view, arrays, classes, positions, batch_size)
        grads = [np.abs(g) for g in grads]
    else:
        grads = _smooth_gradients(
            view,
            arrays,
            classes,
            positions,
            smooth_samples,
            smooth_noise,
            seed,
            batch_size,
        )
    return _maps(view, positions, grads)


def smoothgrad(
    model: keras.Model,
    inputs,
    class_index,
    output: Output = None,
    samples: int = 20,
    noise: float = 0.2,
    *,
    logits: bool = True,
    seed: int | None = 0,
    batch_size: int = 256,
):
    """SmoothGrad: saliency averaged over noisy copies of the inputs (less speckle).

    The same as `saliency(..., smooth_samples=samples, smooth_noise=noise)`; see
    `saliency` for the arguments and the maps returned.

    Reference:
        Smilkov et al., "SmoothGrad: removing noise by adding noise", 2017.

    Example:

    ```python
    maps = kbm.explain.smoothgrad(cnn, images, classes, samples=20, seed=0)
    ```
    """
    samples = v.check_positive_int("samples", samples)
    return saliency(
        model,
        inputs,
        class_index,
        output=output,
        smooth_samples=samples,
        smooth_noise=noise,
        logits=logits,
        seed=seed,
        batch_size=batch_size,
    )


def _smooth_gradients(view, arrays, classes, positions, samples, noise, seed, batch_size):
    rng = np.random.default_rng(seed)
    batch = len(classes)
    noisy = []
    for i, a in enumerate(arrays):
        if i not in positions:
            noisy.append(np.concatenate([a] * samples))
            continue
        axes = tuple(range(1, a.ndim))
        sigma = noise * (a.max(axis=axes, keepdims=True) - a.min(axis=axes, keepdims=True))
        copies = [
            a + rng.normal(0.0, 1.0, a.shape).astype("float32") * sigma for _ in range(samples)
        ]
        noisy.append(np.concatenate(copies).astype("float32"))
    _, grads = _input_gradients(view, noisy, np.tile(classes, samples), positions, batch_size)
    return [np.abs(g).reshape((samples, batch) + g.shape[1:]).mean(axis=0) for g in grads]


def class_scores(
    model: keras.Model,
    inputs,
    class_index,
    output: Output = None,
    *,
    logits: bool = True,
) -> np.ndarray:
    """The score the gradient methods explain: each example's logit for its class.

    Args:
        model, inputs, class_index, output, logits: As for `saliency`.

    Returns:
        A float32 array `(batch,)`: the explained class's logit (its output with
        `logits=False`). Integrated gradients add up to
        `class_scores(x) - class_scores(baseline)`.

    Example:

    ```python
    kbm.explain.class_scores(cnn, images, 3)   # the logits of class 3
    ```
    """
    view, arrays, classes = _prepare(model, inputs, class_index, output, logits)
    positions = view.float_inputs()
    if keras.backend.backend() == "jax" and positions and view.graph is not None:
        # The program saliency compiled for these shapes also gives the scores: reusing
        # it saves an XLA compile, which costs more than the backward pass it includes.
        scores, _ = _input_gradients(view, arrays, classes, positions, len(classes))
        return scores
    return evaluate(view.scores, arrays, args=(classes,), cache=view.cache_key("scores"))


def integrated_gradients(
    model: keras.Model,
    inputs,
    class_index,
    output: Output = None,
    baseline=None,
    steps: int = 32,
    *,
    logits: bool = True,
    batch_size: int = 256,
):
    """Integrated gradients: each input value's share of `f(inputs) - f(baseline)`.

    `attribution_i = (x_i - x'_i) * integral_0^1 d f(x' + a (x - x')) / d x_i da`, with
    `f` the explained class's logit and `x'` the baseline. The integral is computed by
    Gauss-Legendre quadrature with `steps` points, so the attributions add up to
    `f(x) - f(x')` (completeness) to within a fraction of a percent for smooth models.
    With ReLUs the integrand jumps where units switch on or off and the error falls only
    as 1/steps: check `attributions.sum() - (class_scores(x) - class_scores(x'))` and
    raise `steps` if it matters. Runs on TensorFlow, JAX and PyTorch.

    Args:
        model: A functional, Sequential or nested `keras.Model`.
        inputs: A batch: an array, or a list / dict (by input name) for several inputs.
        class_index: One integer for all examples or one per example.
        output: For several outputs, the output's name (dict) or index (list).
        baseline: The reference input: None (zeros), a number, an array shaped like
            one example or like the batch, or for several inputs a list / dict of
            those (integer inputs are never interpolated: they stay as given).
        steps: Quadrature points along the path (more is more exact).
        logits: Explain the logits (default) or the model's outputs as they are.
        batch_size: Path points times examples per forward/backward pass.

    Returns:
        Raw (signed) float32 attributions shaped like each float input: one array for a
        single-input model, else a dict keyed by input name. `attribution_map` turns
        them into [0, 1] maps for display.

    Raises:
        ValueError: bad `inputs`, `class_index`, `output`, `baseline` or `steps`.
        TypeError: `model` is not a `keras.Model`, or has only integer inputs.

    Reference:
        Sundararajan, Taly and Yan, "Axiomatic Attribution for Deep Networks", ICML 2017.

    Example:

    ```python
    attributions = kbm.explain.integrated_gradients(cnn, images, classes, steps=32)
    gap = kbm.explain.class_scores(cnn, images, classes) - kbm.explain.class_scores(
        cnn, np.zeros_like(images), classes)
    np.testing.assert_allclose(attributions.sum(axis=(1, 2, 3)), gap, rtol=1e-2)
    ```
    """
    steps = v.check_positive_int("steps", steps)
    batch_size = v.check_positive_int("batch_size", batch_size)
    view, arrays, classes = _prepare(model, inputs, class_index, output, logits)
    positions = _float_positions(view, "integrated_gradients")
    baselines = _baselines(view, arrays, baseline)
    nodes, weights = np.polynomial.legendre.leggauss(steps)
    alphas, weights = (nodes + 1.0) / 2.0, weights / 2.0
    batch = len(classes)
    per_pass = min(steps, max(1, batch_size // batch))
    # Equal passes (the last padded with zero-weight points): one shape for all of them.
    padding = -steps % per_pass
    alphas = np.concatenate([alphas, np.ones(padding)])
    weights = np.concatenate([weights, np.zeros(padding)])
    steps += padding
    totals = [np.zeros(arrays[p].shape, "float64") for p in positions]
    for start in range(0, steps, per_pass):
        chunk = alphas[start : start + per_pass]
        path = []
        for i, a in enumerate(arrays):
            if i in positions:
                base = baselines[i]
                path.append(
                    np.concatenate([base + alpha * (a - base) for alpha in chunk]).astype("float32")
                )
            else:
                path.append(np.concatenate([a] * len(chunk)))
        _, grads = _input_gradients(
            view, path, np.tile(classes, len(chunk)), positions, max(batch_size, batch)
        )
        for total, g in zip(totals, grads):
            g = g.reshape((len(chunk), batch) + g.shape[1:])
            total += np.tensordot(weights[start : start + len(chunk)], g, axes=1)
    attributions = [None] * len(arrays)
    for p, total in zip(positions, totals):
        attributions[p] = ((arrays[p] - baselines[p]) * total).astype("float32")
    return view.by_input(attributions, keep=positions)


def _baselines(view: ModelView, arrays: list, baseline) -> list:
    names = view.input_names
    if baseline is None:
        given = [None] * len(arrays)
    elif isinstance(baseline, dict):
        unknown = sorted(set(baseline) - set(names))
        if unknown:
            raise ValueError(
                f"`baseline` names inputs {unknown} the model does not have; its inputs are {names}"
            )
        given = [baseline.get(n) for n in names]
    elif isinstance(baseline, (list, tuple)) and len(names) > 1:
        if len(baseline) != len(names):
            raise ValueError(
                f"`baseline` must have one entry per model input {names}. Received "
                f"{len(baseline)} entries"
            )
        given = list(baseline)
    else:
        given = [baseline] + [None] * (len(arrays) - 1)
    out = []
    for name, a, b in zip(names, arrays, given):
        if b is None:
            out.append(np.zeros_like(a))
            continue
        if isinstance(b, numbers.Real) and not isinstance(b, bool):
            b = np.full(a.shape[1:], float(b), "float32")
        b = np.asarray(b, dtype="float32")
        if b.shape == a.shape[1:]:
            b = np.broadcast_to(b, a.shape)
        if b.shape != a.shape or not np.all(np.isfinite(b)):
            raise ValueError(
                f"`baseline` for input '{name}' must be a finite number or array of shape "
                f"{a.shape[1:]} (one example) or {a.shape} (the batch). Received: "
                f"{'array of shape ' + str(b.shape) if b.ndim else repr(baseline)}"
            )
        out.append(b.astype("float32"))
    return out


def _check_non_negative_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(f"`{name}` must be a non-negative integer. Received: {name}={value!r}")
    return int(value)


def attribution_map(attributions):
    """Attributions (e.g. from `integrated_gradients`) as maps in [0, 1] for display.

    Args:
        attributions: An array `(batch, ...)` or a dict of them (by input name).

    Returns:
        The same structure: |attribution| summed over the channels of images
        (`(batch, H, W, C)` -> `(batch, H, W)`), kept per step and feature for
        sequences and per feature for vectors, and scaled to [0, 1] per example.

    Example:

    ```python
    maps = kbm.explain.attribution_map(kbm.explain.integrated_gradients(cnn, x, 3))
    ```
    """
    if isinstance(attributions, dict):
        return {k: attribution_map(a) for k, a in attributions.items()}
    a = np.asarray(attributions, dtype="float32")
    if a.ndim < 2 or not np.all(np.isfinite(a)):
        raise ValueError(
            f"`attributions` must be finite, of shape (batch, ...). Received shape {a.shape}"
        )
    kind = input_kind(a.shape[1:])
    return normalize(reduce_channels(np.abs(a), kind, how="sum"))
