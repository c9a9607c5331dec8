"""How a preset meets data: what its inputs are, what it predicts, and how arrays
from a dataset (the bundled digits, or a user's images, CSV or `.npz`) are shown to it.

A `DataView` is registered with each preset. The command line, the tests and the
benchmarks use it instead of knowing presets by name:

- `view.config_for(features, labels)` gives the overrides that fit the preset to
  the data (input shapes, number of classes, task heads);
- `view.model_inputs(features)` arranges feature arrays the way the model takes
  them (by input name, converting images to row sequences or flat vectors where
  the preset needs that);
- `view.model_targets(labels)` arranges labels the way the model's outputs are;
- `view.digits(images, labels)` is the preset's view of the bundled digits.

`features` is one array `(n, ...)` or a dict of arrays keyed by input name;
`labels` is an integer array `(n,)`, a one-hot array `(n, classes)`, or a dict of
those keyed by task name.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

__all__ = ["INPUT_KINDS", "TARGET_KINDS", "DataView", "ModelInput", "class_count", "kind_of"]

INPUT_KINDS = ("image", "sequence", "vector", "tokens", "table")
TARGET_KINDS = ("classes", "tasks", "binary")
_RANK = {"image": 3, "sequence": 2, "vector": 1, "tokens": 1, "table": 1}


@dataclasses.dataclass(frozen=True)
class ModelInput:
    """One input of a preset's model.

    Attributes:
        name: The model's input name.
        kind: `"image"` `(H, W, C)`, `"sequence"` `(time, features)`, `"vector"`
            `(features,)`, `"tokens"` `(time,)` integers, or `"table"` `(columns,)`
            raw table rows (NaN for missing values, category indices) that the model
            preprocesses itself.
        config_key: The builder argument that sets this input's shape, or None.
    """

    name: str
    kind: str
    config_key: str | None = "input_shape"

    def __post_init__(self):
        if self.kind not in INPUT_KINDS:
            raise ValueError(
                f"`kind` must be one of {list(INPUT_KINDS)}. Received: kind={self.kind!r}"
            )


def kind_of(array: np.ndarray) -> str:
    """The natural kind of a feature array by its rank (integers of rank 2 are tokens)."""
    rank = np.ndim(array) - 1
    if rank == 3:
        return "image"
    if rank == 2:
        return "sequence"
    if rank == 1:
        return "tokens" if np.issubdtype(np.asarray(array).dtype, np.integer) else "vector"
    raise ValueError(
        f"Features must be vectors (n, features), sequences (n, time, features) or images "
        f"(n, height, width, channels). Received an array of shape {np.shape(array)}"
    )


def _convert(array: np.ndarray, to: str, name: str) -> np.ndarray:
    """An array of one kind shown as another: image rows as a sequence, anything flat."""
    have = kind_of(array)
    n = len(array)
    if to == "table":
        to = "vector"
    if have == to or (have == "tokens" and to == "vector"):
        return array
    if to == "vector":
        return np.reshape(array, (n, -1))
    if to == "sequence" and have == "image":
        return np.reshape(array, (n, array.shape[1], -1))  # each row is a time step
    if to == "sequence" and have == "vector":
        return np.reshape(array, (n, array.shape[1], 1))
    if to == "image" and have == "sequence":
        return np.reshape(array, array.shape + (1,))
    raise ValueError(
        f"Input '{name}' takes {to}s; the data holds {have}s of shape {tuple(array.shape[1:])}, "
        f"which cannot be shown as one"
    )


def class_count(labels: np.ndarray, name: str = "labels") -> int:
    """The number of classes of integer (`(n,)`) or one-hot (`(n, k)`) labels."""
    labels = np.asarray(labels)
    if labels.ndim == 2 and labels.shape[1] > 1:
        return int(labels.shape[1])
    if labels.ndim == 1 or (labels.ndim == 2 and labels.shape[1] == 1):
        flat = labels.reshape(-1)
        if not np.issubdtype(flat.dtype, np.integer):
            if not np.all(np.equal(np.mod(flat, 1), 0)):
                raise ValueError(f"`{name}` must be integer class indices or one-hot rows")
            flat = flat.astype("int64")
        flat = flat[flat != -1]  # -1: a masked (missing) label of a multi-task table
        if flat.size and flat.min() < 0:
            raise ValueError(f"`{name}` holds a negative class index ({int(flat.min())})")
        return int(flat.max()) + 1 if flat.size else 0
    raise ValueError(
        f"`{name}` must be integer class indices (n,) or one-hot rows (n, classes). "
        f"Received shape {labels.shape}"
    )


def _sparse(labels: np.ndarray) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim == 2 and labels.shape[1] > 1:
        return np.argmax(labels, axis=-1)
    return labels.reshape(-1).astype("int64")


@dataclasses.dataclass(frozen=True)
class DataView:
    """How a preset meets data (see the module docstring).

    Attributes:
        inputs: The model's inputs, in order.
        target: `"classes"` (one softmax head; `num_classes` sets its size),
            `"tasks"` (a dict of softmax heads; `tasks` sets them) or `"binary"`
            (independent sigmoid outputs, e.g. the documents' fusion).
        classes_key: The builder argument for the number of classes.
        tasks_key: The builder argument for the task heads.
        digits_view: Optional `(images, labels) -> (features, labels)`: how the
            bundled digits are shown to this preset when the generic conversion
            (images to rows or pixels) is not enough.
    """

    inputs: tuple[ModelInput, ...]
    target: str = "classes"
    classes_key: str = "num_classes"
    tasks_key: str = "tasks"
    digits_view: Callable[[np.ndarray, np.ndarray], tuple[Any, Any]] | None = None

    def __post_init__(self):
        if self.target not in TARGET_KINDS:
            raise ValueError(
                f"`target` must be one of {list(TARGET_KINDS)}. Received: target={self.target!r}"
            )
        if not self.inputs:
            raise ValueError("A DataView needs at least one ModelInput")

    # ---------------------------------------------------------------- features
    def model_inputs(self, features) -> Any:
        """Feature arrays arranged as the model takes them."""
        arrays = self._split(features)
        if len(self.inputs) == 1:
            return arrays[self.inputs[0].name]
        return {spec.name: arrays[spec.name] for spec in self.inputs}

    def _split(self, features) -> dict[str, np.ndarray]:
        if isinstance(features, Mapping):
            missing = [s.name for s in self.inputs if s.name not in features]
            if len(self.inputs) == 1 and missing and len(features) == 1:
                features = {self.inputs[0].name: next(iter(features.values()))}
                missing = []
            if missing:
                raise ValueError(
                    f"The data has inputs {sorted(features)}; the model takes "
                    f"{[s.name for s in self.inputs]} (missing: {missing})"
                )
            return {
                s.name: _convert(np.asarray(features[s.name]), s.kind, s.name) for s in self.inputs
            }
        array = np.asarray(features)
        if len(self.inputs) == 1:
            spec = self.inputs[0]
            return {spec.name: _convert(array, spec.kind, spec.name)}
        kinds = [s.kind for s in self.inputs]
        if kinds.count("vector") == len(kinds):
            flat = _convert(array, "vector", self.inputs[0].name)
            if flat.shape[1] % len(kinds):
                raise ValueError(
                    f"The model takes {len(kinds)} vector inputs "
                    f"{[s.name for s in self.inputs]}; {flat.shape[1]} features cannot be "
                    f"split into that many equal parts (give a dict of named arrays instead)"
                )
            parts = np.split(flat, len(kinds), axis=1)
            return {s.name: p for s, p in zip(self.inputs, parts)}
        # Different kinds from one array: each input sees the data in its own form
        # (e.g. an image and its rows as a sequence).
        return {s.name: _convert(array, s.kind, s.name) for s in self.inputs}

    # ------------------------------------------------------------------ labels
    def model_targets(self, labels) -> Any:
        """Labels arranged as the model's outputs (integers stay integers)."""
        if self.target == "tasks":
            if not isinstance(labels, Mapping):
                return {"label": labels}
            return dict(labels)
        if isinstance(labels, Mapping):
            if len(labels) != 1:
                raise ValueError(
                    f"The model has one output; the data has label columns {sorted(labels)}"
                )
            return next(iter(labels.values()))
        return labels

    def config_for(self, features, labels) -> dict:
        """The overrides that fit the preset to these features and labels."""
        arrays = self._split(features)
        config: dict[str, Any] = {}
        for spec in self.inputs:
            if spec.config_key is not None:
                config[spec.config_key] = list(arrays[spec.name].shape[1:])
        targets = self.model_targets(labels)
        if self.target == "classes":
            config[self.classes_key] = class_count(targets)
        elif self.target == "tasks":
            config[self.tasks_key] = {
                task: {"units": class_count(y, f"labels['{task}']"), "activation": "softmax"}
                for task, y in targets.items()
            }
        return config

    def config_for_dataset(self, dataset) -> dict:
        """The overrides that fit the preset to a `keras_bigmodel.data.Dataset` (its
        training rows): `config_for` on a sample, with the classes counted by name."""
        sample = dataset.take(np.arange(min(len(dataset), 2)))
        config = self.config_for(sample, self.model_targets(dict(dataset.labels)))
        names = dataset.class_names
        if self.target == "classes":
            config[self.classes_key] = len(next(iter(names.values())))
        elif self.target == "tasks":
            for task, spec in config.get(self.tasks_key, {}).items():
                spec["units"] = len(names[task])
        return config

    def label_mode(self, labels) -> str:
        """`"sparse"` for integer labels, `"categorical"` for one-hot rows."""
        targets = self.model_targets(labels)
        first = next(iter(targets.values())) if isinstance(targets, Mapping) else targets
        first = np.asarray(first)
        return "categorical" if first.ndim == 2 and first.shape[1] > 1 else "sparse"

    # ------------------------------------------------------------------ digits
    def digits(self, images: np.ndarray, labels: np.ndarray) -> tuple[Any, Any]:
        """The bundled digits as this preset sees them: `(features, labels)`."""
        if self.digits_view is not None:
            return self.digits_view(images, labels)
        if self.target == "tasks":
            return images, {"digit": labels}
        return images, labels

    def sparse(self, labels):
        """Integer labels (one-hot rows turned into indices), in the same structure."""
        if isinstance(labels, Mapping):
            return {k: _sparse(v) for k, v in labels.items()}
        return _sparse(labels)
