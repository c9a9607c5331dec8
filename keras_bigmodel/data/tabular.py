"""Tables inside the model: the column schema, the `TabularEncoding` layer that
standardizes, imputes and one-hot encodes raw rows on every backend, and
`encode_rows`, which turns raw rows (strings, numbers, missing values) into what the
model takes.

A model built by the `tabular` preset takes one float32 input `(batch, columns)`:
a numeric column's raw value (NaN when missing), a string column's category index (0
for a missing or unknown value, 1..k for the k values of its vocabulary), an
integer-coded categorical column's raw code (NaN when missing). The
`TabularEncoding` layer then does all the preprocessing with Keras's own
preprocessing layers, so the `.keras` file alone predicts raw rows:

- numeric: a missing value is imputed with the training mean, a 0/1 indicator column
  says it was missing (for columns that had missing values in training), and the
  value is standardized by `keras.layers.Normalization` with the training mean and
  variance stored inline in the config;
- integer-coded categorical (`kind="integer_categorical"`, e.g. a grade 1..5 or a
  year): the code is looked up in the column's inline vocabulary inside the model, with
  `keras.layers.IntegerLookup`'s convention (index 0 for a missing or unknown code,
  1..k for the vocabulary), by comparisons in `keras.ops`;
- categorical (both kinds): `keras.layers.CategoryEncoding` one-hot encodes the index,
  with a slot of its own for "missing or unknown" (`categorical_encoding="onehot"`, the
  default), or a trained `keras.layers.Embedding` maps it to a dense vector
  (`categorical_encoding="embedding"`).

Why the integer lookup is not an `IntegerLookup` layer inside the model: Keras's lookup
layers run TensorFlow ops, which JAX cannot trace: on the JAX backend, a plain Keras
functional model `IntegerLookup -> Dense` predicts but cannot train (`train_on_batch`:
"Unable to automatically build the model"; the plain-Keras control is a test). The
comparisons give the same indices as `IntegerLookup` (tested against it) and train,
save and export on every backend.

Why the string-to-index step is not a layer: `keras.layers.StringLookup` inside a
functional model cannot be fed strings on any backend (Keras 3.15 refuses the `str`
and `object` arrays with "Invalid dtype", TensorFlow included), and JAX and PyTorch have
no string tensors at all. So the vocabularies are stored in the layer's config (inline:
the hardened loader `kbm.load_model` accepts them, while it refuses vocabulary *file*
paths) and `encode_rows(model, rows)` maps strings to indices with them, in plain
Python, the same on every backend.

Example:

```python
import numpy as np
from keras_bigmodel.data import tabular

columns = [
    {"name": "mass", "kind": "numeric", "mean": 4000.0, "variance": 640000.0,
     "indicator": True},
    {"name": "island", "kind": "categorical", "vocabulary": ["Biscoe", "Dream"]},
]
layer = tabular.TabularEncoding(columns)
x = tabular.encode_rows(columns, {"mass": [3600, None], "island": ["Dream", "Mars"]})
layer(x).shape        # (2, 5): standardized mass, its indicator, 3 island slots
```
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence

import keras
import numpy as np
from keras import ops

from keras_bigmodel import _compat
from keras_bigmodel.data._text import printable
from keras_bigmodel.data.errors import DataError

__all__ = [
    "CATEGORICAL_ENCODINGS",
    "CATEGORICAL_KINDS",
    "KINDS",
    "MAX_INTEGER_CODE",
    "MISSING_TOKENS",
    "TabularEncoding",
    "columns_of",
    "encode_rows",
    "encoded_view",
    "fit_columns",
    "is_missing",
    "standardized_view",
]

KINDS = ("numeric", "categorical", "integer_categorical")
CATEGORICAL_KINDS = ("categorical", "integer_categorical")
CATEGORICAL_ENCODINGS = ("onehot", "embedding")
# Integer codes travel in the float32 input: beyond 2**24 they are no longer exact.
MAX_INTEGER_CODE = 1 << 24
# Cells read as missing (besides the empty cell), as pandas' read_csv does by default.
MISSING_TOKENS = frozenset(
    ["", "NA", "N/A", "n/a", "NaN", "nan", "NULL", "null", "None", "none", "?", "-nan", "#N/A"]
)
MAX_VOCABULARY = 100_000


def is_missing(value) -> bool:
    """Whether a raw cell is a missing value (None, NaN, an empty or `NA`-like string)."""
    if value is None:
        return True
    if isinstance(value, str):
        return value.strip() in MISSING_TOKENS
    if isinstance(value, numbers.Real):
        return math.isnan(value)
    return False


def _check_columns(columns) -> list[dict]:
    if not isinstance(columns, (list, tuple)) or not columns:
        raise ValueError(
            f"`columns` must be a non-empty list of column specs. Received: {columns!r}"
        )
    out, names = [], set()
    for i, spec in enumerate(columns):
        if not isinstance(spec, Mapping):
            raise ValueError(f"`columns[{i}]` must be a dict. Received: {spec!r}")
        name, kind = spec.get("name"), spec.get("kind")
        if not isinstance(name, str) or not name or name in names:
            raise ValueError(
                f"`columns[{i}]['name']` must be a unique non-empty str. Received: {name!r}"
            )
        names.add(name)
        if kind not in KINDS:
            raise ValueError(
                f"`columns[{i}]['kind']` must be one of {list(KINDS)}. Received: {kind!r}"
            )
        spec = dict(spec)
        if kind == "numeric":
            mean = float(spec.get("mean", 0.0))
            variance = float(spec.get("variance", 1.0))
            if not (math.isfinite(mean) and math.isfinite(variance) and variance > 0):
                raise ValueError(
                    f"`columns[{i}]` ({name}): `mean` must be finite and `variance` > 0. "
                    f"Received: mean={mean!r}, variance={variance!r}"
                )
            spec.update(mean=mean, variance=variance, indicator=bool(spec.get("indicator", False)))
        elif kind == "integer_categorical":
            vocabulary = spec.get("vocabulary")
            if (
                not isinstance(vocabulary, (list, tuple))
                or not all(
                    isinstance(v, numbers.Integral)
                    and not isinstance(v, bool)
                    and abs(v) <= MAX_INTEGER_CODE
                    for v in vocabulary
                )
                or len(set(vocabulary)) != len(vocabulary)
                or len(vocabulary) > MAX_VOCABULARY
            ):
                raise ValueError(
                    f"`columns[{i}]['vocabulary']` ({name}) of an integer_categorical column "
                    f"must be an inline list of distinct integers within +-{MAX_INTEGER_CODE:,} "
                    f"(exact in float32; at most {MAX_VOCABULARY:,}). "
                    f"Received: {vocabulary!r:.80}"
                )
            spec["vocabulary"] = [int(v) for v in vocabulary]
        else:
            vocabulary = spec.get("vocabulary")
            if (
                not isinstance(vocabulary, (list, tuple))
                or not all(isinstance(v, str) for v in vocabulary)
                or len(set(vocabulary)) != len(vocabulary)
                or len(vocabulary) > MAX_VOCABULARY
            ):
                raise ValueError(
                    f"`columns[{i}]['vocabulary']` ({name}) must be an inline list of distinct "
                    f"strings (at most {MAX_VOCABULARY:,}); a file path is not accepted. "
                    f"Received: {vocabulary!r:.80}"
                )
            spec["vocabulary"] = list(vocabulary)
        out.append(spec)
    return out


@keras.saving.register_keras_serializable(package="keras_bigmodel")
class TabularEncoding(keras.layers.Layer):
    """Raw table rows -> standardized, imputed, one-hot features, inside the model.

    Args:
        columns: One spec per input column, in order: `{"name", "kind": "numeric",
            "mean", "variance", "indicator"}`, `{"name", "kind": "categorical",
            "vocabulary": [strings]}` or `{"name", "kind": "integer_categorical",
            "vocabulary": [integers]}` (see `fit_columns`).
        categorical_encoding: `"onehot"` (default: one slot per value plus one for
            missing or unknown) or `"embedding"` (a trained `keras.layers.Embedding`
            per categorical column).
        embedding_dim: With `"embedding"`: the width of every column's embedding, or
            None (default) for `min(16, round(1.6 * (k + 1) ** 0.56))` per column of
            `k` values.
        **kwargs: Layer options (`name`, ...). The layer always computes in float32
            (standardizing a value like 4000 in float16 loses it); the layers after
            it cast to their own policy.

    Call arguments:
        inputs: `(batch, len(columns))` float: numeric values (NaN = missing), string
            columns' category indices (0 = missing or unknown, 1..k) and integer
            columns' raw codes (NaN = missing).

    Raises:
        ValueError: A column spec, `categorical_encoding` or `embedding_dim` is not
            allowed (the message names it, the value and what is allowed).

    Returns:
        `(batch, output_width)` float32.

    Example:

    ```python
    layer = TabularEncoding([{"name": "a", "kind": "numeric", "mean": 2.0, "variance": 4.0}])
    layer(np.array([[4.0], [np.nan]], "float32"))      # [[1.0], [0.0]]
    ```
    """

    # Its input is raw columns of any scale: full-integer exports must keep it float
    # (kbm.compress.export_tflite refuses "int8"; export_onnx leaves it unquantized).
    takes_raw_columns = True

    def __init__(self, columns, categorical_encoding="onehot", embedding_dim=None, **kwargs):
        kwargs["dtype"] = "float32"
        super().__init__(**kwargs)
        self.columns = _check_columns(columns)
        if categorical_encoding not in CATEGORICAL_ENCODINGS:
            raise ValueError(
                f"`categorical_encoding` must be one of {list(CATEGORICAL_ENCODINGS)}. "
                f"Received: categorical_encoding={categorical_encoding!r}"
            )
        if embedding_dim is not None and (
            isinstance(embedding_dim, bool)
            or not isinstance(embedding_dim, numbers.Integral)
            or not 1 <= embedding_dim <= 1024
        ):
            raise ValueError(
                f"`embedding_dim` must be None or an integer in [1, 1024]. "
                f"Received: embedding_dim={embedding_dim!r}"
            )
        self.categorical_encoding = categorical_encoding
        self.embedding_dim = None if embedding_dim is None else int(embedding_dim)
        self.supports_masking = False
        self._numeric = [i for i, c in enumerate(self.columns) if c["kind"] == "numeric"]
        self._indicator = [i for i in self._numeric if self.columns[i]["indicator"]]
        self._categorical = [
            i for i, c in enumerate(self.columns) if c["kind"] in CATEGORICAL_KINDS
        ]
        if self._numeric:
            num = [self.columns[i] for i in self._numeric]
            # Keras's Normalization holds the mean and variance (set in build); `call`
            # applies its formula to those variables itself: Normalization's own call
            # uses eager constants, which tf2onnx exports as extra graph inputs (a plain
            # Keras model does the same: tests/test_export.py).
            self.normalization = keras.layers.Normalization(dtype="float32", name="normalization")
            self._variances = np.asarray([c["variance"] for c in num], "float32")
            self._means = np.asarray([c["mean"] for c in num], "float32")
        self._codes = {  # integer columns' vocabularies, as the float32 input holds them
            i: np.asarray(self.columns[i]["vocabulary"], "float32")
            for i in self._categorical
            if self.columns[i]["kind"] == "integer_categorical"
        }
        self.encoders = []
        for j, i in enumerate(self._categorical):
            size = len(self.columns[i]["vocabulary"]) + 1
            if categorical_encoding == "onehot":
                encoder = keras.layers.CategoryEncoding(
                    num_tokens=size, output_mode="one_hot", dtype="float32", name=f"one_hot_{j}"
                )
            else:
                encoder = keras.layers.Embedding(
                    size, self._width(size), dtype="float32", name=f"embedding_{j}"
                )
            self.encoders.append(encoder)

    def _width(self, size: int) -> int:
        """One categorical column's output width (`size`: its values + 1)."""
        if self.categorical_encoding == "onehot":
            return size
        if self.embedding_dim is not None:
            return self.embedding_dim
        return max(2, min(16, round(1.6 * size**0.56)))

    @property
    def output_width(self) -> int:
        return (
            len(self._numeric)
            + len(self._indicator)
            + sum(self._width(len(self.columns[i]["vocabulary"]) + 1) for i in self._categorical)
        )

    def column_slots(self) -> list[list[int]]:
        """For each input column, in order, the positions of the output values that
        encode it: a numeric column's standardized value (and its missing-value
        indicator), a categorical column's one-hot slots or embedding."""
        slots: list[list[int]] = [[] for _ in self.columns]
        position = 0
        for i in self._numeric:
            slots[i].append(position)
            position += 1
        for i in self._indicator:
            slots[i].append(position)
            position += 1
        for i in self._categorical:
            width = self._width(len(self.columns[i]["vocabulary"]) + 1)
            slots[i].extend(range(position, position + width))
            position += width
        return slots

    def build(self, input_shape):
        width = input_shape[-1]
        if width is not None and width != len(self.columns):
            raise ValueError(
                f"TabularEncoding has {len(self.columns)} columns; its input has {width}"
            )
        if self._numeric:
            self.normalization.build((None, len(self._numeric)))
            self.normalization.adapt_mean.assign(self._means)
            self.normalization.adapt_variance.assign(self._variances)
        for encoder in self.encoders:
            encoder.build((None,))  # an Embedding creates its table here

    def call(self, inputs):
        x = ops.cast(inputs, "float32")
        parts = []
        if self._numeric:
            values = _columns(x, self._numeric)
            missing = ops.isnan(values)
            filled = ops.where(missing, ops.convert_to_tensor(self._means)[None, :], values)
            norm = self.normalization
            scale = ops.maximum(ops.sqrt(norm.adapt_variance), keras.backend.epsilon())
            parts.append((filled - norm.adapt_mean) / scale)
            if self._indicator:
                where = [self._numeric.index(i) for i in self._indicator]
                parts.append(ops.cast(_columns(missing, where), "float32"))
        for i, encoder in zip(self._categorical, self.encoders):
            parts.append(ops.cast(encoder(self._index(x[:, i], i)), "float32"))
        return parts[0] if len(parts) == 1 else ops.concatenate(parts, axis=-1)

    def _index(self, column, i: int):
        """Column `i`'s category index: 0 for missing or unknown, 1..k."""
        size = len(self.columns[i]["vocabulary"])
        if i in self._codes:
            # IntegerLookup's indices, by comparing each code with the vocabulary
            # (NaN equals nothing: index 0).
            codes = ops.convert_to_tensor(self._codes[i])
            hits = ops.cast(ops.equal(column[:, None], codes[None, :]), "float32")
            positions = ops.convert_to_tensor(np.arange(1, size + 1, dtype="float32"))
            return ops.cast(ops.sum(hits * positions[None, :], axis=-1), "int32")
        index = ops.where(ops.isnan(column), 0.0, column)
        return ops.cast(ops.clip(ops.floor(index), 0, size), "int32")

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.output_width)

    def get_config(self):
        config = super().get_config()
        config.pop("dtype", None)
        config["columns"] = [dict(c) for c in self.columns]
        config["categorical_encoding"] = self.categorical_encoding
        config["embedding_dim"] = self.embedding_dim
        return config


def _columns(x, indices: list[int]):
    """Columns `indices` of `x`, by slicing (a `take` becomes `aten::ravel` on PyTorch,
    which torch.onnx cannot export)."""
    runs, start = [], indices[0]
    for a, b in zip(indices, indices[1:] + [None]):
        if b != a + 1:  # contiguous runs are one slice each
            runs.append(x[:, start : a + 1])
            start = b
    return runs[0] if len(runs) == 1 else ops.concatenate(runs, axis=1)


def fit_columns(schema: Sequence[Mapping], matrix: np.ndarray) -> list[dict]:
    """The `TabularEncoding` columns of a schema, with each numeric column's mean and
    variance computed from the encoded training rows `matrix` (missing values ignored;
    a constant column gets variance 1) and an indicator where training rows had
    missing values.

    Args:
        schema: `[{"name", "kind", "vocabulary"?, "missing"?}, ...]` (a CSV dataset's
            `info["schema"]`).
        matrix: `(n, len(schema))` encoded rows (see `encode_rows`).

    Returns:
        The columns for `TabularEncoding` / the `tabular` preset's `columns`.
    """
    matrix = np.asarray(matrix, dtype="float64")
    out = []
    for j, spec in enumerate(schema):
        if spec["kind"] in CATEGORICAL_KINDS:
            out.append(
                {
                    "name": spec["name"],
                    "kind": spec["kind"],
                    "vocabulary": list(spec["vocabulary"]),
                }
            )
            continue
        values = matrix[:, j]
        present = values[~np.isnan(values)]
        mean = float(present.mean()) if len(present) else 0.0
        variance = float(present.var()) if len(present) > 1 else 1.0
        if not variance > 1e-12:
            variance = 1.0
        missing = bool(np.isnan(values).any()) or bool(spec.get("missing", 0))
        out.append(
            {
                "name": spec["name"],
                "kind": "numeric",
                "mean": mean,
                "variance": variance,
                "indicator": missing,
            }
        )
    return out


def columns_of(model: keras.Model) -> list[dict] | None:
    """The columns of a model's `TabularEncoding` layer (None if it has none)."""
    for layer in _compat.all_layers(model, include_self=False):
        if isinstance(layer, TabularEncoding):
            return [dict(c) for c in layer.columns]
    return None


def encode_rows(columns_or_model, rows) -> np.ndarray:
    """Raw rows -> the float32 matrix a `tabular` model takes.

    Args:
        columns_or_model: A model holding a `TabularEncoding` layer (e.g. loaded with
            `kbm.load_model`), or its columns.
        rows: `{column: values}` (lists of strings, numbers or None) or a list of
            `{column: value}` dicts. Missing values (None, NaN, "", "NA", ...) and
            unknown categories are allowed; extra columns are ignored.

    Returns:
        `(n, len(columns))` float32.

    Raises:
        DataError: A column the model needs is absent, or a numeric column holds text.
    """
    if isinstance(columns_or_model, keras.Model):
        columns = columns_of(columns_or_model)
        if columns is None:
            raise ValueError("`columns_or_model` has no TabularEncoding layer")
    else:
        columns = _check_columns(columns_or_model)
    if isinstance(rows, Mapping):
        table = {k: list(v) for k, v in rows.items()}
    elif isinstance(rows, Sequence) and all(isinstance(r, Mapping) for r in rows):
        table = {c["name"]: [r.get(c["name"]) for r in rows] for c in columns}
    else:
        raise TypeError(
            f"`rows` must be a dict of columns or a list of dicts. Received: {type(rows).__name__}"
        )
    absent = [c["name"] for c in columns if c["name"] not in table]
    if absent:
        raise DataError(f"rows lack the column(s) {absent} the model takes")
    lengths = {len(table[c["name"]]) for c in columns}
    if len(lengths) > 1:
        raise DataError(f"columns of different lengths: {sorted(lengths)}")
    n = lengths.pop()
    out = np.empty((n, len(columns)), dtype="float32")
    for j, spec in enumerate(columns):
        out[:, j] = encode_column(spec, table[spec["name"]])
    return out


def encode_column(spec: Mapping, cells: Sequence, where=None) -> np.ndarray:
    """One column's raw cells encoded (see `encode_rows`); `where(i)` names a row."""
    values = np.empty(len(cells), dtype="float32")
    if spec["kind"] == "categorical":
        index = {v: i + 1 for i, v in enumerate(spec["vocabulary"])}
        for i, cell in enumerate(cells):
            values[i] = 0 if is_missing(cell) else index.get(_text(cell), 0)
        return values
    integer = spec["kind"] == "integer_categorical"
    for i, cell in enumerate(cells):
        if is_missing(cell):
            values[i] = np.nan
            continue
        try:
            value = float(cell)
        except (TypeError, ValueError):
            value = None
        if (
            integer
            and value is not None
            and not (value.is_integer() and abs(value) <= MAX_INTEGER_CODE)
        ):
            value = None
        if value is None:
            at = where(i) if where else f"row {i}"
            what = (
                f"integer-coded categorical (integers within +-{MAX_INTEGER_CODE:,})"
                if integer
                else "numeric"
            )
            raise DataError(
                f"column '{printable(spec['name'])}' is {what} but holds "
                f"'{printable(str(cell)[:40])}' ({at})"
            )
        values[i] = value if math.isfinite(value) else np.nan
    return values


def _text(cell) -> str:
    if isinstance(cell, str):
        return cell.strip()
    if isinstance(cell, float) and cell.is_integer():
        return str(int(cell))
    return str(cell)


def encoded_view(model: keras.Model):
    """`(network, encode, groups)`: `model` seen from its `TabularEncoding`'s output.

    `network(encode(rows)) == model(rows)`: `encode` runs the model's own encoding
    (standardized numbers, indicators, one-hot slots or embeddings) and `network` is
    the rest of the model. Gradients reach every column this way, categorical ones
    included (seen from the raw rows, a category index is cast to an integer before
    its one-hot, and gets no gradient); `groups` lists, per column, the positions of
    the encoded values that belong to it, so that `kbm.explain.explain(...,
    feature_groups=groups)` sums a column's attributions into one bar. Integrated
    gradients from the all-zero baseline then explain against a row at the training
    means with no category. None if the model has no `TabularEncoding` as a layer of
    its own graph, or if the rest of the model also reads the raw rows.
    """
    encoding = next(
        (layer for layer in getattr(model, "layers", []) if isinstance(layer, TabularEncoding)),
        None,
    )
    if encoding is None:
        return None
    try:
        rest = keras.Model(encoding.output, model.output, name=f"{model.name}_network")
    except (ValueError, TypeError, AttributeError):  # the graph needs more than the encoding
        return None
    encoded = keras.Input((encoding.output_width,), name="encoded_columns")
    network = keras.Model(encoded, rest(encoded), name=model.name)

    def encode(rows):
        return np.asarray(ops.convert_to_numpy(encoding(np.asarray(rows, "float32"))))

    return network, encode, encoding.column_slots()


def standardized_view(model: keras.Model) -> tuple[keras.Model, np.ndarray, np.ndarray] | None:
    """`(wrapper, scale, offset)`: `model` seen from standardized rows, for explanations.

    `wrapper(z) == model(z * scale + offset)`: a numeric column's `z` is its
    standardized value (0 = the training mean), a categorical column's its category
    index (0 = missing or unknown). Integrated gradients from the all-zero baseline then
    explain against "an average row with unknown categories" and attribute in units that
    do not depend on a column's scale (on raw rows a column like a year, ~2000, gets all
    the importance). Use `to_standardized(rows)` for the wrapper's inputs. None if the
    model has no `TabularEncoding` layer.
    """
    columns = columns_of(model)
    if columns is None:
        return None
    scale = np.asarray(
        [math.sqrt(c["variance"]) if c["kind"] == "numeric" else 1.0 for c in columns], "float32"
    )
    offset = np.asarray([c["mean"] if c["kind"] == "numeric" else 0.0 for c in columns], "float32")
    inputs = keras.Input((len(columns),), name="standardized")
    raw = keras.layers.Rescaling(scale=scale, offset=offset, name="unstandardize")(inputs)
    wrapper = keras.Model(inputs, model(raw), name=model.name)
    return wrapper, scale, offset
