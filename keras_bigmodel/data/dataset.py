"""The dataset types: `Dataset` (features, labels, class names, ids) and `Batches`
(a `keras.utils.PyDataset` that reads one batch at a time)."""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import keras
import numpy as np

from keras_bigmodel.data._text import (
    check_class_name,
    map_values,
    shown,
    sorted_values,
)
from keras_bigmodel.data.errors import ClassMismatchError, DataError
from keras_bigmodel.data.options import DEFAULT_LABEL_COLUMN

__all__ = ["UNNAMED", "Batches", "Dataset"]

UNNAMED = "x"  # the key of a dataset's features when they are one unnamed array
MAX_CLASSES = 1_000_000
_CHECK_BYTES = 1 << 24
_KINDS = {
    "images": "image",
    "digits": "image",
    "csv": "table",
}  # bytes of features checked for NaN at a time


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
    def kind(self) -> str:
        """What a model must take: `"image"` (folders, digits), `"table"` (CSV) or
        `"array"` (`.npz`, `.npy`, arrays)."""
        return _KINDS.get(self.format, "array")

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
        if isinstance(getattr(self._features, "cache", None), np.ndarray):
            return self._features.cache
        return self.take(np.arange(len(self)))

    def size_groups(self) -> list[np.ndarray]:
        """The examples' indices in groups of one input size, in order of first
        appearance: one group, except for images read at their own sizes
        (`LoadOptions(own_sizes=True)`), where each group can be one batch."""
        groups = getattr(self._features, "size_groups", None)
        if groups is None:
            return [np.arange(len(self))]
        return groups()

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
            size = f"{h}x{w}"
            if h is None:
                groups = self.size_groups()
                size = f"{len(groups)} sizes"
            what = f"{len(self):,} images ({size} {self.info.get('color_mode', '')})"
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
                sparse = _to_sparse(self.labels[t])
                present = len(np.unique(sparse[sparse >= 0]))  # -1: a masked label
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
        sparse = _to_sparse(self.labels[task])
        counts = np.bincount(sparse[sparse >= 0], minlength=len(self.class_names[task]))
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


def _check_finite(name: str, array: np.ndarray, what: str = "row") -> None:
    """Refuses NaN or infinite features, reading at most `_CHECK_BYTES` at a time."""
    if not np.issubdtype(array.dtype, np.floating) or not len(array):
        return
    row_bytes = max(1, int(np.prod(array.shape[1:], dtype="int64")) * array.dtype.itemsize)
    chunk = max(1, _CHECK_BYTES // row_bytes)
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
            return map_values(values, model_names, f"label in {name}"), model_names, "values"
        classes = [check_class_name(c, name) for c in sorted_values(values)]
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
        if k > MAX_CLASSES:
            raise DataError(
                f"{name} holds the class index {k - 1:,}; at most {MAX_CLASSES:,} classes are "
                f"allowed (labels are class indices 0, 1, 2, ...)"
            )
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
                f"{shown(model_names, 20)}"
            )
        return labels, model_names, "indices"
    if names is not None:
        if len(names) < k:
            raise DataError(f"class_names of {name} has {len(names)} names for {k} classes")
        return labels, [check_class_name(n, f"class_names of {name}") for n in names], "values"
    return labels, [str(i) for i in range(k)], "indices"
