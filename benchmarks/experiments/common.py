"""What the experiments share: seeding, summaries over runs, timing."""

from __future__ import annotations

import time

import keras
import numpy as np
from keras import ops

__all__ = ["predict", "seed_everything", "summary", "timer"]


def seed_everything(seed: int) -> np.random.Generator:
    """Seeds Keras (and its backend) and returns a NumPy generator for the data."""
    keras.utils.set_random_seed(seed)
    return np.random.default_rng(seed)


def predict(model: keras.Model, inputs, batch_size: int = 1024):
    """Eager forward passes in batches, as NumPy (no compiled predict function)."""
    n = len(next(iter(inputs.values())) if isinstance(inputs, dict) else inputs)
    parts = []
    for start in range(0, n, batch_size):
        rows = slice(start, start + batch_size)
        chunk = keras.tree.map_structure(lambda a, rows=rows: a[rows], inputs)
        parts.append(
            keras.tree.map_structure(lambda t: np.asarray(ops.convert_to_numpy(t)), model(chunk))
        )
    return keras.tree.map_structure(lambda *xs: np.concatenate(xs), *parts)


def summary(values) -> dict:
    """Mean, sample standard deviation, min, max and the values of several runs."""
    values = [float(v) for v in values]
    arr = np.asarray(values)
    return {
        "mean": float(arr.mean()),
        "std": float(arr.std(ddof=1)) if len(arr) > 1 else 0.0,
        "min": float(arr.min()),
        "max": float(arr.max()),
        "runs": values,
    }


class timer:
    """`with timer() as t: ...; t.seconds`."""

    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start
        return False
