"""Classification metrics (accuracy, per-class precision and recall, confusion matrix),
their text tables and the confusion-matrix picture."""

from __future__ import annotations

import os

import numpy as np

from keras_bigmodel import fileio

__all__ = ["binary_metrics", "classification_metrics", "confusion_png", "metrics_text"]


def classification_metrics(
    labels: np.ndarray, probabilities: np.ndarray, class_names: list[str]
) -> dict:
    """Accuracy, per-class precision/recall/support and the confusion matrix.

    Args:
        labels: True classes, integer `(n,)` or one-hot `(n, k)`.
        probabilities: The model's outputs `(n, k)`.
        class_names: One name per class.

    Returns:
        A JSON-serializable dict: `accuracy`, `correct`, `examples`, `classes` (per class
        `precision`, `recall`, `support`; precision is None for a class never
        predicted), `macro_precision`, `macro_recall`, `confusion_matrix` (rows: true
        class, columns: predicted class) and `class_names`.
    """
    labels = np.asarray(labels)
    true = labels.argmax(-1) if labels.ndim == 2 else labels.reshape(-1).astype("int64")
    predicted = np.asarray(probabilities).argmax(-1)
    k = len(class_names)
    matrix = np.zeros((k, k), dtype="int64")
    np.add.at(matrix, (true, predicted), 1)
    correct = int(np.trace(matrix))
    per_class = {}
    for i, name in enumerate(class_names):
        predicted_i, support = int(matrix[:, i].sum()), int(matrix[i].sum())
        per_class[name] = {
            "precision": float(matrix[i, i] / predicted_i) if predicted_i else None,
            "recall": float(matrix[i, i] / support) if support else None,
            "support": support,
        }
    precisions = [c["precision"] for c in per_class.values() if c["precision"] is not None]
    recalls = [c["recall"] for c in per_class.values() if c["recall"] is not None]
    return {
        "accuracy": correct / len(true) if len(true) else 0.0,
        "correct": correct,
        "examples": len(true),
        "classes": per_class,
        "macro_precision": float(np.mean(precisions)) if precisions else None,
        "macro_recall": float(np.mean(recalls)) if recalls else None,
        "confusion_matrix": matrix.tolist(),
        "class_names": list(class_names),
    }


def binary_metrics(labels: np.ndarray, probabilities: np.ndarray, names: list[str]) -> dict:
    """Per-output accuracy of independent 0/1 predictions (threshold 0.5)."""
    labels, probabilities = np.asarray(labels), np.asarray(probabilities)
    hits = (probabilities > 0.5) == (labels > 0.5)
    return {
        "accuracy": float(hits.mean()),
        "examples": len(labels),
        "outputs": {n: float(hits[:, i].mean()) for i, n in enumerate(names)},
    }


def _cell(value) -> str:
    return "-" if value is None else f"{value:.3f}"


def metrics_text(metrics: dict, max_matrix: int = 30) -> list[str]:
    """The metrics as text lines: accuracy, a per-class table and the confusion matrix."""
    if "outputs" in metrics:
        return [f"accuracy (each 0/1 output): {metrics['accuracy']:.4f}"] + [
            f"  {name}: {acc:.4f}" for name, acc in metrics["outputs"].items()
        ]
    lines = [
        f"accuracy: {metrics['accuracy']:.4f} ({metrics['correct']:,} of {metrics['examples']:,})"
    ]
    names = metrics["class_names"]
    width = max(5, *(len(n) for n in names))
    lines.append(f"{'class':<{width}}  precision  recall  support")
    for name, c in metrics["classes"].items():
        lines.append(
            f"{name:<{width}}  {_cell(c['precision']):>9}  {_cell(c['recall']):>6}  "
            f"{c['support']:>7,}"
        )
    lines.append(
        f"{'macro':<{width}}  {_cell(metrics['macro_precision']):>9}  "
        f"{_cell(metrics['macro_recall']):>6}  {metrics['examples']:>7,}"
    )
    if len(names) <= max_matrix:
        matrix = metrics["confusion_matrix"]
        cell = max(3, *(len(n) for n in names), *(len(str(v)) for row in matrix for v in row))
        lines.append("confusion matrix (rows: true class, columns: predicted class):")
        lines.append(" " * width + "".join(f" {n:>{cell}}" for n in names))
        for name, row in zip(names, matrix):
            lines.append(f"{name:<{width}}" + "".join(f" {v:>{cell}}" for v in row))
    return lines


def confusion_png(metrics: dict, path: str, title: str) -> str:
    """Draws the confusion matrix (colour: the fraction of each true class; numbers:
    counts) with a title, labelled axes and a colour bar, and writes it atomically."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    matrix = np.asarray(metrics["confusion_matrix"], dtype="float64")
    names = metrics["class_names"]
    k = len(names)
    rows = matrix.sum(axis=1, keepdims=True)
    fractions = np.divide(matrix, rows, out=np.zeros_like(matrix), where=rows > 0)
    side = min(12.0, max(3.5, 0.42 * k + 2.0))  # the square matrix, in inches
    fig = Figure(figsize=(side + 2.4, side + 1.3), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    image = ax.imshow(fractions, cmap="Blues", vmin=0.0, vmax=1.0)
    ax.set_title(title, fontsize=11, wrap=True)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_xticks(range(k))
    ax.set_yticks(range(k))
    rotate = any(len(n) > 3 for n in names)
    ax.set_xticklabels(names, rotation=45 if rotate else 0, ha="right" if rotate else "center")
    ax.set_yticklabels(names)
    if k <= 30:
        for i in range(k):
            for j in range(k):
                if matrix[i, j]:
                    ax.text(
                        j,
                        i,
                        f"{int(matrix[i, j])}",
                        ha="center",
                        va="center",
                        fontsize=9 if k <= 15 else 7,
                        color="white" if fractions[i, j] > 0.55 else "black",
                    )
    bar = fig.colorbar(image, ax=ax, shrink=0.85)
    bar.set_label("share of the true class's examples (cell numbers: counts)")
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    with fileio.atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", bbox_inches="tight", pad_inches=0.15)
    return path
