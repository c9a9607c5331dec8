"""`compare`: rank the explanation methods that apply to a model by the metrics, on data.

Every method is run through one function, `attributions(model, inputs, class_index,
method)`, which returns a map per example for one input (the perturbed input of the
metrics); `applicable_methods` says which methods a model can use (CAMs need a
convolution, attention an `AttentionLayer`, gradients a float input). `compare` runs
each of them, scores the maps with deletion, insertion and ROAD AUCs, infidelity and
max-sensitivity (`kbm.explain.metrics`), ranks the methods by their mean rank over
the metrics, and can draw the deletion and insertion curves per method into one PNG.
A "random" map is always included as the floor a method has to beat.
"""

from __future__ import annotations

import os
from typing import Any

import keras
import numpy as np

from keras_bigmodel import validation as v
from keras_bigmodel.explain import metrics as m
from keras_bigmodel.explain._model import ModelView, input_kind, shown
from keras_bigmodel.explain.attention import attention_layers, attention_scores
from keras_bigmodel.explain.attribution import (
    deeplift,
    gradient_shap,
    input_position,
    input_x_gradient,
    occlusion,
)
from keras_bigmodel.explain.cam import conv_layers, gradcam
from keras_bigmodel.explain.methods import integrated_gradients

__all__ = [
    "ATTRIBUTION_METHODS",
    "METRICS",
    "applicable_methods",
    "attributions",
    "compare",
    "format_table",
    "save_metric_curves",
]

ATTRIBUTION_METHODS = (
    "saliency",
    "smoothgrad",
    "input_x_gradient",
    "integrated_gradients",
    "gradient_shap",
    "deeplift",
    "occlusion",
    "gradcam",
    "gradcam++",
    "layercam",
    "attention",
    "random",
)
# metric -> (column heading, whether larger is better)
METRICS = {
    "deletion": ("deletion AUC", False),
    "insertion": ("insertion AUC", True),
    "road": ("ROAD AUC (MoRF)", False),
    "infidelity": ("infidelity", False),
    "max_sensitivity": ("max-sensitivity", False),
}
_LABELS = {
    "saliency": "Saliency",
    "smoothgrad": "SmoothGrad",
    "input_x_gradient": "Input x gradient",
    "integrated_gradients": "Integrated gradients",
    "gradient_shap": "GradientSHAP",
    "deeplift": "DeepLIFT (rescale)",
    "occlusion": "Occlusion",
    "gradcam": "Grad-CAM",
    "gradcam++": "Grad-CAM++",
    "layercam": "LayerCAM",
    "attention": "Attention",
    "random": "Random (floor)",
}


def attributions(
    model: keras.Model,
    inputs,
    class_index,
    method: str,
    output: str | int | None = None,
    *,
    input: str | None = None,
    seed: int = 0,
    **options,
) -> np.ndarray:
    """One method's map per example for one input, ready for the metrics.

    Gradient methods give attributions shaped like the input (saliency and SmoothGrad
    `|gradient|`, the others signed); CAMs give `(batch, H, W)` (or `(batch, time)`)
    maps; attention gives `(batch, time)` weights; `"random"` gives uniform noise
    (the floor of the metrics).

    Args:
        model: A model `kbm.explain` handles.
        inputs: A batch (array, or list / dict by input name).
        class_index: One class for all examples or one per example.
        method: One of `ATTRIBUTION_METHODS`.
        output: For several outputs, the output's name (dict) or index (list).
        input: The input explained, by name (the only float input by default).
        seed: Seed of the random parts (SmoothGrad, GradientSHAP, random).
        **options: Passed to the method (e.g. `steps`, `window`, `layer`, `baselines`).

    Returns:
        A float32 array, one map per example.

    Raises:
        ValueError: an unknown method, or one the model cannot use.

    Example:

    ```python
    maps = kbm.explain.attributions(cnn, images, classes, "occlusion", window=(2, 2))
    ```
    """
    v.check_choice("method", method, ATTRIBUTION_METHODS)
    view = ModelView(model, output=output, logits=False)
    index = input_position(view, input)
    name = view.input_names[index]
    if method == "attention":
        return attention_scores(model, inputs, layer=options.get("layer"))
    if method == "random":
        arrays = view.arrays(inputs)
        rng = np.random.default_rng(seed)
        return rng.uniform(size=arrays[index].shape).astype("float32")
    if method in ("gradcam", "gradcam++", "layercam"):
        maps = gradcam(model, inputs, class_index, output=output, method=method, **options)
    elif method in ("saliency", "smoothgrad"):
        maps = _raw_saliency(view, inputs, class_index, method, seed, options)
    elif method == "input_x_gradient":
        maps = input_x_gradient(model, inputs, class_index, output=output, **options)
    elif method == "integrated_gradients":
        maps = integrated_gradients(model, inputs, class_index, output=output, **options)
    elif method == "deeplift":
        maps = deeplift(model, inputs, class_index, output=output, **options)
    elif method == "gradient_shap":
        options.setdefault("samples", 16)
        maps = gradient_shap(model, inputs, class_index, output=output, seed=seed, **options)
    else:  # occlusion
        shape = view.input_shapes[index]
        options.setdefault("window", _default_window(shape))
        maps = occlusion(model, inputs, class_index, output=output, input=name, **options)
    if isinstance(maps, dict):
        if name not in maps:
            raise ValueError(
                f"{method} gives maps for inputs {sorted(maps)} of model '{model.name}', not "
                f"for input '{name}'; pick one of those with input=<name>"
            )
        maps = maps[name]
    return np.asarray(maps, "float32")


def _raw_saliency(view, inputs, class_index, method, seed, options):
    """|gradient| (SmoothGrad: its mean over noisy copies) shaped like the input: the
    unnormalized values saliency() draws."""
    from keras_bigmodel.explain.methods import (
        _float_positions,
        _input_gradients,
        _smooth_gradients,
    )

    view = ModelView(view.model, output=view.output_key, logits=True)
    arrays = view.arrays(inputs)
    classes = view.class_indices(class_index, len(arrays[0]))
    positions = _float_positions(view, method)
    if method == "saliency":
        _, grads = _input_gradients(view, arrays, classes, positions, 256)
        grads = [np.abs(g) for g in grads]
    else:
        samples = options.get("samples", 10)
        noise = options.get("noise", 0.2)
        grads = _smooth_gradients(view, arrays, classes, positions, samples, noise, seed, 256)
    out = [None] * len(arrays)
    for p, g in zip(positions, grads):
        out[p] = g
    return view.by_input(out, keep=positions)


def _default_window(shape) -> tuple:
    if len(shape) == 3:  # image: about an eighth of each side, every channel
        return (max(1, shape[0] // 8), max(1, shape[1] // 8), shape[2])
    if len(shape) == 2:  # sequence: one step, every feature
        return (1, shape[1])
    return (1,) * len(shape)


def applicable_methods(
    model: keras.Model, output: str | int | None = None, input: str | None = None
) -> list[str]:
    """The methods of `ATTRIBUTION_METHODS` that `model` can use (computes nothing).

    Args:
        model: A model `kbm.explain` handles.
        output: For several outputs, the output's name (dict) or index (list).
        input: The input explained, by name (the only float input by default).

    Returns:
        Method names: gradient methods and occlusion for a float input, random always,
        CAMs where the model has a convolution whose layout matches that input, attention
        where it has an `AttentionLayer`.

    Example:

    ```python
    kbm.explain.applicable_methods(zoo.build("cnn"))
    ```
    """
    view = ModelView(model, output=output, logits=False)
    kinds = [input_kind(shape) for shape in view.input_shapes]
    shape = view.input_shapes[input_position(view, input)]
    found = ["saliency", "smoothgrad", "input_x_gradient", "integrated_gradients"]
    found += ["gradient_shap"] + (["deeplift"] if view.graph is not None else []) + ["occlusion"]
    convs = conv_layers(model) if view.graph is not None else []
    if any(len(c.output.shape) - 1 == len(shape) for c in convs):
        found += ["gradcam", "gradcam++", "layercam"]
    if len(kinds) == 1 and attention_layers(model):
        found.append("attention")
    return found + ["random"]


def compare(
    model: keras.Model,
    inputs,
    class_index=None,
    methods=None,
    metrics=None,
    path: str | os.PathLike | None = None,
    *,
    output: str | int | None = None,
    input: str | None = None,
    steps: int = 10,
    samples: int = 5,
    seed: int = 0,
    model_name: str | None = None,
    options: dict | None = None,
) -> dict[str, Any]:
    """Ranks explanation methods on `inputs` by faithfulness and robustness metrics.

    Each method's maps (`attributions`) are scored with the metrics: deletion and
    insertion AUC (baseline 0, `steps` fractions), ROAD AUC (most relevant first),
    infidelity (`samples` Gaussian perturbations of standard deviation 0.1 times the
    data's spread, on the logits, with `normalize=True` so that maps of any scale
    compare) and max-sensitivity (`samples` draws in 2% of the data's range). A
    method's rank on each metric is averaged; the table is sorted by that mean rank.

    Args:
        model: A model `kbm.explain` handles.
        inputs: A batch (array, or list / dict by input name).
        class_index: The class explained per example (default: the predicted class).
        methods: Method names (default: `applicable_methods(model)`).
        metrics: Metric names from `METRICS` (default: all).
        path: If given, a `.png` of the deletion and insertion curves per method.
        output: For several outputs, the output's name (dict) or index (list).
        input: The input perturbed, by name (the only float input by default).
        steps: Fractions of the deletion / insertion curves.
        samples: Perturbations per example for infidelity and max-sensitivity.
        seed: Seed of every random draw.
        model_name: The model's name in the figure's title.
        options: `{method: {keyword: value}}` passed to the methods.

    Returns:
        A dict: `rows` (one dict per method, best first: `method`, `rank`, and per
        metric its mean and standard deviation over the examples), `curves` (per
        method, the deletion and insertion results), `class_index`, `table` (the rows
        as text) and `path`.

    Raises:
        ValueError: an unknown or inapplicable method, an unknown metric, or arguments
            the methods or metrics refuse.

    Example:

    ```python
    result = kbm.explain.compare(cnn, images, path="compare.png")
    print(result["table"])
    ```
    """
    view = ModelView(model, output=output, logits=False)
    arrays = view.arrays(inputs)
    batch = len(arrays[0])
    index = input_position(view, input)
    name = view.input_names[index]
    allowed = applicable_methods(model, output, name)
    if methods is None:
        methods = allowed
    if isinstance(methods, str) or not all(isinstance(x, str) for x in methods):
        raise ValueError(f"`methods` must be a list of method names. Received: {shown(methods)}")
    wrong = [x for x in methods if x not in allowed]
    if wrong or not methods:
        raise ValueError(
            f"`methods` must be methods model '{model.name}' can use, from {allowed}. "
            f"Received: methods={list(methods)!r}"
        )
    metrics = list(METRICS) if metrics is None else metrics
    if isinstance(metrics, str) or not metrics or any(x not in METRICS for x in metrics):
        raise ValueError(
            f"`metrics` must be a list from {list(METRICS)}. Received: {shown(metrics)}"
        )
    steps = v.check_positive_int("steps", steps)
    samples = v.check_positive_int("samples", samples)
    if path is not None:
        path = v.check_path("path", path)
        if not path.lower().endswith(".png"):
            raise ValueError(f"`path` must end in '.png'. Received: path={path!r}")
    options = options or {}
    feed = _feed(view, arrays)
    if class_index is None:
        from keras_bigmodel.explain._gradients import evaluate

        outputs = evaluate(view.run, arrays, cache=view.cache_key("outputs"))
        class_index = outputs.argmax(-1) if outputs.ndim == 2 and outputs.shape[1] > 1 else 0
    classes = view.class_indices(class_index, batch)
    x = arrays[index]
    spread = float(x.std()) or 1.0
    span = float(x.max() - x.min()) or 1.0
    common = {"output": output, "input": name}

    rows, curves = [], {}
    for method in methods:
        kwargs = dict(options.get(method, {}))
        maps = attributions(
            model, feed, classes, method, output=output, input=name, seed=seed, **kwargs
        )
        values: dict[str, np.ndarray] = {}
        record: dict[str, Any] = {}
        if "deletion" in metrics or path is not None:
            record["deletion"] = m.deletion(model, feed, classes, maps, steps=steps, **common)
            values["deletion"] = record["deletion"]["auc"]
        if "insertion" in metrics or path is not None:
            record["insertion"] = m.insertion(model, feed, classes, maps, steps=steps, **common)
            values["insertion"] = record["insertion"]["auc"]
        if "road" in metrics:
            values["road"] = m.road(model, feed, classes, maps, seed=seed, **common)["auc"]
        if "infidelity" in metrics:
            values["infidelity"] = m.infidelity(
                model,
                feed,
                classes,
                maps,
                samples=samples,
                scale=0.1 * spread,
                seed=seed,
                normalize=True,
                **common,
            )
        if "max_sensitivity" in metrics:
            values["max_sensitivity"] = m.max_sensitivity(
                model,
                feed,
                classes,
                method,
                radius=0.02 * span,
                samples=samples,
                seed=seed,
                options={**kwargs, "seed": seed},
                **common,
            )
        row: dict[str, Any] = {"method": method}
        for metric in metrics:
            row[metric] = float(np.mean(values[metric]))
            row[metric + "_std"] = float(np.std(values[metric]))
        rows.append(row)
        curves[method] = record
    _rank(rows, metrics)
    rows.sort(key=lambda r: (r["rank"], r["method"]))
    result = {
        "rows": rows,
        "curves": curves,
        "class_index": classes.tolist(),
        "metrics": list(metrics),
        "table": format_table(rows, metrics),
        "path": None,
    }
    if path is not None:
        result["path"] = save_metric_curves(
            curves, path, model_name=model_name or model.name, examples=batch
        )
    return result


def _feed(view: ModelView, arrays: list):
    if view.graph is not None and isinstance(view.graph.input, dict):
        return dict(zip(view.input_names, arrays))
    return arrays if len(arrays) > 1 else arrays[0]


def _rank(rows: list, metrics: list) -> None:
    """Each row's mean rank over the metrics (1 = best; ties share the mean rank)."""
    from scipy.stats import rankdata

    ranks = []
    for metric in metrics:
        sign = -1.0 if METRICS[metric][1] else 1.0
        ranks.append(rankdata([sign * r[metric] for r in rows]))
    mean = np.mean(ranks, axis=0)
    for row, rank in zip(rows, mean):
        row["rank"] = float(rank)


def format_table(rows: list, metrics: list) -> str:
    """The rows of `compare` as a Markdown table (mean ± standard deviation)."""
    heads = ["method", "mean rank"] + [
        METRICS[x][0] + (" ↑" if METRICS[x][1] else " ↓") for x in metrics
    ]
    lines = ["| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]
    for r in rows:
        cells = [_LABELS[r["method"]], f"{r['rank']:.1f}"]
        cells += [f"{r[x]:.3g} ± {r[x + '_std']:.2g}" for x in metrics]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def save_metric_curves(curves: dict, path, model_name: str = "model", examples: int = 0) -> str:
    """Draws, per method, the mean deletion and insertion curves (with the spread over
    the examples shaded and the mean AUCs in the panel's title) into one PNG grid.

    Args:
        curves: `compare(...)["curves"]`: `{method: {"deletion": ..., "insertion": ...}}`.
        path: Destination `.png` (written atomically).
        model_name: The model's name in the title.
        examples: How many examples the curves average (for the title).

    Returns:
        The path written.

    Example:

    ```python
    kbm.explain.save_metric_curves(result["curves"], "curves.png")
    ```
    """
    from keras_bigmodel.explain import figures

    methods = [k for k, c in curves.items() if "deletion" in c and "insertion" in c]
    if not methods:
        raise ValueError("`curves` must hold deletion and insertion results for some method")
    ncols = min(4, len(methods))
    nrows = -(-len(methods) // ncols)
    fig = figures._figure(3.2 * ncols + 0.4, 2.7 * nrows + 0.9)
    grid = fig.subplots(nrows, ncols, squeeze=False, sharex=True, sharey=True)
    colours = {"deletion": "#c0392b", "insertion": "#2471a3"}
    for k, method in enumerate(methods):
        ax = grid[k // ncols][k % ncols]
        aucs = []
        for kind in ("deletion", "insertion"):
            res = curves[method][kind]
            mean, std = res["scores"].mean(0), res["scores"].std(0)
            ax.plot(res["fractions"], mean, color=colours[kind], lw=2, label=kind)
            ax.fill_between(
                res["fractions"], mean - std, mean + std, color=colours[kind], alpha=0.15
            )
            aucs.append(f"{kind[:3]}. AUC {res['auc'].mean():.3f}")
        ax.set_title(f"{_LABELS[method]}\n" + ", ".join(aucs), fontsize=9)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=8)
        if k % ncols == 0:
            ax.set_ylabel("class score (output)", fontsize=9)
        if k + ncols >= len(methods):  # the lowest panel of its column
            ax.xaxis.set_tick_params(labelbottom=True)
            ax.set_xlabel("fraction of units removed / inserted", fontsize=9)
    for k in range(len(methods), nrows * ncols):
        grid[k // ncols][k % ncols].set_visible(False)
    grid[0][0].legend(fontsize=8, loc="best")
    count = f" over {examples} examples" if examples else ""
    fig.suptitle(
        f"{model_name}: deletion (lower AUC is better) and insertion (higher is better) "
        f"curves{count}; shaded: ± 1 std",
        fontsize=11,
    )
    return figures._write_png(fig, path)
