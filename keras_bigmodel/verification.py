"""Checking that a saved model reloads safely and predicts what it should.

A *probe* is a small batch of deterministic inputs built from a model's input
signature. `zoo.save_preset` records the model's predictions on its probe, and
`verify_file` (the CLI's `verify`) reloads a file in safe mode, recomputes them,
and round-trips the model through another save, comparing predictions each time.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

import keras
import numpy as np

from keras_bigmodel.saving import load_model, save_model

PROBE_BATCH = 2
PROBE_SEED = 0


def probe_inputs(model: keras.Model, batch: int = PROBE_BATCH, seed: int = PROBE_SEED):
    """Deterministic inputs matching the model's inputs: uniform [0, 1) floats, small
    positive integers for integer inputs, length 8 for unknown dimensions."""
    rng = np.random.default_rng(seed)

    def sample(tensor):
        shape = (batch,) + tuple(8 if d is None else d for d in tensor.shape[1:])
        if "int" in str(tensor.dtype):
            return rng.integers(1, 10, size=shape).astype(str(tensor.dtype))
        return rng.uniform(size=shape).astype("float32")

    return keras.tree.map_structure(sample, model.input)


def predictions(model: keras.Model, inputs) -> Any:
    """Inference-mode outputs as NumPy (float64), in the model's output structure."""
    outputs = model(inputs, training=False)
    return keras.tree.map_structure(
        lambda t: np.asarray(keras.ops.convert_to_numpy(t), dtype="float64"), outputs)


def max_difference(a, b) -> float:
    """Largest absolute difference between two output structures (inf if they differ)."""
    if isinstance(a, dict) or isinstance(b, dict):
        if not (isinstance(a, dict) and isinstance(b, dict)) or sorted(a) != sorted(b):
            return float("inf")
    flat_a, flat_b = keras.tree.flatten(a), keras.tree.flatten(b)
    if len(flat_a) != len(flat_b):
        return float("inf")
    worst = 0.0
    for x, y in zip(flat_a, flat_b):
        x, y = np.asarray(x, dtype="float64"), np.asarray(y, dtype="float64")
        if x.shape != y.shape or not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
            return float("inf")
        worst = max(worst, float(np.max(np.abs(x - y))) if x.size else 0.0)
    return worst


def to_json(outputs) -> Any:
    """Outputs as JSON-ready nested lists (dicts stay dicts)."""
    if isinstance(outputs, dict):
        return {k: np.asarray(v).tolist() for k, v in outputs.items()}
    if isinstance(outputs, (list, tuple)):
        return [np.asarray(v).tolist() for v in outputs]
    return np.asarray(outputs).tolist()


def from_json(recorded, like) -> Any:
    """The inverse of `to_json`, shaped like the outputs `like`; None if it cannot be."""
    try:
        if isinstance(like, dict):
            return {k: np.asarray(recorded[k], dtype="float64") for k in like}
        if isinstance(like, (list, tuple)):
            return [np.asarray(r, dtype="float64") for r in recorded]
        return np.asarray(recorded, dtype="float64")
    except (KeyError, TypeError, ValueError):
        return None


def verify_file(path: str | os.PathLike, expected=None, atol: float = 1e-5) -> dict:
    """Reloads `path` through the safe loader and checks its predictions.

    Args:
        path: A `.keras` file.
        expected: Optional recorded probe predictions (e.g. from a preset's
            `preset.json`) the reloaded model must reproduce.
        atol: Tolerance of every comparison.

    Returns:
        A dict: `parameters`, `probe_vs_recorded` (max difference, or None if
        nothing was recorded), `resave_vs_load` (max difference after another
        save/reload) and `ok`.

    Raises:
        UnsafeModelError / ModelFileError: The file was refused or is corrupt.
    """
    model = load_model(path, compile=False)
    probe = probe_inputs(model)
    first = predictions(model, probe)
    recorded = None
    if expected is not None:
        expected = from_json(expected, first)
        recorded = float("inf") if expected is None else max_difference(first, expected)
    with tempfile.TemporaryDirectory() as tmp:
        again = load_model(save_model(model, os.path.join(tmp, "again.keras")), compile=False)
        resaved = max_difference(predictions(again, probe), first)
    ok = resaved <= atol and (recorded is None or recorded <= atol)
    return {
        "parameters": int(model.count_params()),
        "probe_vs_recorded": recorded,
        "resave_vs_load": resaved,
        "ok": ok,
    }
