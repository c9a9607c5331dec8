"""scikit-learn's bundled 8x8 digits (offline): the `"digits"` reader, and `Digits` /
`load_digits` (a stratified train/test split) for examples and tests."""

from __future__ import annotations

import dataclasses
import numbers
import os

import numpy as np

from keras_bigmodel.data._text import map_values, names_for
from keras_bigmodel.data.dataset import UNNAMED, Dataset, _ArrayFeatures
from keras_bigmodel.data.options import DEFAULT_LABEL_COLUMN, LoadOptions
from keras_bigmodel.data.readers import Reader, register_reader

__all__ = ["DIGITS", "Digits", "DigitsReader", "load_digits"]

DIGITS = "digits"


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
        """Integer labels as one-hot float32 rows."""
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

    Returns:
        A `Digits` with images `(n, 8, 8, 1)` in [0, 1] and integer labels.

    Raises:
        ValueError: A `test_fraction` outside (0, 1) or a non-integer `seed`.

    Example:

    ```python
    digits = load_digits()
    digits.x_train.shape        # (1347, 8, 8, 1)
    ```
    """
    if (
        isinstance(test_fraction, bool)
        or not isinstance(test_fraction, numbers.Real)
        or not 0 < test_fraction < 1
    ):
        raise ValueError(
            f"`test_fraction` must be in (0, 1). Received: test_fraction={test_fraction!r}"
        )
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


def _load_digits(subset: str, seed: int, known, raw: bool = False) -> Dataset:
    digits = load_digits(seed=seed)
    if subset == "train":
        x, y = digits.x_train, digits.y_train
    elif subset == "test":
        x, y = digits.x_test, digits.y_test
    else:
        x = np.concatenate([digits.x_train, digits.x_test])
        y = np.concatenate([digits.y_train, digits.y_test])
    if raw:  # the 0..255 values these digits have as PNG files (round(x * 255))
        x = np.round(x * 255.0).astype("float32")
    names = [str(i) for i in range(10)]
    model_names = names_for(known, DEFAULT_LABEL_COLUMN, [DEFAULT_LABEL_COLUMN])
    if model_names is not None:
        y = map_values([str(v) for v in y], model_names, "digit")
        names = model_names
    source = "digits" if subset == "all" else f"digits ({subset} split)"
    return Dataset(
        source,
        "digits",
        _ArrayFeatures({UNNAMED: x}),
        {DEFAULT_LABEL_COLUMN: y},
        {DEFAULT_LABEL_COLUMN: names},
        info={"subset": subset, **({"scale": "1"} if raw else {})},
        names_from={DEFAULT_LABEL_COLUMN: "values"},
    )


class DigitsReader(Reader):
    """The name `"digits"` when no file or folder of that name exists."""

    format = "digits"
    kind = "image"

    def claims(self, path: str) -> bool:
        return path == DIGITS and not os.path.lexists(path)

    def read(self, path: str, options: LoadOptions, known) -> Dataset:
        return _load_digits(options.subset, options.seed, known, options.pixels == "raw")


register_reader(DigitsReader())
