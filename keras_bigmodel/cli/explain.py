"""`explain MODEL --data PATH --out FILE.png`: what the model looks at, for a few
examples taken from each class in turn, drawn by `keras_bigmodel.explain.explain`
(which picks Grad-CAM, saliency, integrated gradients or attention for the model).
With `--evaluate`, the methods that apply to the model are ranked instead by
`keras_bigmodel.explain.compare` on those examples: a table on stdout and the
deletion / insertion curves per method in the PNG.

A model with an `ImagePreprocessing` front (trained on an image folder) reads the
images at their own sizes; each chosen image goes through the front (resized and
rescaled inside the model, exactly as `predict` sees it) and the network behind the
front is explained on those images (`image_preprocessing.network_view`), so the
figure shows the images the network sees, at its input size."""

from __future__ import annotations

import keras
import numpy as np

import keras_bigmodel as kbm
from keras_bigmodel.cli._common import (
    CommandError,
    class_names_for,
    load_checked,
    output_names,
    say,
)
from keras_bigmodel.data import image_preprocessing, tabular
from keras_bigmodel.explain import figures
from keras_bigmodel.explain.api import SIGNED_METHODS

__all__ = ["MAX_SAMPLES", "pick_examples", "run_explain"]

MAX_SAMPLES = 32


def pick_examples(labels: np.ndarray | None, count: int) -> np.ndarray:
    """`count` example indices, taking the classes in turn (the first of each class,
    then the second of each, ...), or simply the first `count` without labels."""
    if labels is None:
        return np.arange(count)
    by_class = [list(np.flatnonzero(labels == c)) for c in np.unique(labels)]
    picked = []
    while len(picked) < count and any(by_class):
        for members in by_class:
            if members and len(picked) < count:
                picked.append(members.pop(0))
    return np.asarray(picked, dtype="int64")


def run_explain(args, out) -> None:
    """Checks that the model fits the data, then explains a few examples into a PNG."""
    if not args.out.lower().endswith(".png"):
        raise CommandError(f"--out must end in .png. Received: {args.out}")
    if args.samples > MAX_SAMPLES:
        raise CommandError(f"--samples must be at most {MAX_SAMPLES}. Received: {args.samples}")
    loaded, view, dataset = load_checked(args, out, require_labels=False)
    model = loaded.model
    tasks = output_names(model)
    names = class_names_for(loaded, dataset, view)
    if tasks is None:
        if args.output is not None:
            raise CommandError(
                f"--output picks a task of a multi-task model; {loaded.label} has one output"
            )
        task, output = next(iter(names)), None
    else:
        task = args.output if args.output is not None else tasks[0]
        if task not in tasks:
            raise CommandError(
                f"--output {task!r} is not a task of {loaded.label}; its tasks: {', '.join(tasks)}"
            )
        output = task
    labels = None
    if dataset.labelled and task in dataset.labels and view.target != "binary":
        labels = dataset.sparse_labels()[task]
    candidates = np.arange(len(dataset))
    columns = tabular.columns_of(model)
    if dataset.kind == "table":  # gradients need complete rows: skip those with gaps
        rows = np.asarray(dataset.features(), dtype="float32")
        candidates = np.flatnonzero(np.isfinite(rows).all(axis=1)) if rows.ndim == 2 else candidates
    picked = pick_examples(
        None if labels is None else labels[candidates], min(args.samples, len(candidates))
    )
    chosen = candidates[picked]
    explained_model = model
    front = loaded.front
    if front is not None:  # each image through the front, at its own size
        inputs = np.concatenate(
            [np.asarray(keras.ops.convert_to_numpy(front(dataset.take([i])))) for i in chosen]
        )
        explained_model = image_preprocessing.network_view(model)
    else:
        inputs = view.model_inputs(dataset.take(chosen))
    evaluate = getattr(args, "evaluate", False)
    groups = None
    encoded = None
    if not evaluate and args.method in ("auto", *SIGNED_METHODS):
        encoded = tabular.encoded_view(model)
    if encoded is not None:
        # seen from its encoding, a table's categorical columns get gradients too; each
        # column's encoded values add up to its bar
        explained_model, encode, groups = encoded
        inputs = encode(inputs)
    elif (standardized := tabular.standardized_view(model)) is not None:
        # explain standardized rows: scale-free attributions
        explained_model, scale, offset = standardized
        inputs = (np.asarray(inputs, "float32") - offset) / scale
    if evaluate:
        _evaluate(explained_model, inputs, output, loaded, dataset, len(chosen), args.out, out)
        return
    say(
        out,
        f"explaining {len(chosen)} examples"
        + (f" for task '{task}'" if tasks is not None else "")
        + " ...",
    )
    with figures.feature_names(None if columns is None else [c["name"] for c in columns]):
        result = kbm.explain.explain(
            explained_model,
            inputs,
            args.out,
            labels=None if labels is None else labels[chosen],
            class_names=names[task],
            method=args.method,
            output=output,
            model_name=loaded.name,
            feature_groups=groups,
        )
    kinds = ", ".join(f"{k} '{n}'" for n, k in result["inputs"].items())
    say(
        out,
        f"{result['method']} of {len(chosen)} examples ({kinds}) from {dataset.source} "
        f"-> {args.out}",
    )
    if result.get("predicted") is not None:
        pairs = []
        for i, p in enumerate(result["predicted"]):
            shown = names[task][p]
            if labels is not None:
                shown = f"{names[task][labels[chosen[i]]]}->{shown}"
            pairs.append(shown)
        say(out, ("true->predicted: " if labels is not None else "predicted: ") + ", ".join(pairs))


def _evaluate(model, inputs, output, loaded, dataset, count, path, out) -> None:
    """Ranks the methods on the chosen examples: a table, and the curves in `path`."""
    from keras_bigmodel.explain._model import ModelView

    view = ModelView(model, output=output, logits=False)
    floats = view.float_inputs()
    if not floats:
        raise CommandError(
            f"--evaluate perturbs a float input, and {loaded.label} has only integer inputs"
        )
    name = view.input_names[floats[0]]
    methods = kbm.explain.applicable_methods(model, output, name)
    say(
        out,
        f"evaluating {len(methods)} methods on {count} examples (input '{name}') ...",
    )
    result = kbm.explain.compare(
        model, inputs, output=output, input=name, path=path, model_name=loaded.name
    )
    say(out, result["table"])
    best = result["rows"][0]["method"]
    say(
        out,
        f"best by mean rank: {best}; curves of {count} examples from {dataset.source} -> {path}",
    )
