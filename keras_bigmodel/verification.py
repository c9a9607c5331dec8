"""Checking that a saved model reloads safely and predicts what it should.

A *probe* is a small batch of deterministic inputs built from a model's input
signature. `zoo.save_preset` records the model's predictions on its probe, and
`verify_file` (the CLI's `verify`) reloads a file through the checked loader,
recomputes them, and round-trips the model through another save, comparing
predictions each time. Recorded data is untrusted input: anything malformed in it
(wrong structure, ragged lists, strings, NaN) makes the comparison fail (an infinite
difference), never raise.
"""

from __future__ import annotations

import math
import os
import tempfile
from typing import Any

import keras
import numpy as np

from keras_bigmodel.saving import load_model, save_model
from keras_bigmodel.security import LoadLimits

__all__ = [
    "PROBE_BATCH",
    "PROBE_SEED",
    "from_json",
    "max_difference",
    "predictions",
    "probe_inputs",
    "to_json",
    "verify_file",
]

PROBE_BATCH = 2
PROBE_SEED = 0
# Largest recorded output accepted (elements), far above any probe's outputs.
_MAX_RECORDED_ELEMENTS = 1_000_000


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
        lambda t: np.asarray(keras.ops.convert_to_numpy(t), dtype="float64"), outputs
    )


def max_difference(a, b) -> float:
    """Largest absolute difference between two output structures (inf if they differ in
    structure, keys, shapes, or hold anything that is not a finite number)."""
    try:
        if isinstance(a, dict) or isinstance(b, dict):
            if not (isinstance(a, dict) and isinstance(b, dict)):
                return math.inf
            if sorted(map(str, a)) != sorted(map(str, b)):
                return math.inf
            keys = sorted(a, key=str)
            flat_a, flat_b = [a[k] for k in keys], [b[k] for k in sorted(b, key=str)]
        else:
            flat_a, flat_b = keras.tree.flatten(a), keras.tree.flatten(b)
        if len(flat_a) != len(flat_b):
            return math.inf
        worst = 0.0
        for x, y in zip(flat_a, flat_b):
            x, y = np.asarray(x, dtype="float64"), np.asarray(y, dtype="float64")
            if x.shape != y.shape or not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
                return math.inf
            worst = max(worst, float(np.max(np.abs(x - y))) if x.size else 0.0)
        return worst
    except (
        TypeError,
        ValueError,
        KeyError,
        IndexError,
        OverflowError,
        RecursionError,
        MemoryError,
    ):
        return math.inf


def to_json(outputs) -> Any:
    """Outputs as JSON-ready nested lists (dicts stay dicts)."""
    if isinstance(outputs, dict):
        return {k: np.asarray(v).tolist() for k, v in outputs.items()}
    if isinstance(outputs, (list, tuple)):
        return [np.asarray(v).tolist() for v in outputs]
    return np.asarray(outputs).tolist()


def _array(value) -> np.ndarray:
    if isinstance(value, (str, bytes, dict)) or value is None:
        raise TypeError(f"not numbers: {type(value).__name__}")
    array = np.asarray(value, dtype="float64")
    if array.size > _MAX_RECORDED_ELEMENTS:
        raise ValueError("too many recorded values")
    return array


def from_json(recorded, like) -> Any:
    """The inverse of `to_json`, shaped like the outputs `like`; None if `recorded` is
    not that (wrong structure or keys, ragged lists, strings, anything malformed)."""
    try:
        if isinstance(like, dict):
            if not isinstance(recorded, dict) or sorted(map(str, recorded)) != sorted(like):
                return None
            return {k: _array(recorded[k]) for k in like}
        if isinstance(like, (list, tuple)):
            if not isinstance(recorded, list) or len(recorded) != len(like):
                return None
            return [_array(r) for r in recorded]
        return _array(recorded)
    except (
        KeyError,
        TypeError,
        ValueError,
        IndexError,
        OverflowError,
        RecursionError,
        MemoryError,
    ):
        return None


def verify_file(
    path: str | os.PathLike,
    expected=None,
    atol: float = 1e-5,
    *,
    probe: dict | None = None,
    limits: LoadLimits | None = None,
) -> dict:
    """Reloads `path` through the checked loader and checks its predictions.

    Args:
        path: A `.keras` file.
        expected: Optional recorded probe predictions (e.g. from a preset's
            `preset.json`) the reloaded model must reproduce. Malformed data makes
            `probe_vs_recorded` infinite (and `ok` False); it never raises.
        atol: Tolerance of every comparison (a number >= 0).
        probe: The recorded probe's `{"batch": int, "seed": int}` if not the defaults.
        limits: The `LoadLimits` for loading (default: `LoadLimits()`).

    Returns:
        A dict: `parameters`, `probe_vs_recorded` (max difference, or None if
        nothing was recorded), `resave_vs_load` (max difference after another
        save/reload) and `ok`.

    Raises:
        UnsafeModelError / ModelFileError: The file was refused or is corrupt.
        ValueError: A bad `atol` or `probe`.

    Example:

    ```python
    report = verify_file("model.keras")
    assert report["ok"]
    ```
    """
    if isinstance(atol, bool) or not isinstance(atol, (int, float)) or not atol >= 0:
        raise ValueError(f"`atol` must be a number >= 0. Received: atol={atol!r}")
    batch, seed = PROBE_BATCH, PROBE_SEED
    if probe is not None:
        batch, seed = probe.get("batch", batch), probe.get("seed", seed)
        for name, value in (("batch", batch), ("seed", seed)):
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 2**31:
                raise ValueError(f"`probe['{name}']` must be an int. Received: {value!r}")
        if not 1 <= batch <= 1024:
            raise ValueError(f"`probe['batch']` must be in [1, 1024]. Received: {batch}")
    model = load_model(path, compile=False, limits=limits)
    inputs = probe_inputs(model, batch=batch, seed=seed)
    first = predictions(model, inputs)
    recorded = None
    if expected is not None:
        expected = from_json(expected, first)
        recorded = math.inf if expected is None else max_difference(first, expected)
    with tempfile.TemporaryDirectory() as tmp:
        again = load_model(
            save_model(model, os.path.join(tmp, "again.keras")), compile=False, limits=limits
        )
        resaved = max_difference(predictions(again, inputs), first)
    ok = resaved <= atol and (recorded is None or recorded <= atol)
    return {
        "parameters": int(model.count_params()),
        "probe_vs_recorded": recorded,
        "resave_vs_load": resaved,
        "ok": ok,
    }
