"""Metrics of explanations: faithfulness, robustness, a sanity check and localisation.

Every metric runs the model through `ModelView` with `keras.ops` and the backend's
autodiff only where the explanation needs it, so it works on TensorFlow, JAX and
PyTorch, for any model and method `kbm.explain` handles.

Attributions may be shaped like one input (`(batch, H, W, C)`) or lack its trailing
axes (`(batch, H, W)` for an image map, `(batch, time)` for attention over a
sequence): a "unit" is then one element of the map, and perturbing a unit perturbs
every value under it (all channels of a pixel, all features of a step).

- `deletion` / `insertion` (Petsiuk et al., RISE, 2018): the class's probability as
  the most important units are removed (set to the baseline) / put back into the
  baseline, in `steps` equal fractions, and the area under that curve. Lower is better
  for deletion, higher for insertion.
- `road` (Rong et al., ICML 2022): as deletion, but a removed unit is imputed from its
  neighbours (noisy linear imputation) so that the removal itself leaks less; no
  retraining. Lower AUC is better for the most-relevant-first order.
- `infidelity` (Yeh et al., NeurIPS 2019) and `max_sensitivity`: captum's definitions,
  with the same perturbation layout (each example's draws consecutive), so that given
  the same noise they equal `captum.metrics.infidelity` / `sensitivity_max`. Lower is
  better for both.
- `randomisation` (Adebayo et al., NeurIPS 2018, model parameter randomisation): the
  layers' weights are redrawn from the top layer down, cumulatively, and each step's
  maps are compared to the original maps. A method that depends on the model falls to
  low similarity; one that ignores it (an edge detector, the input) stays near 1.
- `pointing_game` (Zhang et al., 2016): whether each map's maximum falls inside the
  region known to hold the evidence (`synthetic` tasks provide such regions).
"""

from __future__ import annotations

from collections.abc import Callable

import keras
import numpy as np

from keras_bigmodel import validation as v
from keras_bigmodel.explain._model import ModelView, shown
from keras_bigmodel.explain.attribution import (
    baseline_like,
    input_position,
    scores_in_chunks,
)

__all__ = [
    "deletion",
    "infidelity",
    "insertion",
    "max_sensitivity",
    "pointing_game",
    "randomisation",
    "road",
    "spearman",
]

Output = str | int | None


# --------------------------------------------------------------------- shared
def _setup(model, inputs, class_index, output, logits, input):
    view = ModelView(model, output=output, logits=logits)
    arrays = view.arrays(inputs)
    classes = view.class_indices(class_index, len(arrays[0]))
    return view, arrays, classes, input_position(view, input)


def _units(name: str, attributions, x: np.ndarray) -> np.ndarray:
    """Attributions as `(batch, units)` float64, checked against the input `x`."""
    if isinstance(attributions, dict):
        raise ValueError(
            f"`{name}` must be one array (the perturbed input's); for a model with several "
            f"inputs pass attributions[input_name] and input=<name>. Received a dict with "
            f"keys {sorted(attributions)}"
        )
    a = np.asarray(keras.ops.convert_to_numpy(attributions), dtype="float64")
    if a.shape != x.shape[: a.ndim] or a.ndim < 2 or not np.all(np.isfinite(a)):
        raise ValueError(
            f"`{name}` must be finite and shaped like the input {x.shape} or like its "
            f"leading axes (e.g. {x.shape[:-1]} for a map without channels). Received: "
            f"{shown(attributions)}"
        )
    return a.reshape(len(a), -1)


def _full(units: np.ndarray, x: np.ndarray) -> np.ndarray:
    """`(batch, units)` spread over the trailing axes of `x` (a unit's every value)."""
    per_unit = x.size // units.size
    return np.repeat(units, per_unit, axis=1).reshape(x.shape)


def _curve(view, arrays, classes, index, units, start, end, steps, batch_size):
    """Scores as the top-ranked units of `start` are replaced by those of `end`."""
    x = arrays[index]
    batch, n_units = units.shape
    per_unit = x.size // (batch * n_units)
    order = np.argsort(-units, axis=1, kind="stable")  # most relevant first; ties by index
    counts = np.round(np.linspace(0, n_units, steps + 1)).astype(int)
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(n_units)[None].repeat(batch, 0), axis=1)
    feeds = []
    s = start.reshape(batch, n_units, per_unit)
    e = end.reshape(batch, n_units, per_unit)
    for count in counts:
        taken = (ranks < count)[..., None]
        feeds.append(np.where(taken, e, s).reshape(x.shape))
    stacked = np.stack(feeds, axis=1).reshape((-1,) + x.shape[1:])  # example-major
    feed = [
        np.repeat(a, steps + 1, axis=0) if i != index else stacked for i, a in enumerate(arrays)
    ]
    scores = scores_in_chunks(view, feed, np.repeat(classes, steps + 1), batch_size)
    fractions = counts / n_units
    curves = scores.reshape(batch, steps + 1)
    return {"fractions": fractions, "scores": curves, "auc": _auc(curves, fractions)}


def _auc(curves, fractions):
    return np.asarray(
        np.sum((curves[:, 1:] + curves[:, :-1]) / 2.0 * np.diff(fractions), axis=1), "float32"
    )


# ----------------------------------------------------------- deletion / insertion
def deletion(
    model: keras.Model,
    inputs,
    class_index,
    attributions,
    *,
    steps: int = 10,
    baseline=0.0,
    output: Output = None,
    input: str | None = None,
    logits: bool = False,
    batch_size: int = 256,
) -> dict:
    """The deletion curve: the class's score as the most relevant units are removed.

    Units are ranked by attribution (largest first; ties by position). At step `k` of
    `steps`, the top `round(k / steps * units)` units are set to `baseline`; the curve
    holds the score at the `steps + 1` fractions 0, 1/steps, ..., 1, and its area
    (trapezoid rule over the fraction) is the AUC: lower means the map found what the
    model needs. The score is the class's output (a probability for a softmax model:
    `logits=False`), or its logit with `logits=True`.

    Against Quantus 0.6.0 (tests/test_explain_quantus.py, equal within 1e-5 with
    `normalise=False`, `perturb_baseline=0.0`): `PixelFlipping(features_in_step=k)` is
    this curve with `steps = units / k`, without the first point (the unperturbed
    input); its AUC (`np.trapz`, `dx=1`, over its points) is `steps * auc - (s_0 + s_1)
    / 2`; its `softmax=False` is `logits=True`. `RegionPerturbation` is this curve of a
    map constant on each patch (the patch's sum), one patch a step, as the drop
    `s_0 - s_k`. Quantus ranks each channel's value separately and breaks ties
    unstably; here a unit is a pixel (all channels) and ties go by position. Quantus has
    no insertion; it is pixel flipping from the baseline image that restores values.

    Args:
        model: A model `kbm.explain` handles.
        inputs: A batch (array, or list / dict by input name).
        class_index: One class for all examples or one per example.
        attributions: A map per example for the perturbed input, shaped like it or like
            its leading axes (e.g. `(batch, H, W)` for `(batch, H, W, C)` images).
        steps: Fractions removed, after the unperturbed input (at least 1).
        baseline: What removed values become: a number (default 0: black pixels, zero
            features), an array like one example, or like the batch.
        output: For several outputs, the output's name (dict) or index (list).
        input: The input perturbed, by name, for a model with several float inputs.
        logits: Score the logits instead of the outputs.
        batch_size: Perturbed copies per forward pass.

    Returns:
        A dict: `fractions` `(steps + 1,)`, `scores` `(batch, steps + 1)`, `auc`
        `(batch,)`.

    Raises:
        ValueError: attributions that do not fit the input, a bad `steps`, `baseline`,
            `input`, `class_index` or `output`.

    Example:

    ```python
    result = kbm.explain.metrics.deletion(cnn, images, classes, maps)
    result["auc"].mean()
    ```
    """
    return _deletion_or_insertion(
        model,
        inputs,
        class_index,
        attributions,
        steps,
        baseline,
        output,
        input,
        logits,
        batch_size,
        insert=False,
    )


def insertion(
    model: keras.Model,
    inputs,
    class_index,
    attributions,
    *,
    steps: int = 10,
    baseline=0.0,
    output: Output = None,
    input: str | None = None,
    logits: bool = False,
    batch_size: int = 256,
) -> dict:
    """The insertion curve: the class's score as the most relevant units are put back
    into the baseline (all units at the baseline first, then the top fractions restored).
    Higher AUC is better. Arguments and result as for `deletion`.

    Example:

    ```python
    kbm.explain.metrics.insertion(cnn, images, classes, maps)["auc"]
    ```
    """
    return _deletion_or_insertion(
        model,
        inputs,
        class_index,
        attributions,
        steps,
        baseline,
        output,
        input,
        logits,
        batch_size,
        insert=True,
    )


def _deletion_or_insertion(
    model,
    inputs,
    class_index,
    attributions,
    steps,
    baseline,
    output,
    input,
    logits,
    batch_size,
    insert,
):
    steps = v.check_positive_int("steps", steps)
    batch_size = v.check_positive_int("batch_size", batch_size)
    view, arrays, classes, index = _setup(model, inputs, class_index, output, logits, input)
    x = arrays[index]
    units = _units("attributions", attributions, x)
    base = baseline_like("baseline", baseline, x)
    start, end = (base, x) if insert else (x, base)
    return _curve(view, arrays, classes, index, units, start, end, steps, batch_size)


# ------------------------------------------------------------------------ ROAD
def road(
    model: keras.Model,
    inputs,
    class_index,
    attributions,
    *,
    fractions=(0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9),
    order: str = "morf",
    noise: float = 0.01,
    seed: int | None = 0,
    output: Output = None,
    input: str | None = None,
    logits: bool = False,
    batch_size: int = 256,
) -> dict:
    """ROAD (RemOve And Debias): the score as units are removed and imputed.

    For each fraction, the top (`order="morf"`, most relevant first) or bottom
    (`"lerf"`) fraction of units is removed, and each removed value is replaced by
    the weighted mean of its neighbours on the example's grid (the two spatial axes of
    an image, the time axis of a sequence, the feature axis of a vector; direct
    neighbours weigh 1/6, diagonal ones 1/12, as in the paper), solved jointly for all
    removed values of a channel (a sparse linear system), plus Gaussian noise of
    standard deviation `noise`. This noisy linear imputation removes the information
    without the tell-tale shape of a baseline-filled mask. No retraining.

    Against Quantus 0.6.0's `ROAD` (tests/test_explain_quantus.py): with `noise=0` the
    imputed images equal those of its `noisy_linear_imputation` (within 1e-7) and so
    do the scores. Quantus removes `int(H * W * p / 100)` pixels at percentage `p`
    (floor), this `round(fraction * units)`: the fraction `int(units * p / 100) /
    units` gives its count. It reports accuracy (argmax equals the label) per
    percentage, averaged over the batch, rather than the label's score; for two
    classes that is `scores > 0.5`. It ranks the `C * H * W` values of the
    channels-first input but imputes by indices into `H * W`, so on images of several
    channels it fails (IndexError) once a chosen index passes `H * W`; here a unit is
    a pixel and each of its channels is imputed (every channel solved alike).

    Args:
        model, inputs, class_index, attributions, output, input, logits, batch_size:
            As for `deletion`.
        fractions: The fractions of units removed, each in [0, 1).
        order: `"morf"` (lower AUC is better) or `"lerf"` (higher is better).
        noise: The imputation's noise (standard deviation).
        seed: Seed of the noise.

    Returns:
        A dict: `fractions`, `scores` `(batch, len(fractions))`, `auc` `(batch,)`.

    Raises:
        ValueError: bad `fractions`, `order`, `noise` or the arguments of `deletion`.

    Reference:
        Rong et al., "A Consistent and Efficient Evaluation Strategy for Attribution
        Methods", ICML 2022.

    Example:

    ```python
    kbm.explain.metrics.road(cnn, images, classes, maps)["auc"]
    ```
    """
    v.check_choice("order", order, ("morf", "lerf"))
    noise = v.check_number("noise", noise, minimum=0.0)
    seed = v.check_seed("seed", seed)
    batch_size = v.check_positive_int("batch_size", batch_size)
    fractions = _fractions(fractions)
    view, arrays, classes, index = _setup(model, inputs, class_index, output, logits, input)
    x = arrays[index]
    units = _units("attributions", attributions, x)
    grid = _grid_shape(x.shape[1:], units.shape[1])
    rng = np.random.default_rng(seed)
    sign = -1.0 if order == "morf" else 1.0
    ranks = np.argsort(np.argsort(sign * units, axis=1, kind="stable"), axis=1)
    feeds = []
    for i in range(len(x)):
        for fraction in fractions:
            removed = ranks[i] < round(fraction * units.shape[1])
            feeds.append(_impute(x[i], removed.reshape(grid), noise, rng))
    n = len(fractions)
    stacked = np.stack(feeds).astype("float32")
    feed = [np.repeat(a, n, axis=0) if j != index else stacked for j, a in enumerate(arrays)]
    scores = scores_in_chunks(view, feed, np.repeat(classes, n), batch_size).reshape(len(x), n)
    return {"fractions": fractions, "scores": scores, "auc": _auc(scores, fractions)}


def _fractions(fractions) -> np.ndarray:
    try:
        values = np.asarray(fractions, dtype="float64")
    except (TypeError, ValueError):
        values = None
    if (
        values is None
        or values.ndim != 1
        or len(values) < 2
        or np.any(values < 0)
        or np.any(values >= 1)
        or np.any(np.diff(values) <= 0)
    ):
        raise ValueError(
            f"`fractions` must be at least two increasing numbers in [0, 1). Received: "
            f"fractions={shown(fractions)}"
        )
    return values


def _grid_shape(shape: tuple, n_units: int) -> tuple:
    """The grid a unit lives on: the map's own axes."""
    grid, size = [], 1
    for d in shape:
        if size == n_units:
            break
        grid.append(d)
        size *= d
    return tuple(grid)


def _impute(example: np.ndarray, removed: np.ndarray, noise: float, rng) -> np.ndarray:
    """Noisy linear imputation of the `removed` grid cells of one example."""
    from scipy.sparse import lil_matrix
    from scipy.sparse.linalg import spsolve

    grid = removed.shape
    values = example.reshape(grid + (-1,)).astype("float64")
    out = values.copy()
    cells = np.argwhere(removed)
    if len(cells) == 0:
        return example
    number = {tuple(c): k for k, c in enumerate(cells)}
    offsets = [
        (o, 1.0 / 6.0 if sum(map(abs, o)) == 1 else 1.0 / 12.0)
        for o in np.ndindex(*(3,) * len(grid))
        for o in [tuple(i - 1 for i in o)]
        if any(o) and sum(map(abs, o)) <= 2
    ]
    matrix = lil_matrix((len(cells), len(cells)))
    rhs = np.zeros((len(cells), values.shape[-1]))
    for k, cell in enumerate(cells):
        total = 0.0
        for offset, weight in offsets:
            other = tuple(int(c + o) for c, o in zip(cell, offset))
            if any(c < 0 or c >= d for c, d in zip(other, grid)):
                continue
            total += weight
            if other in number:
                matrix[k, number[other]] -= weight
            else:
                rhs[k] += weight * values[other]
        matrix[k, k] += total
    solved = spsolve(matrix.tocsc(), rhs)
    solved = np.asarray(solved).reshape(len(cells), -1)
    solved = solved + rng.normal(0.0, noise, solved.shape) if noise else solved
    out[tuple(cells.T)] = solved
    return out.reshape(example.shape).astype("float32")


# ------------------------------------------------------- infidelity, sensitivity
def infidelity(
    model: keras.Model,
    inputs,
    class_index,
    attributions,
    *,
    samples: int | None = None,
    scale: float = 0.1,
    noise=None,
    seed: int | None = 0,
    normalize: bool = False,
    output: Output = None,
    input: str | None = None,
    logits: bool = True,
    batch_size: int = 256,
) -> np.ndarray:
    """Infidelity: how badly attributions predict the score's change under noise.

    With perturbations `I` (Gaussian, standard deviation `scale`, or the `noise`
    given) and `f` the explained score (the logit by default, which gradient methods
    explain): `E_I[(sum(I * attributions) - (f(x) - f(x - I)))^2]`, the mean over
    `samples` draws (captum's `infidelity` with `perturb_func` returning
    `(I, x - I)`). With `normalize=True`, the attributions are first scaled by the
    least-squares factor `beta` (captum's `normalize`). Lower is better.

    Args:
        model, inputs, class_index, output, input, batch_size: As for `deletion`.
        attributions: Shaped like the perturbed input or its leading axes (a map
            without channels is spread over them).
        samples: Perturbations per example (default: 10, or as many as `noise` holds).
        scale: The Gaussian perturbation's standard deviation.
        noise: Optional perturbations `(batch, samples, ...)` shaped like the input,
            used instead of drawing them (how the tests give captum the same noise).
        seed: Seed of the draws.
        normalize: Scale the attributions by `beta` first.
        logits: Score the logits (default) or the outputs.

    Returns:
        A float32 array `(batch,)`.

    Raises:
        ValueError: bad `noise`, `samples`, `scale`, attributions or inputs.

    Reference:
        Yeh et al., "On the (In)fidelity and Sensitivity of Explanations", NeurIPS 2019.

    Example:

    ```python
    kbm.explain.metrics.infidelity(cnn, images, classes, kbm.explain.input_x_gradient(
        cnn, images, classes))
    ```
    """
    samples = _samples(samples, noise)
    scale = v.check_number("scale", scale, minimum=0.0)
    seed = v.check_seed("seed", seed)
    v.check_bool("normalize", normalize)
    batch_size = v.check_positive_int("batch_size", batch_size)
    view, arrays, classes, index = _setup(model, inputs, class_index, output, logits, input)
    x = arrays[index]
    a = _full(_units("attributions", attributions, x), x)
    batch = len(x)
    if noise is None:
        rng = np.random.default_rng(seed)
        noise = rng.normal(0.0, scale, (batch, samples) + x.shape[1:])
    noise = _noise("noise", noise, x, samples)
    perturbed = (x[:, None] - noise).reshape((-1,) + x.shape[1:]).astype("float32")
    feed = [
        np.repeat(b, samples, axis=0) if i != index else perturbed for i, b in enumerate(arrays)
    ]
    f_x = scores_in_chunks(view, arrays, classes, batch_size).astype("float64")
    f_p = scores_in_chunks(view, feed, np.repeat(classes, samples), batch_size)
    diffs = f_x[:, None] - f_p.reshape(batch, samples).astype("float64")
    dots = (noise.reshape(batch, samples, -1) * a.reshape(batch, 1, -1)).sum(axis=2)
    if normalize:
        beta = (dots * diffs).sum(1) / np.where((dots**2).sum(1) == 0, 1.0, (dots**2).sum(1))
        dots = beta[:, None] * dots
    return ((dots - diffs) ** 2).mean(axis=1).astype("float32")


def _samples(samples, noise) -> int:
    """Perturbations per example: `samples` (default 10), or as many as `noise` holds."""
    if samples is None:
        shape = np.shape(noise) if noise is not None else ()
        return int(shape[1]) if len(shape) > 1 else 10
    return v.check_positive_int("samples", samples)


def _noise(name, noise, x, samples) -> np.ndarray:
    n = np.asarray(keras.ops.convert_to_numpy(noise), dtype="float64")
    want = (len(x), samples) + x.shape[1:]
    if n.shape != want or not np.all(np.isfinite(n)):
        raise ValueError(
            f"`{name}` must be finite perturbations of shape (batch, samples, ...) = {want}. "
            f"Received: {shown(noise)}"
        )
    return n


def max_sensitivity(
    model: keras.Model,
    inputs,
    class_index,
    method: str | Callable = "saliency",
    *,
    radius: float = 0.02,
    samples: int | None = None,
    noise=None,
    seed: int | None = 0,
    output: Output = None,
    input: str | None = None,
    options: dict | None = None,
) -> np.ndarray:
    """Max-sensitivity: the largest relative change of an explanation under small noise.

    `max_j ||e(x + d_j) - e(x)|| / ||e(x)||` over `samples` perturbations `d_j`
    drawn uniformly in `[-radius, radius]` (Frobenius norms; a zero `e(x)` counts as
    norm 1), captum's `sensitivity_max` with its default perturbation. Lower is better.

    Args:
        model, inputs, class_index, output, input: As for `deletion`.
        method: A method name known to `kbm.explain.attributions` (e.g. `"saliency"`,
            `"integrated_gradients"`, `"gradcam"`), or a function
            `method(model, inputs, class_index) -> attributions`.
        radius: The perturbation's half-width.
        samples: Perturbations per example (default: 10, or as many as `noise` holds).
        noise: Optional perturbations `(batch, samples, ...)` used instead of drawing.
        seed: Seed of the draws.
        options: Keyword arguments for the method.

    Returns:
        A float32 array `(batch,)`.

    Raises:
        ValueError: an unknown method, bad `noise`, `radius`, `samples` or inputs.

    Reference:
        Yeh et al., "On the (In)fidelity and Sensitivity of Explanations", NeurIPS 2019.

    Example:

    ```python
    kbm.explain.metrics.max_sensitivity(cnn, images, classes, "saliency")
    ```
    """
    radius = v.check_number("radius", radius, minimum=0.0)
    samples = _samples(samples, noise)
    seed = v.check_seed("seed", seed)
    view, arrays, classes, index = _setup(model, inputs, class_index, output, False, input)
    explain = _explainer(method, options, output, view.input_names[index])
    x = arrays[index]
    batch = len(x)
    if noise is None:
        rng = np.random.default_rng(seed)
        noise = rng.uniform(-radius, radius, (batch, samples) + x.shape[1:])
    noise = _noise("noise", noise, x, samples)
    perturbed = (x[:, None] + noise).reshape((-1,) + x.shape[1:]).astype("float32")
    feed = [
        np.repeat(b, samples, axis=0) if i != index else perturbed for i, b in enumerate(arrays)
    ]
    name = view.input_names[index]
    original = _pick(explain(model, _feed(view, arrays), classes), name)
    changed = _pick(explain(model, _feed(view, feed), np.repeat(classes, samples)), name)
    original = np.asarray(original, "float64").reshape(batch, -1)
    changed = np.asarray(changed, "float64").reshape(batch, samples, -1)
    norms = np.linalg.norm(original, axis=1)
    norms = np.where(norms == 0, 1.0, norms)
    distance = np.linalg.norm(changed - original[:, None], axis=2) / norms[:, None]
    return distance.max(axis=1).astype("float32")


def _explainer(method, options, output, input_name):
    from keras_bigmodel.explain.compare import attributions

    options = dict(options or {})
    if callable(method):
        return method
    from keras_bigmodel.explain.compare import ATTRIBUTION_METHODS

    v.check_choice("method", method, ATTRIBUTION_METHODS)

    def explain(model, feed, classes):
        return attributions(
            model, feed, classes, method, output=output, input=input_name, **options
        )

    return explain


def _feed(view: ModelView, arrays: list):
    if view.graph is not None and isinstance(view.graph.input, dict):
        return dict(zip(view.input_names, arrays))
    return arrays if len(arrays) > 1 else arrays[0]


def _pick(maps, name):
    return maps[name] if isinstance(maps, dict) else maps


# -------------------------------------------------------------- randomisation
def spearman(a, b) -> np.ndarray:
    """Spearman's rank correlation of each row of `a` with the same row of `b`
    (flattened; ties get their mean rank; a constant row correlates 0)."""
    from scipy.stats import rankdata

    a = np.asarray(a, "float64").reshape(len(a), -1)
    b = np.asarray(b, "float64").reshape(len(b), -1)
    ra = rankdata(a, axis=1) - (a.shape[1] + 1) / 2.0
    rb = rankdata(b, axis=1) - (b.shape[1] + 1) / 2.0
    denominator = np.sqrt((ra**2).sum(1) * (rb**2).sum(1))
    return np.where(
        denominator == 0, 0.0, (ra * rb).sum(1) / np.where(denominator == 0, 1, denominator)
    )


def randomisation(
    model: keras.Model,
    inputs,
    class_index,
    method: str | Callable = "saliency",
    *,
    layers=None,
    seed: int | None = 0,
    absolute: bool = True,
    redraw: Callable | None = None,
    output: Output = None,
    input: str | None = None,
    options: dict | None = None,
) -> dict:
    """Model parameter randomisation (the sanity check of Adebayo et al.), cascading.

    The layers with trainable weights are randomised one after the other from the
    output down (each weight variable redrawn from a normal distribution with its own
    mean and standard deviation; a constant variable, e.g. a zero bias, is kept), and
    after each layer the maps are recomputed and compared to the maps of the trained
    model by Spearman rank correlation (of their absolute values with `absolute`, as
    the paper does). An explanation that depends on the model falls towards 0; one
    that ignores it stays at 1. The model's weights are restored afterwards, also when
    the method fails.

    Compared with Quantus 0.6.0's `MPRT` (cascading, `layer_order="top_down"`,
    `correlation_spearman`, `abs=True`, `normalise=False`; tests/test_explain_quantus.py):
    the similarities are equal within 1e-6 given the same new weights. Quantus's Keras
    wrapper draws them differently: it permutes each weight array along its first axis
    (`np.random.permutation` after `np.random.seed(seed + 1)`, re-seeded for every
    layer), which `redraw` reproduces; and it randomises a `keras.models.clone_model`
    copy, which under Keras 3 re-initialises every layer (weights are not copied), so
    its first step is not "the top layer only" unless the model's initialisers
    reproduce its weights. Quantus also reports the similarity of the maps it is given
    to the unchanged model's maps (`"original"`), and a constant map correlates NaN
    there, 0 here.

    Args:
        model, inputs, class_index, output, input: As for `deletion`.
        method: A method name (see `kbm.explain.ATTRIBUTION_METHODS`) or a function
            `method(model, inputs, class_index) -> attributions`.
        layers: Names of the layers to randomise, in order; defaults to every layer
            with trainable weights, last to first.
        seed: Seed of the new weights.
        absolute: Compare absolute values of the maps.
        redraw: Optional `redraw(values, rng) -> new_values`: given the list of one
            layer's trainable weight values (NumPy arrays) and the seeded
            `numpy.random.Generator`, the layer's new values, same shapes. Default:
            each variable drawn from a normal with its own mean and standard deviation.
        options: Keyword arguments for the method.

    Returns:
        A dict: `layers` (names, in the order randomised), `similarity`
        `(len(layers), batch)` (after each layer, cumulatively), `mean` (per layer).

    Raises:
        ValueError: an unknown method or layer name, a model with no trainable
            weights, or a `redraw` that returns values of other shapes.
        TypeError: a `redraw` that is not callable.

    Reference:
        Adebayo et al., "Sanity Checks for Saliency Maps", NeurIPS 2018.

    Example:

    ```python
    check = kbm.explain.metrics.randomisation(cnn, images, classes, "gradcam")
    check["mean"][-1]     # near 0 for a method that depends on the model
    ```
    """
    seed = v.check_seed("seed", seed)
    v.check_bool("absolute", absolute)
    if redraw is not None and not callable(redraw):
        raise TypeError(
            f"`redraw` must be None or a function (values, rng) -> new values. Received: "
            f"redraw={shown(redraw)}"
        )
    view, arrays, classes, index = _setup(model, inputs, class_index, output, False, input)
    explain = _explainer(method, options, output, view.input_names[index])
    candidates = [layer for layer in view.graph.layers if layer.trainable_weights][::-1]
    if layers is None:
        chosen = candidates
    else:
        names = [layer.name for layer in candidates]
        if isinstance(layers, str) or not all(isinstance(n, str) and n in names for n in layers):
            raise ValueError(
                f"`layers` must be a list of names of layers with trainable weights, from "
                f"{names}. Received: layers={shown(layers)}"
            )
        chosen = [candidates[names.index(n)] for n in layers]
    if not chosen:
        raise ValueError(f"Model '{model.name}' has no layer with trainable weights to randomise")
    name = view.input_names[index]
    feed = _feed(view, arrays)

    def maps():
        m = np.asarray(_pick(explain(model, feed, classes), name), "float64")
        return np.abs(m) if absolute else m

    rng = np.random.default_rng(seed)
    saved = [
        (var, np.array(keras.ops.convert_to_numpy(var)))
        for layer in chosen
        for var in layer.trainable_weights
    ]
    similarity = []
    try:
        reference = maps()
        for layer in chosen:
            variables = layer.trainable_weights
            values = [np.asarray(keras.ops.convert_to_numpy(var)) for var in variables]
            for var, new in zip(variables, _redrawn(redraw, layer, values, rng)):
                var.assign(new)
            similarity.append(spearman(reference, maps()))
    finally:
        for var, value in saved:
            var.assign(value)
    similarity = np.asarray(similarity, "float32")
    return {
        "layers": [layer.name for layer in chosen],
        "similarity": similarity,
        "mean": similarity.mean(axis=1),
    }


def _redrawn(redraw, layer, values: list, rng) -> list:
    """A layer's new weight values: `redraw`'s, checked, or the default normal draw
    (each variable's own mean and standard deviation; a constant variable is kept)."""
    if redraw is None:
        return [
            rng.normal(w.mean(), w.std(), w.shape).astype(w.dtype) if w.std() > 0 else w
            for w in values
        ]
    new = list(redraw([w.copy() for w in values], rng))
    shapes = [np.shape(n) for n in new]
    if shapes != [w.shape for w in values]:
        raise ValueError(
            f"`redraw` must return one array per weight of layer '{layer.name}', shaped "
            f"{[w.shape for w in values]}. Received shapes {shapes}"
        )
    return [np.asarray(n, dtype=w.dtype) for n, w in zip(new, values)]


# -------------------------------------------------------------- pointing game
def pointing_game(maps, regions) -> dict:
    """The pointing game: does each map's maximum fall inside the true region?

    Args:
        maps: `(batch, ...)` maps (or attributions; their largest value is the point).
        regions: Boolean masks of the evidence, shaped like `maps` (or like their
            leading axes, e.g. `(batch, H, W)` for `(batch, H, W, C)` attributions).

    Returns:
        A dict: `hits` (a bool per example: the first position of the map's maximum,
        in row-major order, lies in the region) and `hit_rate` (their mean).

    Against Quantus 0.6.0's `PointingGame` (`normalise=False`; masks given to it
    channels-first, `(N, 1, H, W)`): the same hits when each map has one maximum.
    With tied maxima Quantus counts a hit if any of them lies in the region (and
    refuses constant maps); here the first one decides. Quantus scores an empty region
    NaN; here it is an error.

    Raises:
        ValueError: shapes that do not match, or an example with an empty region.

    Reference:
        Zhang et al., "Top-down Neural Attention by Excitation Backprop", ECCV 2016.

    Example:

    ```python
    task = kbm.explain.synthetic.find_max()
    kbm.explain.metrics.pointing_game(attention, kbm.explain.synthetic.regions(task))
    ```
    """
    m = np.asarray(keras.ops.convert_to_numpy(maps), "float64")
    r = np.asarray(regions)
    if r.dtype != bool or r.ndim < 2 or m.shape[: r.ndim] != r.shape:
        raise ValueError(
            f"`regions` must be boolean masks shaped like `maps` {m.shape} or their leading "
            f"axes. Received: {shown(regions)}"
        )
    if m.ndim > r.ndim:
        m = m.reshape(r.shape + (-1,)).max(axis=-1)
    if not np.all(r.reshape(len(r), -1).any(axis=1)):
        raise ValueError("`regions` must mark at least one position in every example")
    flat = m.reshape(len(m), -1)
    hits = r.reshape(len(r), -1)[np.arange(len(r)), flat.argmax(axis=1)]
    return {"hits": hits, "hit_rate": float(hits.mean())}
