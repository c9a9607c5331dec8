"""`evaluate MODEL --data PATH`: accuracy, per-class precision and recall, and the
confusion matrix (as text and as a PNG), per task for a multi-task model."""

from __future__ import annotations

import os

import numpy as np

from keras_bigmodel import fileio
from keras_bigmodel.cli import _report
from keras_bigmodel.cli._common import (
    CommandError,
    class_names_for,
    load_checked,
    predict,
    say,
)

__all__ = ["run_evaluate"]


def _png_path(path: str, task: str, several: bool) -> str:
    if not several:
        return path
    stem, ext = os.path.splitext(path)
    return f"{stem}-{task}{ext}"


def run_evaluate(args, out) -> None:
    """Checks that the model fits the data, predicts, and reports the metrics."""
    if not args.out.lower().endswith(".png"):
        raise CommandError(f"--out must end in .png. Received: {args.out}")
    loaded, view, dataset = load_checked(args, out, require_labels=True)
    outputs = predict(loaded, view, dataset, args.batch_size, out)
    names = class_names_for(loaded, dataset, view)
    several = len(outputs) > 1
    report = {"model": loaded.path, "data": dataset.source, "examples": len(dataset), "tasks": {}}
    for task, probabilities in outputs.items():
        labels = dataset.labels[task]
        if np.ndim(labels) == 1 and (np.asarray(labels) < 0).any():
            known = np.asarray(labels) >= 0  # a multi-task table's masked labels
            labels, probabilities = np.asarray(labels)[known], probabilities[known]
        if several:
            say(out, f"\ntask '{task}':")
        if view.target == "binary":
            metrics = _report.binary_metrics(labels, probabilities, names[task])
        else:
            metrics = _report.classification_metrics(labels, probabilities, names[task])
        for line in _report.metrics_text(metrics):
            say(out, line)
        if view.target != "binary":
            png = _png_path(args.out, task, several)
            title = (
                f"Confusion matrix of {loaded.label}"
                + (f", task '{task}'" if several else "")
                + f" on {dataset.source}: accuracy {metrics['accuracy']:.3f}"
            )
            _report.confusion_png(metrics, png, title)
            metrics["confusion_png"] = png
            say(out, f"confusion matrix -> {png}")
        report["tasks"][task] = metrics
    if args.json:
        fileio.write_json_atomic(args.json, report)
        say(out, f"metrics -> {args.json}")
