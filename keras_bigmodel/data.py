"""Users' data for training, evaluation, prediction and explanation, on every backend.

`load(path)` reads one of five sources into a `Dataset`:

- a folder with one sub-folder per class: images (`.png`, `.jpg`, `.jpeg`, `.bmp`,
  `.gif`); the sub-folders' names are the class names. A folder of images without
  sub-folders is unlabelled data (for predictions);
- `.npz`: arrays by name: `x` (or `x_<input>` for each input of a multi-input model,
  e.g. `x_image`, `x_sequence`), `y` (or `y_<task>` per task, e.g. `y_task1`), and
  optionally `class_names` (or `class_names_<task>`) as string arrays;
- `.npy`: one array of features (unlabelled; memory-mapped, read batch by batch);
- `.csv`: a header row, numeric feature columns and one label column per task, by
  name (`label` unless told);
- `"digits"`: scikit-learn's bundled 8x8 digits (offline).

Labels are integer class indices `(n,)` or one-hot rows `(n, classes)`; CSV label
values (strings or numbers) and folder names become class names, so predictions can
be reported by name. A `Dataset` holds its labels in memory and its features either
in memory or, when they would not fit (`memory_limit`, 1 GiB by default) or for a
memory-mapped `.npy`, on disk: `Dataset.batches()` is a `keras.utils.PyDataset` that
reads one batch at a time, so `model.fit`, `evaluate` and `predict` stream it on
TensorFlow, JAX and PyTorch alike. Image pixels are scaled to [0, 1].

Data that cannot be used raises `DataError` (a `ValueError`) with one line that says
what is wrong and where: an unknown label column (listing the columns), mismatched
lengths, NaN or missing values in features, a non-numeric feature, an empty class
folder, images of different sizes, an unreadable image (refused, or skipped with a
count when `bad_images="skip"`).

Example:

```python
import zoo
from keras_bigmodel import data

ds = data.load("flowers/")                 # flowers/rose/*.jpg, flowers/tulip/*.jpg, ...
print(ds.summary())                        # '40 images (32x32 rgb) in 2 classes ...'
train, val = ds.split(0.2, seed=0)
model = zoo.build("cnn", input_shape=ds.input_shape(), num_classes=ds.num_classes(),
                  labels="sparse")
model.fit(train.batches(32, shuffle=True), validation_data=val.batches(32), epochs=5)
```

`Digits` and `load_digits` (the bundled digits as a stratified train/test split) are
kept for the examples and tests that use them directly.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
import numbers
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import keras
import numpy as np

from keras_bigmodel import fileio

__all__ = [
    "BAD_IMAGES",
    "COLOR_MODES",
    "DEFAULT_MEMORY_LIMIT",
    "FORMATS",
    "IMAGE_EXTENSIONS",
    "Batches",
    "ClassMismatchError",
    "DataError",
    "Dataset",
    "Digits",
    "load",
    "load_digits",
]

IMAGE_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")
COLOR_MODES = ("grayscale", "rgb")
BAD_IMAGES = ("refuse", "skip")
FORMATS = ("images", "npz", "npy", "csv", "digits")
DEFAULT_MEMORY_LIMIT = 1 << 30  # bytes of float32 features kept in memory
DIGITS_SUBSETS = ("all", "train", "test")
DEFAULT_LABEL_COLUMN = "label"
UNNAMED = "x"  # the key of a dataset's features when they are one unnamed array
_GREY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F")
_MAX_SHOWN = 8


class DataError(ValueError):
    """Data that cannot be used as given; the message says what is wrong and where."""


class ClassMismatchError(DataError):
    """A label of the data is not one of the classes a model knows."""


# ------------------------------------------------------------------------ digits
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


# ---------------------------------------------------------------------- features
def _shown(values: Sequence, limit: int = _MAX_SHOWN) -> str:
    values = [str(v) for v in values]
    more = f", ... ({len(values) - limit} more)" if len(values) > limit else ""
    return ", ".join(values[:limit]) + more


def _shown_ends(values: Sequence, limit: int = 16) -> str:
    """Up to `limit` names: the first and last ones of a long list."""
    values = [str(v) for v in values]
    if len(values) <= limit:
        return ", ".join(values)
    half = limit // 2
    return (
        ", ".join(values[:half])
        + f", ... ({len(values) - limit} more), "
        + ", ".join(values[-half:])
    )


class _ArrayFeatures:
    """Feature arrays by name (in memory, or memory-mapped `.npy`)."""

    def __init__(self, arrays: dict[str, np.ndarray], in_memory: bool = True):
        self.arrays = arrays
        self.in_memory = in_memory

    def __len__(self):
        return len(next(iter(self.arrays.values())))

    def shapes(self) -> dict[str, tuple]:
        return {k: tuple(a.shape[1:]) for k, a in self.arrays.items()}

    def take(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        if self.in_memory:
            return {k: a[indices] for k, a in self.arrays.items()}
        # A memory map reads faster in file order; give the rows back in the order asked.
        order = np.argsort(indices, kind="stable")
        out = {}
        for k, a in self.arrays.items():
            rows = np.asarray(a[indices[order]], dtype=_float_or_int(a.dtype))
            back = np.empty_like(rows)
            back[order] = rows
            out[k] = back
        return out

    def subset(self, indices: np.ndarray) -> _ArrayFeatures:
        if self.in_memory:
            return _ArrayFeatures(self.take(indices))
        return _Subset(self, indices)


class _ImageFeatures:
    """Image files decoded a batch at a time (or all at once into `cache`)."""

    def __init__(
        self,
        paths: list[str],
        size: tuple[int, int] | None,
        color_mode: str,
        cache: np.ndarray | None = None,
    ):
        self.paths = paths
        self.size = size
        self.color_mode = color_mode
        self.cache = cache
        self.in_memory = cache is not None

    def __len__(self):
        return len(self.paths)

    @property
    def channels(self) -> int:
        return 1 if self.color_mode == "grayscale" else 3

    def shapes(self) -> dict[str, tuple]:
        return {UNNAMED: (*self.size, self.channels)}

    def take(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        if self.cache is not None:
            return {UNNAMED: self.cache[indices]}
        out = np.empty((len(indices), *self.size, self.channels), dtype="float32")
        for i, index in enumerate(indices):
            out[i] = _decode(self.paths[index], self.size, self.color_mode)
        return {UNNAMED: out}

    def subset(self, indices: np.ndarray) -> _ImageFeatures:
        return _ImageFeatures(
            [self.paths[i] for i in indices],
            self.size,
            self.color_mode,
            None if self.cache is None else self.cache[indices],
        )


class _Subset:
    """Some rows of a streamed source, without reading them."""

    def __init__(self, base, indices: np.ndarray):
        self.base, self.indices, self.in_memory = base, np.asarray(indices), False

    def __len__(self):
        return len(self.indices)

    def shapes(self):
        return self.base.shapes()

    def take(self, indices):
        return self.base.take(self.indices[indices])

    def subset(self, indices):
        return _Subset(self.base, self.indices[indices])


def _float_or_int(dtype) -> str:
    return "int32" if np.issubdtype(dtype, np.integer) else "float32"


# ----------------------------------------------------------------------- dataset
class Dataset:
    """Features (in memory or streamed from disk), labels and class names.

    Features are keyed by input name (`"x"` for one unnamed array: an image folder,
    a CSV, a plain `.npz` `x`); labels by task name (`"label"` for a single label of
    an image folder or a plain `y`; the column name for a CSV). Use `load()` to make
    one.

    Attributes:
        source: Where the data came from (a path, or `"digits"`).
        format: One of `FORMATS`.
        labels: `{task: labels}` (integer `(n,)` or one-hot `(n, classes)`), or None
            for unlabelled data.
        class_names: `{task: [name, ...]}` (index = class), or None.
        ids: One identifier per example: the image's path relative to the folder, or
            `"line N"` of a CSV, or `"row N"` of an array.
        skipped: `(path, reason)` of each unreadable image that was skipped.
        info: How the data was read (image size and colour mode, CSV columns, ...),
            stored with a trained model so that later data is read the same way.
    """

    def __init__(
        self,
        source: str,
        format: str,
        features,
        labels=None,
        class_names=None,
        ids=None,
        skipped=(),
        info=None,
        names_from=None,
    ):
        self.source = source
        self.format = format
        self._features = features
        self.labels = labels
        self.class_names = class_names
        self.ids = list(ids) if ids is not None else [f"row {i}" for i in range(len(features))]
        self.skipped = list(skipped)
        self.info = dict(info or {})
        # task -> "values" (names came from the data: folders, CSV values) or
        # "indices" (integer labels or one-hot rows, names are the indices)
        self.names_from = dict(names_from or {})

    # ------------------------------------------------------------------ basics
    def __len__(self) -> int:
        return len(self._features)

    def __repr__(self) -> str:
        return f"<Dataset {self.summary()}>"

    @property
    def in_memory(self) -> bool:
        """Whether the features are held in memory (else read batch by batch)."""
        return self._features.in_memory

    @property
    def labelled(self) -> bool:
        return bool(self.labels)

    @property
    def tasks(self) -> list[str]:
        """The label names (`["label"]` for one unnamed label)."""
        return list(self.labels or {})

    def input_shapes(self) -> dict[str, tuple]:
        """`{input name: shape without the batch axis}` of the features."""
        return self._features.shapes()

    def input_shape(self, name: str | None = None) -> tuple:
        """The shape of one feature array (the only one if `name` is None)."""
        shapes = self.input_shapes()
        if name is None:
            if len(shapes) != 1:
                raise ValueError(f"The data has several inputs {sorted(shapes)}; name one")
            return next(iter(shapes.values()))
        return shapes[name]

    def num_classes(self, task: str | None = None) -> int:
        """The number of classes of a task (the only one if `task` is None)."""
        names = self.class_names or {}
        if task is None:
            if len(names) != 1:
                raise ValueError(f"The data has several tasks {sorted(names)}; name one")
            return len(next(iter(names.values())))
        return len(names[task])

    @property
    def y(self):
        """The labels: one array for a single task, else the dict (None if unlabelled)."""
        if not self.labels:
            return None
        if len(self.labels) == 1:
            return next(iter(self.labels.values()))
        return dict(self.labels)

    def sparse_labels(self) -> dict[str, np.ndarray] | None:
        """The labels as integer class indices (one-hot rows turned into indices)."""
        if not self.labels:
            return None
        return {k: _to_sparse(v) for k, v in self.labels.items()}

    # ---------------------------------------------------------------- features
    def take(self, indices) -> Any:
        """The features of the examples at `indices`: one array, or a dict by input name."""
        indices = np.asarray(indices, dtype="int64").reshape(-1)
        return _unwrap(self._features.take(indices))

    def features(self) -> Any:
        """All the features in memory (decoding every image of a streamed folder)."""
        if isinstance(self._features, _ArrayFeatures) and self._features.in_memory:
            return _unwrap(dict(self._features.arrays))
        if isinstance(self._features, _ImageFeatures) and self._features.cache is not None:
            return self._features.cache
        return self.take(np.arange(len(self)))

    @classmethod
    def from_arrays(
        cls,
        features,
        labels=None,
        class_names: Mapping[str, Sequence[str]] | None = None,
        source: str = "arrays",
        format: str = "arrays",
    ) -> Dataset:
        """A `Dataset` of arrays in memory, checked as a `.npz` file's would be.

        Args:
            features: One array `(n, ...)` or a dict of them by input name.
            labels: None, one array (integer `(n,)`, one-hot or 0/1 flags `(n, k)`)
                or a dict of them by task name.
            class_names: Optional `{task: names}`.
            source: Where the arrays came from, for messages.
            format: Recorded as the data's format.

        Returns:
            A `Dataset`.

        Raises:
            DataError: Mismatched lengths, NaN in features, labels that are neither
                class indices nor one-hot rows.

        Example:

        ```python
        ds = Dataset.from_arrays(x, y, class_names={"label": ["cat", "dog"]})
        ```
        """
        arrays = dict(features) if isinstance(features, Mapping) else {UNNAMED: features}
        arrays = {k: np.asarray(v) for k, v in arrays.items()}
        for key, array in arrays.items():
            if array.ndim < 2:
                raise DataError(
                    f"{source}: features '{key}' must have one row per example and at least "
                    f"one feature (shape (n, ...)); they have shape {array.shape}"
                )
            _check_finite(f"'{key}'", array)
        if labels is not None and not isinstance(labels, Mapping):
            labels = {DEFAULT_LABEL_COLUMN: labels}
        lengths = {f"features '{k}'": len(v) for k, v in arrays.items()}
        lengths.update({f"labels '{k}'": len(v) for k, v in (labels or {}).items()})
        if len(set(lengths.values())) > 1:
            shown = ", ".join(f"{k} has {n:,}" for k, n in lengths.items())
            raise DataError(f"{source}: mismatched lengths: {shown} rows")
        out_labels, out_names, names_from = {}, {}, {}
        for task, y in (labels or {}).items():
            given = None if class_names is None else class_names.get(task)
            out_labels[task], out_names[task], names_from[task] = _labels_from_array(
                f"'{task}'", y, None if given is None else [str(n) for n in given], None
            )
        n = next(iter(arrays.values())).shape[0]
        return cls(
            source,
            format,
            _ArrayFeatures(arrays),
            out_labels or None,
            out_names or None,
            [f"row {i}" for i in range(n)],
            names_from=names_from,
        )

    def subset(self, indices) -> Dataset:
        """A new `Dataset` of the examples at `indices` (streamed data is not read)."""
        indices = np.asarray(indices, dtype="int64").reshape(-1)
        labels = None if self.labels is None else {k: v[indices] for k, v in self.labels.items()}
        return Dataset(
            self.source,
            self.format,
            self._features.subset(indices),
            labels,
            self.class_names,
            [self.ids[i] for i in indices],
            self.skipped,
            self.info,
            self.names_from,
        )

    def split(self, fraction: float, seed: int = 0) -> tuple[Dataset, Dataset | None]:
        """`(train, validation)`: `fraction` of each class held out (stratified by the
        first task), at least one example per class kept for training.

        Args:
            fraction: In [0, 1); 0 gives `(self, None)`.
            seed: Seed of the shuffle.
        """
        if (
            isinstance(fraction, bool)
            or not isinstance(fraction, numbers.Real)
            or not (0 <= fraction < 1)
        ):
            raise ValueError(f"`fraction` must be in [0, 1). Received: fraction={fraction!r}")
        if fraction == 0:
            return self, None
        rng = np.random.default_rng(seed)
        if self.labels:
            strata = _to_sparse(next(iter(self.labels.values())))
        else:
            strata = np.zeros(len(self), dtype="int64")
        held = []
        for value in np.unique(strata):
            members = rng.permutation(np.flatnonzero(strata == value))
            count = min(round(fraction * len(members)), len(members) - 1)
            held.append(members[:count])
        held = np.sort(np.concatenate(held)) if held else np.array([], dtype="int64")
        if len(held) == 0:
            raise DataError(
                f"{len(self)} examples are too few to hold out a validation fraction of "
                f"{fraction:g} (each class keeps at least one example for training); use more "
                f"data or --validation-split 0"
            )
        kept = np.setdiff1d(np.arange(len(self)), held)
        return self.subset(rng.permutation(kept)), self.subset(held)

    def batches(
        self,
        batch_size: int = 32,
        inputs: Callable[[Any], Any] | None = None,
        targets: Callable[[Any], Any] | None = None,
        shuffle: bool = False,
        seed: int = 0,
        with_labels: bool = True,
    ) -> Batches:
        """The data as a `keras.utils.PyDataset` of `(inputs, targets)` batches.

        Args:
            batch_size: Examples per batch.
            inputs: Maps a batch's features (array or dict) to what the model takes
                (e.g. a zoo preset's `view.model_inputs`).
            targets: Maps a batch's labels (`{task: array}`) to what the model's
                outputs are compared with (e.g. `view.model_targets`); by default one
                task gives its array and several give the dict.
            shuffle: Reshuffle the order at every epoch (for training).
            seed: Seed of the shuffle.
            with_labels: If False (or the data is unlabelled) batches hold inputs only.

        Returns:
            A `Batches` (`keras.utils.PyDataset`).
        """
        return Batches(
            self,
            batch_size,
            inputs=inputs,
            targets=targets,
            shuffle=shuffle,
            seed=seed,
            with_labels=with_labels,
        )

    # ---------------------------------------------------------------- describe
    def summary(self) -> str:
        """One line: how many examples, of what, in how many classes, from where."""
        shapes = self.input_shapes()
        if self.format == "images":
            h, w, _ = shapes[UNNAMED]
            what = f"{len(self):,} images ({h}x{w} {self.info.get('color_mode', '')})"
        elif self.format == "csv":
            what = f"{len(self):,} rows of {len(self.info['feature_columns'])} features"
        elif len(shapes) == 1:
            what = f"{len(self):,} examples of shape {next(iter(shapes.values()))}"
        else:
            what = f"{len(self):,} examples with inputs " + ", ".join(
                f"{k} {s}" for k, s in shapes.items()
            )
        if self.labels:
            tasks = []
            for t in self.labels:
                known = len(self.class_names[t])
                present = len(np.unique(_to_sparse(self.labels[t]))) if len(self) else 0
                count = f"{known} classes" if present == known else f"{present} of {known} classes"
                named = len(self.labels) == 1 and t == DEFAULT_LABEL_COLUMN
                tasks.append(count + ("" if named else f" of '{t}'"))
            what += " in " + ", ".join(tasks)
        else:
            what += ", unlabelled"
        stream = "" if self.in_memory else ", read from disk batch by batch"
        skipped = f"; skipped {len(self.skipped)} unreadable" if self.skipped else ""
        return f"{what} from {self.source}{stream}{skipped}"

    def class_counts(self, task: str) -> dict[str, int]:
        """`{class name: examples}` of one task."""
        counts = np.bincount(_to_sparse(self.labels[task]), minlength=len(self.class_names[task]))
        return dict(zip(self.class_names[task], counts.tolist()))

    def record(self) -> dict:
        """What a trained model keeps about its data: format, class names and how the
        features were read (JSON-serializable)."""
        return {
            "format": self.format,
            "source": self.source,
            "inputs": {k: list(s) for k, s in self.input_shapes().items()},
            "class_names": {k: list(v) for k, v in (self.class_names or {}).items()},
            **{k: v for k, v in self.info.items() if k not in ("ignored", "columns")},
        }


def _unwrap(arrays: dict[str, np.ndarray]):
    if list(arrays) == [UNNAMED]:
        return arrays[UNNAMED]
    return arrays


def _to_sparse(labels: np.ndarray) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim == 2 and labels.shape[1] > 1:
        return np.argmax(labels, axis=-1).astype("int64")
    return labels.reshape(-1).astype("int64")


class Batches(keras.utils.PyDataset):
    """A `Dataset` as a `keras.utils.PyDataset`: one `(inputs, targets)` batch per index,
    read from disk on demand for streamed data (see `Dataset.batches`)."""

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int = 32,
        inputs=None,
        targets=None,
        shuffle: bool = False,
        seed: int = 0,
        with_labels: bool = True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if (
            isinstance(batch_size, bool)
            or not isinstance(batch_size, numbers.Integral)
            or (batch_size < 1)
        ):
            raise ValueError(
                f"`batch_size` must be a positive integer. Received: batch_size={batch_size!r}"
            )
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.inputs = inputs
        self.targets = targets
        self.shuffle = shuffle
        self.with_labels = with_labels and dataset.labelled
        self._rng = np.random.default_rng(seed)
        self._order = np.arange(len(dataset))
        if shuffle:
            self._order = self._rng.permutation(len(dataset))

    def __len__(self) -> int:
        return math.ceil(len(self.dataset) / self.batch_size)

    def indices(self, index: int) -> np.ndarray:
        """The examples of batch `index`, in the current order."""
        return self._order[index * self.batch_size : (index + 1) * self.batch_size]

    def __getitem__(self, index: int):
        if not 0 <= index < len(self):
            raise IndexError(f"batch {index} out of range (0-{len(self) - 1})")
        rows = self.indices(index)
        x = self.dataset.take(rows)
        if self.inputs is not None:
            x = self.inputs(x)
        if not self.with_labels:
            return (x,)
        labels = {k: v[rows] for k, v in self.dataset.labels.items()}
        y = self.targets(labels) if self.targets is not None else _unwrap_labels(labels)
        return x, y

    def on_epoch_end(self):
        if self.shuffle:
            self._order = self._rng.permutation(len(self.dataset))


def _unwrap_labels(labels: dict):
    return next(iter(labels.values())) if len(labels) == 1 else labels


# -------------------------------------------------------------------------- load
def load(
    path: str | os.PathLike,
    *,
    label_columns: Sequence[str] | str | None = None,
    feature_columns: Sequence[str] | None = None,
    class_names: Mapping[str, Sequence[str]] | Sequence[str] | None = None,
    image_size: tuple[int, int] | None = None,
    color_mode: str | None = None,
    bad_images: str = "refuse",
    memory_limit: int = DEFAULT_MEMORY_LIMIT,
    subset: str = "all",
    require_labels: bool = False,
    missing_labels: str = "error",
    seed: int = 0,
    verbose: int = 0,
) -> Dataset:
    """Reads users' data (see the module docstring for the formats).

    Args:
        path: A folder of images (one sub-folder per class, or none for unlabelled
            images), a `.npz`, `.npy` or `.csv` file, or `"digits"`.
        label_columns: CSV only: the label column(s), one per task (default
            `"label"`; for predictions a missing default column means unlabelled).
        feature_columns: CSV only: the feature columns, in order (default: every
            other column). A model trained on a CSV records them.
        class_names: The classes a model knows (`{task: names}`, or one list): labels
            are then mapped to the model's class indices by name, and a label the
            model does not know is refused. Default: taken from the data.
        image_size: Images only: `(height, width)` to resize every image to. Default:
            no resizing (all images must then have the same size).
        color_mode: Images only: `"grayscale"` or `"rgb"`. Default: grayscale if every
            image is.
        bad_images: Images only: `"refuse"` (default) an unreadable image with an
            error, or `"skip"` it (counted in `Dataset.skipped`).
        memory_limit: Bytes of decoded images (or `.npz` arrays) to keep in memory; a
            larger image folder is read from disk batch by batch. 0 always streams.
        subset: `"digits"` only: `"all"`, `"train"` or `"test"` (the split of
            `load_digits()`).
        require_labels: Refuse unlabelled data (for training and evaluation).
        missing_labels: CSV only: when a column of `label_columns` is absent,
            `"error"` (default) or `"unlabelled"` (read the file without labels, e.g.
            new data to predict).
        seed: `"digits"` only: the split's seed.
        verbose: 1 shows a progress bar while images are decoded.

    Returns:
        A `Dataset`.

    Raises:
        DataError: Data that cannot be used (the message says why and where).
        FileNotFoundError: No such file or folder.
        ValueError / TypeError: Bad arguments.

    Example:

    ```python
    ds = load("measurements.csv", label_columns=["species"])
    ds.class_names          # {'species': ['setosa', 'versicolor', 'virginica']}
    ```
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"`path` must be a str or os.PathLike. Received: path={path!r}")
    path = os.fspath(path)
    if missing_labels not in ("error", "unlabelled"):
        raise ValueError(
            f"`missing_labels` must be 'error' or 'unlabelled'. Received: {missing_labels!r}"
        )
    if bad_images not in BAD_IMAGES:
        raise ValueError(
            f"`bad_images` must be one of {list(BAD_IMAGES)}. Received: {bad_images!r}"
        )
    if color_mode is not None and color_mode not in COLOR_MODES:
        raise ValueError(
            f"`color_mode` must be one of {list(COLOR_MODES)} or None. Received: {color_mode!r}"
        )
    if image_size is not None:
        if (
            not isinstance(image_size, (tuple, list))
            or len(image_size) != 2
            or not all(isinstance(d, numbers.Integral) and d > 0 for d in image_size)
        ):
            raise ValueError(
                f"`image_size` must be (height, width), two positive integers. "
                f"Received: {image_size!r}"
            )
        image_size = (int(image_size[0]), int(image_size[1]))
    if (
        isinstance(memory_limit, bool)
        or not isinstance(memory_limit, numbers.Integral)
        or (memory_limit < 0)
    ):
        raise ValueError(f"`memory_limit` must be an integer >= 0. Received: {memory_limit!r}")
    if isinstance(label_columns, str):
        label_columns = [label_columns]
    known = _known_names(class_names)

    if path == "digits":
        dataset = _load_digits(subset, seed, known)
    elif os.path.isdir(path):
        dataset = _load_images(
            path, image_size, color_mode, bad_images, memory_limit, known, verbose
        )
    elif not os.path.exists(path):
        raise FileNotFoundError(f"No such file or folder: {path}")
    else:
        ext = os.path.splitext(path)[1].lower()
        if ext == ".npz":
            dataset = _load_npz(path, known)
        elif ext == ".npy":
            dataset = _load_npy(path)
        elif ext in (".csv", ".tsv", ".txt"):
            dataset = _load_csv(path, label_columns, feature_columns, known, missing_labels)
        else:
            raise DataError(
                f"{path}: unknown kind of data file '{ext or path}'; give a folder of images "
                f"(one sub-folder per class), a .npz, .npy or .csv file, or 'digits'"
            )
    if require_labels and not dataset.labelled:
        raise DataError(f"{path} holds no labels; {_how_to_label(dataset)}")
    return dataset


def _how_to_label(dataset: Dataset) -> str:
    if dataset.format == "csv":
        return (
            f"name the label column with --label-column (label_columns=); there is no "
            f"'{DEFAULT_LABEL_COLUMN}' column among: {_shown_ends(dataset.info['columns'])}"
        )
    return {
        "images": "put the images in one sub-folder per class (e.g. cats/, dogs/)",
        "npy": "a .npy holds features only: save features and labels together in a .npz "
        "(np.savez(path, x=features, y=labels))",
        "npz": "add the labels as 'y' (or 'y_<task>' for each task)",
    }.get(dataset.format, "labels are needed here")


def _known_names(class_names) -> dict[str, list[str]] | None:
    if class_names is None:
        return None
    if isinstance(class_names, Mapping):
        out = {str(k): [str(n) for n in v] for k, v in class_names.items()}
    elif isinstance(class_names, Sequence) and not isinstance(class_names, str):
        out = {DEFAULT_LABEL_COLUMN: [str(n) for n in class_names]}
    else:
        raise TypeError(
            f"`class_names` must be a list of names or a dict of them by task. "
            f"Received: {class_names!r}"
        )
    for task, names in out.items():
        if len(set(names)) != len(names):
            raise ValueError(f"`class_names` of '{task}' holds duplicates: {names}")
    return out


def _names_for(known: dict | None, task: str, tasks: Sequence[str]) -> list[str] | None:
    """The model's class names for one of the data's tasks (one task: whatever its name)."""
    if known is None:
        return None
    if task in known:
        return known[task]
    if len(known) == 1 and len(tasks) == 1:
        return next(iter(known.values()))
    return None


# ------------------------------------------------------------------------ digits
def _load_digits(subset: str, seed: int, known) -> Dataset:
    if subset not in DIGITS_SUBSETS:
        raise ValueError(f"`subset` must be one of {list(DIGITS_SUBSETS)}. Received: {subset!r}")
    digits = load_digits(seed=seed)
    if subset == "train":
        x, y = digits.x_train, digits.y_train
    elif subset == "test":
        x, y = digits.x_test, digits.y_test
    else:
        x = np.concatenate([digits.x_train, digits.x_test])
        y = np.concatenate([digits.y_train, digits.y_test])
    names = [str(i) for i in range(10)]
    model_names = _names_for(known, DEFAULT_LABEL_COLUMN, [DEFAULT_LABEL_COLUMN])
    if model_names is not None:
        y = _map_values([str(v) for v in y], model_names, "digit")
        names = model_names
    source = "digits" if subset == "all" else f"digits ({subset} split)"
    return Dataset(
        source,
        "digits",
        _ArrayFeatures({UNNAMED: x}),
        {DEFAULT_LABEL_COLUMN: y},
        {DEFAULT_LABEL_COLUMN: names},
        info={"subset": subset},
        names_from={DEFAULT_LABEL_COLUMN: "values"},
    )


def _map_values(values: Sequence[str], names: list[str], what: str, where=None) -> np.ndarray:
    """Class indices of `values` in `names` (the model's classes)."""
    index = {n: i for i, n in enumerate(names)}
    out = np.empty(len(values), dtype="int64")
    for i, value in enumerate(values):
        if value not in index:
            at = f" ({where(i)})" if where else ""
            raise ClassMismatchError(
                f"{what} '{value}'{at} is not one of the model's classes: {_shown(names, 20)}"
            )
        out[i] = index[value]
    return out


# ------------------------------------------------------------------------ images
def _pil():
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover (Pillow comes with matplotlib)
        raise DataError("reading images needs Pillow: pip install pillow") from None
    return Image


def _decode(path: str, size: tuple[int, int] | None, color_mode: str) -> np.ndarray:
    image = keras.utils.load_img(
        path, color_mode=color_mode, target_size=size, interpolation="bilinear"
    )
    return keras.utils.img_to_array(image, dtype="float32") / 255.0


def _list_images(folder: str) -> tuple[list[str], int]:
    """Image files under `folder` (recursively, sorted), and how many other files."""
    found, other = [], 0
    for root, dirs, files in os.walk(folder, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.startswith("."):
                continue
            if name.lower().endswith(IMAGE_EXTENSIONS):
                found.append(os.path.join(root, name))
            else:
                other += 1
    return found, other


def _load_images(root, image_size, color_mode, bad_images, memory_limit, known, verbose):
    entries = sorted(e for e in os.listdir(root) if not e.startswith("."))
    class_dirs = [e for e in entries if os.path.isdir(os.path.join(root, e))]
    extensions = ", ".join(IMAGE_EXTENSIONS)
    paths, labels, names = [], [], None
    ignored = 0
    if class_dirs:
        names = class_dirs
        for index, name in enumerate(class_dirs):
            found, other = _list_images(os.path.join(root, name))
            ignored += other
            if not found:
                raise DataError(
                    f"class folder {os.path.join(root, name)} holds no images ({extensions}); "
                    f"add images to it or remove it"
                )
            paths += found
            labels += [index] * len(found)
        ignored += sum(1 for e in entries if e not in class_dirs)  # files beside the class folders
    else:
        paths, ignored = _list_images(root)
        if not paths:
            raise DataError(
                f"{root} holds no images ({extensions}) and no class sub-folders; put the "
                f"images in one sub-folder per class"
            )
    Image = _pil()

    # Headers first (cheap): sizes and colour modes, and files that are not images.
    skipped, sizes, grey = [], {}, True
    keep = []
    for i, p in enumerate(paths):
        try:
            with Image.open(p) as im:
                sizes[i] = (im.size[1], im.size[0])  # (height, width)
                grey = grey and im.mode in _GREY_MODES
            keep.append(i)
        except Exception as e:  # PIL raises many kinds of error for a bad file
            skipped.append((p, _reason(e)))
            if bad_images == "refuse":
                raise _bad_image(p, e) from None
    color_mode = color_mode or ("grayscale" if grey else "rgb")
    channels = 1 if color_mode == "grayscale" else 3
    if image_size is None and keep:
        first = keep[0]
        for i in keep:
            if sizes[i] != sizes[first]:
                (h0, w0), (h, w) = sizes[first], sizes[i]
                raise DataError(
                    f"images differ in size: {paths[first]} is {h0}x{w0}, {paths[i]} is "
                    f"{h}x{w}; resize them all with --image-size HEIGHTxWIDTH (image_size=)"
                )
        image_size_used = sizes[first]
    else:
        image_size_used = image_size

    # Then decode every image once: into memory if it fits, else only to check it.
    nbytes = len(keep) * image_size_used[0] * image_size_used[1] * channels * 4
    in_memory = nbytes <= memory_limit
    cache = np.empty((len(keep), *image_size_used, channels), "float32") if in_memory else None
    progress = keras.utils.Progbar(len(keep), unit_name="image") if verbose else None
    good = []
    for n, i in enumerate(keep):
        try:
            pixels = _decode(paths[i], image_size, color_mode)
        except Exception as e:
            skipped.append((paths[i], _reason(e)))
            if bad_images == "refuse":
                raise _bad_image(paths[i], e) from None
        else:
            if cache is not None:
                cache[len(good)] = pixels
            good.append(i)
        if progress is not None and ((n + 1) % 64 == 0 or n + 1 == len(keep)):
            progress.update(n + 1)
    if not good:
        raise DataError(f"none of the {len(paths)} images in {root} can be read")
    if cache is not None and len(good) < len(keep):
        cache = cache[: len(good)]
    kept_paths = [paths[i] for i in good]
    features = _ImageFeatures(kept_paths, image_size_used, color_mode, cache)
    ids = [os.path.relpath(p, root) for p in kept_paths]
    info = {
        "color_mode": color_mode,
        "image_size": list(image_size_used),
        "resized": image_size is not None,
        "scale": "1/255",
        "ignored": ignored,
    }
    if names is None:
        return Dataset(root, "images", features, None, None, ids, skipped, info)
    y = np.asarray([labels[i] for i in good], dtype="int64")
    empty = [names[c] for c in range(len(names)) if not np.any(y == c)]
    if empty:
        raise DataError(
            f"class folder {os.path.join(root, empty[0])} holds no readable images "
            f"(all were skipped as unreadable)"
        )
    model_names = _names_for(known, DEFAULT_LABEL_COLUMN, [DEFAULT_LABEL_COLUMN])
    if model_names is not None:
        y = _map_values([names[c] for c in y], model_names, "class folder")
        names = model_names
    return Dataset(
        root,
        "images",
        features,
        {DEFAULT_LABEL_COLUMN: y},
        {DEFAULT_LABEL_COLUMN: list(names)},
        ids,
        skipped,
        info,
        {DEFAULT_LABEL_COLUMN: "values"},
    )


def _reason(error: Exception) -> str:
    text = " ".join(str(error).split()) or "unreadable"
    return f"{type(error).__name__}: {text}"


def _bad_image(path: str, error: Exception) -> DataError:
    return DataError(
        f"cannot read image {path} ({_reason(error)}); fix or remove it, or skip unreadable "
        f"images with --bad-images skip (bad_images='skip')"
    )


# --------------------------------------------------------------------- npz / npy
def _open_data_file(path: str):
    try:
        return fileio.open_regular(path, follow_symlinks=True)
    except fileio.UnsafePathError as e:
        raise DataError(f"{path}: {e.strerror}; data must be a regular file") from None


def _check_finite(name: str, array: np.ndarray, what: str = "row") -> None:
    if not np.issubdtype(array.dtype, np.floating):
        return
    chunk = 1 << 16
    for start in range(0, len(array), chunk):
        block = np.asarray(array[start : start + chunk])
        bad = ~np.isfinite(block.reshape(len(block), -1)).all(axis=1)
        if bad.any():
            rows = (np.flatnonzero(bad) + start).tolist()
            kind = "NaN" if np.isnan(block).any() else "infinite values"
            raise DataError(
                f"{kind} in features: {name} {what} {rows[0]}"
                + (
                    f" (and {len(rows) - 1} more rows in the first {len(block) + start:,})"
                    if len(rows) > 1
                    else ""
                )
                + "; fill or drop them first"
            )


def _labels_from_array(name: str, y: np.ndarray, names: list[str] | None, model_names):
    """(labels, class names, names_from) of an integer or one-hot label array."""
    y = np.asarray(y)
    if y.dtype.kind in "US":  # string labels: names are the values
        values = [str(v) for v in y.reshape(-1)]
        if model_names is not None:
            return _map_values(values, model_names, f"label in {name}"), model_names, "values"
        classes = _sorted_values(values)
        lookup = {c: i for i, c in enumerate(classes)}
        return np.asarray([lookup[v] for v in values], dtype="int64"), classes, "values"
    if y.dtype.kind not in "biuf":
        raise DataError(f"{name} must hold class indices or one-hot rows; it holds {y.dtype}")
    if y.dtype.kind == "f" and not np.isfinite(y).all():
        raise DataError(f"NaN or infinite values in labels {name}")
    if y.ndim == 2 and y.shape[1] > 1:
        multi_hot = np.isin(y, (0, 1)).all()  # several binary labels (sigmoid outputs)
        if not multi_hot and ((y < 0).any() or not np.allclose(y.sum(axis=1), 1, atol=1e-3)):
            raise DataError(
                f"{name} has {y.shape[1]} columns but its rows are neither one-hot (each row "
                f">= 0 and summing to 1) nor 0/1 flags"
            )
        k = y.shape[1]
        labels = y.astype("float32")
    elif y.ndim == 1 or (y.ndim == 2 and y.shape[1] == 1):
        flat = y.reshape(-1)
        if y.dtype.kind == "f":
            if not np.all(np.mod(flat, 1) == 0):
                raise DataError(
                    f"{name} holds fractional values (e.g. {flat[np.mod(flat, 1) != 0][0]}); "
                    f"labels are class indices 0, 1, 2, ... or one-hot rows"
                )
        flat = flat.astype("int64")
        if len(flat) and flat.min() < 0:
            raise DataError(f"{name} holds a negative class index ({int(flat.min())})")
        k = int(flat.max()) + 1 if len(flat) else 0
        labels = flat
    else:
        raise DataError(
            f"{name} must be class indices (n,) or one-hot rows (n, classes); it has shape "
            f"{y.shape}"
        )
    if model_names is not None:
        if k > len(model_names) or (labels.ndim == 2 and k != len(model_names)):
            raise ClassMismatchError(
                f"{name} has {k} classes; the model knows {len(model_names)}: "
                f"{_shown(model_names, 20)}"
            )
        return labels, model_names, "indices"
    if names is not None:
        if len(names) < k:
            raise DataError(f"class_names of {name} has {len(names)} names for {k} classes")
        return labels, names, "values"
    return labels, [str(i) for i in range(k)], "indices"


def _load_npz(path: str, known) -> Dataset:
    with _open_data_file(path) as f:
        try:
            archive = np.load(f, allow_pickle=False)
        except (ValueError, OSError, EOFError) as e:
            raise DataError(f"{path} is not a readable .npz archive ({e})") from None
        with archive:
            try:
                arrays = {k: archive[k] for k in archive.files}
            except ValueError as e:  # object arrays need pickle, which is refused
                raise DataError(f"{path}: {e}; save plain numeric arrays") from None
            except (OSError, EOFError, Exception) as e:  # zip errors (BadZipFile, ...)
                raise DataError(f"{path} is not a readable .npz archive ({e})") from None
    xs = {k: v for k, v in arrays.items() if k == "x" or k.startswith("x_")}
    ys = {k: v for k, v in arrays.items() if k == "y" or k.startswith("y_")}
    names = {k: v for k, v in arrays.items() if k == "class_names" or k.startswith("class_names_")}
    other = sorted(set(arrays) - set(xs) - set(ys) - set(names))
    if other:
        raise DataError(
            f"{path} holds arrays {other} that are neither features ('x' or 'x_<input>'), "
            f"labels ('y' or 'y_<task>') nor class names ('class_names[_<task>]')"
        )
    if not xs:
        raise DataError(
            f"{path} holds no features: name them 'x' (or 'x_<input>' per model input); "
            f"it holds {sorted(arrays)}"
        )
    if "x" in xs and len(xs) > 1:
        raise DataError(f"{path} holds both 'x' and {sorted(set(xs) - {'x'})}; use one form")
    if "y" in ys and len(ys) > 1:
        raise DataError(f"{path} holds both 'y' and {sorted(set(ys) - {'y'})}; use one form")
    features = {}
    for key, array in xs.items():
        input_name = UNNAMED if key == "x" else key[2:]
        if array.ndim < 2:
            raise DataError(
                f"{path}: features '{key}' must have one row per example and at least one "
                f"feature (shape (n, ...)); it has shape {array.shape}"
            )
        if array.dtype.kind not in "biuf":
            raise DataError(f"{path}: features '{key}' must be numbers; they are {array.dtype}")
        _check_finite(f"'{key}'", array)
        features[input_name] = array.astype("float32") if array.dtype == "float64" else array
    lengths = {k: len(v) for k, v in {**xs, **ys}.items()}
    if len(set(lengths.values())) > 1:
        shown = ", ".join(f"{k} has {n:,}" for k, n in lengths.items())
        raise DataError(f"{path}: mismatched lengths: {shown} rows")
    labels, class_names, names_from = {}, {}, {}
    tasks = [DEFAULT_LABEL_COLUMN if k == "y" else k[2:] for k in ys]
    for key, task in zip(ys, tasks):
        names_key = "class_names" if key == "y" else f"class_names_{task}"
        given = None
        if names_key in names:
            given = [str(n) for n in np.asarray(names[names_key]).reshape(-1)]
        labels[task], class_names[task], names_from[task] = _labels_from_array(
            f"'{key}'", ys[key], given, _names_for(known, task, tasks)
        )
    n = next(iter(lengths.values()))
    return Dataset(
        path,
        "npz",
        _ArrayFeatures(features),
        labels or None,
        class_names or None,
        [f"row {i}" for i in range(n)],
        info={},
        names_from=names_from,
    )


def _load_npy(path: str) -> Dataset:
    with _open_data_file(path):
        pass  # a regular file (not a FIFO, device or directory)
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as e:
        raise DataError(f"{path}: {e}; save a plain numeric array") from None
    except (OSError, EOFError) as e:
        raise DataError(f"{path} is not a readable .npy file ({e})") from None
    if array.ndim < 2:
        raise DataError(
            f"{path}: features must have one row per example (shape (n, ...)); the array has "
            f"shape {array.shape}"
        )
    if array.dtype.kind not in "biuf":
        raise DataError(f"{path}: features must be numbers; they are {array.dtype}")
    _check_finite("the array", array)
    return Dataset(
        path,
        "npy",
        _ArrayFeatures({UNNAMED: array}, in_memory=False),
        ids=[f"row {i}" for i in range(len(array))],
    )


# --------------------------------------------------------------------------- csv
def _sorted_values(values) -> list[str]:
    unique = sorted(set(values))
    try:
        return sorted(unique, key=float)  # numbers in numeric order: 2 before 10
    except ValueError:
        return unique


def _load_csv(path: str, label_columns, feature_columns, known, missing_labels) -> Dataset:
    with _open_data_file(path) as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
        try:
            head = text.read(64 * 1024)
            try:
                dialect = csv.Sniffer().sniff(head, delimiters=",;\t")
            except csv.Error:
                dialect = csv.excel
            text.seek(0)
            rows = list(csv.reader(text, dialect))
        except UnicodeDecodeError as e:
            raise DataError(f"{path} is not UTF-8 text ({e})") from None
        except csv.Error as e:
            raise DataError(f"{path} is not valid CSV ({e})") from None
    rows = [r for r in rows if any(cell.strip() for cell in r)]
    if not rows:
        raise DataError(f"{path} is empty; a CSV needs a header row naming its columns")
    header = [c.strip() for c in rows[0]]
    body = rows[1:]
    if not body:
        raise DataError(f"{path} has a header row but no data rows")
    duplicates = sorted({c for c in header if header.count(c) > 1})
    if duplicates or "" in header:
        raise DataError(
            f"{path}: column names must be unique and non-empty; the header is {header}"
        )
    for number, row in enumerate(body, start=2):
        if len(row) != len(header):
            raise DataError(
                f"{path} line {number} has {len(row)} fields; the header has {len(header)}"
            )
    if label_columns is None:
        label_columns = [DEFAULT_LABEL_COLUMN] if DEFAULT_LABEL_COLUMN in header else []
    else:
        label_columns = list(label_columns)
        missing = [c for c in label_columns if c not in header]
        if missing and missing_labels == "unlabelled":
            label_columns = []
        elif missing:
            raise DataError(
                f"{path}: unknown label column '{missing[0]}'; the columns are: "
                f"{_shown_ends(header)}"
            )
    if feature_columns is None:
        feature_columns = [c for c in header if c not in label_columns]
    else:
        missing = [c for c in feature_columns if c not in header]
        if missing:
            raise DataError(
                f"{path} lacks the feature column(s) {_shown(missing)} the model was trained "
                f"on; its columns are: {_shown_ends(header)}"
            )
        clash = [c for c in label_columns if c in feature_columns]
        if clash:
            raise DataError(f"{path}: {clash} cannot be both a label and a feature column")
    if not feature_columns:
        raise DataError(f"{path} has no feature columns besides the labels {label_columns}")
    position = {c: i for i, c in enumerate(header)}
    features = np.empty((len(body), len(feature_columns)), dtype="float32")
    for j, column in enumerate(feature_columns):
        cells = [row[position[column]].strip() for row in body]
        try:
            features[:, j] = np.asarray(cells, dtype="float64")
        except ValueError:
            for i, cell in enumerate(cells):
                if cell == "":
                    raise DataError(
                        f"missing value in features: column '{column}', line {i + 2} of {path}; "
                        f"fill or drop such rows first"
                    ) from None
                try:
                    float(cell)
                except ValueError:
                    raise DataError(
                        f"column '{column}' holds '{cell[:40]}' on line {i + 2} of {path}, not a "
                        f"number; feature columns must be numeric (make it a label with "
                        f"--label-column {column}, or drop it)"
                    ) from None
    bad = ~np.isfinite(features)
    if bad.any():
        i, j = map(int, np.argwhere(bad)[0])
        raise DataError(
            f"NaN in features: column '{feature_columns[j]}', line {i + 2} of {path}"
            + (
                f" (and {int(bad.any(axis=1).sum()) - 1} more rows)"
                if bad.any(axis=1).sum() > 1
                else ""
            )
            + "; fill or drop such rows first"
        )
    labels, class_names, names_from = {}, {}, {}
    for column in label_columns:
        cells = [row[position[column]].strip() for row in body]
        empty = [i for i, c in enumerate(cells) if c == ""]
        if empty:
            raise DataError(f"missing label: column '{column}', line {empty[0] + 2} of {path}")
        model_names = _names_for(known, column, label_columns)
        if model_names is not None:
            names = model_names
            labels[column] = _map_values(
                cells, names, f"label in column '{column}':", where=lambda i: f"line {i + 2}"
            )
        else:
            names = _sorted_values(cells)
            lookup = {c: i for i, c in enumerate(names)}
            labels[column] = np.asarray([lookup[c] for c in cells], dtype="int64")
        class_names[column] = list(names)
        names_from[column] = "values"
    info = {
        "feature_columns": list(feature_columns),
        "label_columns": list(label_columns),
        "columns": header,
    }
    return Dataset(
        path,
        "csv",
        _ArrayFeatures({UNNAMED: features}),
        labels or None,
        class_names or None,
        [f"line {i + 2}" for i in range(len(body))],
        info=info,
        names_from=names_from,
    )
