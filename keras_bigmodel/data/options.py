"""`LoadOptions`: every option of `keras_bigmodel.data.load`, typed and checked once.

The command line builds one from its arguments (`LoadOptions(...)`); the library never
sees an argparse namespace. `load(path, options)` or `load(path, **fields)` alike.
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "BAD_IMAGES",
    "COLOR_MODES",
    "DEFAULT_LABEL_COLUMN",
    "DEFAULT_MAX_IMAGE_PIXELS",
    "DEFAULT_MEMORY_LIMIT",
    "DIGITS_SUBSETS",
    "MISSING",
    "MISSING_LABELS",
    "PIXELS",
    "LoadOptions",
]

COLOR_MODES = ("grayscale", "rgb")
BAD_IMAGES = ("refuse", "skip")
MISSING = ("impute", "drop", "error")
MISSING_LABELS = ("error", "unlabelled")
PIXELS = ("unit", "raw")
DIGITS_SUBSETS = ("all", "train", "test")
DEFAULT_MEMORY_LIMIT = 1 << 30  # bytes a reader may allocate for features
DEFAULT_MAX_IMAGE_PIXELS = 1 << 24  # 16.8 million pixels (4096 x 4096)
DEFAULT_MAX_FILES = 1_000_000  # entries a folder walk visits
DEFAULT_MAX_DEPTH = 32  # folder levels a walk descends
DEFAULT_LABEL_COLUMN = "label"


def _names(field: str, value) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, Sequence) or not all(isinstance(v, str) for v in value):
        raise TypeError(f"`{field}` must be a list of column names. Received: {field}={value!r}")
    return tuple(value)


def _count(field: str, value, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"`{field}` must be an integer >= {minimum}. Received: {field}={value!r}")
    return int(value)


def _choice(field: str, value, allowed) -> str:
    if value not in allowed:
        raise ValueError(f"`{field}` must be one of {list(allowed)}. Received: {field}={value!r}")
    return value


@dataclasses.dataclass(frozen=True)
class LoadOptions:
    """How `load()` reads data (every field has a default).

    Attributes:
        label_columns: CSV: the label column(s), one per task (default `"label"`).
        feature_columns: CSV: the feature columns, in order (default: every other one).
        drop_columns: CSV: columns to leave out (ids, free text, leaks).
        id_column: CSV: a column whose values identify the rows (in predictions.csv);
            it is never a feature.
        categorical_columns: CSV: feature columns to read as categorical although their
            values are numbers: integer codes (a grade 1..5, a year, a zip code), looked
            up in the model like `keras.layers.IntegerLookup` (`kind
            "integer_categorical"`). String columns are categorical without it. Used
            when no `schema` is given (a trained model's schema decides).
        missing: CSV: a missing feature value is `"impute"`d (default: kept as NaN or
            the unknown category, which the `tabular` preset imputes inside the model,
            with an indicator), or its row is `"drop"`ped, or it is an `"error"`.
        schema: CSV: a trained model's column schema (`kind`, `vocabulary` of each
            column, see `keras_bigmodel.data.tabular`): new data is encoded the same way.
        class_names: The classes a model knows (`{task: names}` or one list).
        image_size: Images: `(height, width)` to resize to (default: no resizing).
        own_sizes: Images: without `image_size`, keep each image at its own size
            (for a model that resizes inside, `ImagePreprocessing`): a folder of
            images of different sizes is read, `input_shape()` is `(None, None, C)`
            and a batch takes images of one size (`Dataset.size_groups()`).
        pixels: Images: `"unit"` (default: float32 in [0, 1]) or `"raw"` (the
            values 0..255, for a model that rescales them inside).
        color_mode: Images: `"grayscale"` or `"rgb"` (default: grayscale if all are).
        bad_images: Images: `"refuse"` an unreadable image, or `"skip"` it.
        memory_limit: Bytes a reader may allocate for features (decoded images, `.npz`
            members, a CSV's cells); larger image folders stream from disk, larger
            arrays are refused before anything is allocated. 0 always streams images.
        max_image_pixels: Images: the most pixels one image may declare (checked on
            its header, before decoding).
        max_files: Folders: the most entries a walk visits.
        max_depth: Folders: the most levels a walk descends.
        subset: `"digits"`: `"all"`, `"train"` or `"test"`.
        require_labels: Refuse unlabelled data.
        missing_labels: CSV: an absent label column is an `"error"` or means
            `"unlabelled"` data (new rows to predict).
        seed: `"digits"`: the split's seed.
        verbose: 1 shows a progress bar while images are decoded.
    """

    label_columns: tuple[str, ...] | None = None
    feature_columns: tuple[str, ...] | None = None
    drop_columns: tuple[str, ...] = ()
    id_column: str | None = None
    categorical_columns: tuple[str, ...] = ()
    missing: str = "impute"
    schema: Sequence[Mapping[str, Any]] | None = None
    class_names: Mapping[str, Sequence[str]] | Sequence[str] | None = None
    image_size: tuple[int, int] | None = None
    own_sizes: bool = False
    pixels: str = "unit"
    color_mode: str | None = None
    bad_images: str = "refuse"
    memory_limit: int = DEFAULT_MEMORY_LIMIT
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS
    max_files: int = DEFAULT_MAX_FILES
    max_depth: int = DEFAULT_MAX_DEPTH
    subset: str = "all"
    require_labels: bool = False
    missing_labels: str = "error"
    seed: int = 0
    verbose: int = 0

    def __post_init__(self):
        put = object.__setattr__
        put(self, "label_columns", _names("label_columns", self.label_columns))
        put(self, "feature_columns", _names("feature_columns", self.feature_columns))
        put(self, "drop_columns", _names("drop_columns", self.drop_columns) or ())
        put(
            self,
            "categorical_columns",
            _names("categorical_columns", self.categorical_columns) or (),
        )
        if self.id_column is not None and not isinstance(self.id_column, str):
            raise TypeError(f"`id_column` must be a column name. Received: {self.id_column!r}")
        _choice("missing", self.missing, MISSING)
        _choice("missing_labels", self.missing_labels, MISSING_LABELS)
        _choice("bad_images", self.bad_images, BAD_IMAGES)
        _choice("subset", self.subset, DIGITS_SUBSETS)
        _choice("pixels", self.pixels, PIXELS)
        if not isinstance(self.own_sizes, bool):
            raise TypeError(f"`own_sizes` must be a bool. Received: own_sizes={self.own_sizes!r}")
        if self.color_mode is not None:
            _choice("color_mode", self.color_mode, COLOR_MODES)
        if self.image_size is not None:
            size = self.image_size
            if (
                not isinstance(size, (tuple, list))
                or len(size) != 2
                or not all(
                    isinstance(d, numbers.Integral) and not isinstance(d, bool) and d > 0
                    for d in size
                )
            ):
                raise ValueError(
                    f"`image_size` must be (height, width), two positive integers. "
                    f"Received: {size!r}"
                )
            put(self, "image_size", (int(size[0]), int(size[1])))
        put(self, "memory_limit", _count("memory_limit", self.memory_limit))
        put(self, "max_image_pixels", _count("max_image_pixels", self.max_image_pixels, 1))
        put(self, "max_files", _count("max_files", self.max_files, 1))
        put(self, "max_depth", _count("max_depth", self.max_depth, 1))
        put(self, "seed", _count("seed", self.seed))
        put(self, "verbose", _count("verbose", self.verbose))
        if not isinstance(self.require_labels, bool):
            raise TypeError(f"`require_labels` must be a bool. Received: {self.require_labels!r}")

    def replace(self, **changes) -> LoadOptions:
        """A copy with some fields changed (checked again)."""
        return dataclasses.replace(self, **changes)
