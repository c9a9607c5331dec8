"""Real data that ships with the dependencies: scikit-learn's bundled digits.

1,797 real 8x8 grey-scale images of handwritten digits (no download at run time),
in the three views the demo and the tests use: images `(n, 8, 8, 1)`, rows as an
8-step sequence `(n, 8, 8)`, and flat features for a multi-task model with a digit
head and a parity head derived from it.
"""

from __future__ import annotations

import dataclasses
import numbers

import numpy as np


@dataclasses.dataclass(frozen=True)
class Digits:
    """A stratified train/test split of the digits; images scaled to [0, 1]."""

    x_train: np.ndarray  # (n_train, 8, 8, 1) float32
    y_train: np.ndarray  # (n_train,) int64 digit labels
    x_test: np.ndarray
    y_test: np.ndarray

    @staticmethod
    def sequences(images: np.ndarray) -> np.ndarray:
        """Images as sequences: each of the 8 rows is one time step of 8 features."""
        return images[..., 0]

    @staticmethod
    def one_hot(labels: np.ndarray, classes: int = 10) -> np.ndarray:
        return np.eye(classes, dtype="float32")[labels]

    @classmethod
    def multitask_targets(cls, labels: np.ndarray) -> dict:
        """The digit (10 classes) and its parity (even/odd), as one-hot dicts."""
        return {"digit": cls.one_hot(labels, 10), "parity": cls.one_hot(labels % 2, 2)}


def load_digits(test_fraction: float = 0.25, seed: int = 0) -> Digits:
    """Loads scikit-learn's bundled digits and splits them, stratified by digit.

    Args:
        test_fraction: Fraction of the 1,797 images held out for testing.
        seed: Seed of the split.
    """
    if isinstance(test_fraction, bool) or not isinstance(test_fraction, numbers.Real) or not 0 < test_fraction < 1:
        raise ValueError(f"`test_fraction` must be in (0, 1). Received: test_fraction={test_fraction!r}")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise ValueError(f"`seed` must be an integer. Received: seed={seed!r}")
    from sklearn.datasets import load_digits as sklearn_digits
    from sklearn.model_selection import train_test_split

    bunch = sklearn_digits()
    images = (bunch.images / 16.0).astype("float32")[..., None]  # pixel values are 0..16
    x_train, x_test, y_train, y_test = train_test_split(
        images, bunch.target, test_size=test_fraction, random_state=seed, stratify=bunch.target
    )
    return Digits(x_train, y_train.astype("int64"), x_test, y_test.astype("int64"))
