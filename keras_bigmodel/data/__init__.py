"""Users' data for training, evaluation, prediction and explanation, on every backend.

`load(path, options)` finds the reader of `path` (`keras_bigmodel.data.readers`) and
reads it into a `Dataset` (`keras_bigmodel.data.dataset`):

- a folder with one sub-folder per class: images (`.png`, `.jpg`, `.jpeg`, `.bmp`,
  `.gif`); the sub-folders' names are the class names. A folder of images without
  sub-folders is unlabelled data (for predictions) -- `images.py`; a model with an
  `ImagePreprocessing` front (`image_preprocessing.py`) resizes and rescales raw images
  itself, and `load(path, own_sizes=True, pixels="raw")` reads them for it;
- `.npz`: arrays by name: `x` (or `x_<input>`), `y` (or `y_<task>`), and optionally
  `class_names` (or `class_names_<task>`) as string arrays; `.npy`: one array of
  features (unlabelled; memory-mapped) -- `arrays.py`;
- `.csv`: a header row, feature columns of numbers or strings (missing values
  allowed), one label column per task -- `table.py`; the `tabular` preset encodes
  such rows inside the model (`tabular.py`);
- `"digits"`: scikit-learn's bundled 8x8 digits (offline), when no file or folder of
  that name exists -- `digits.py`.

Options are one typed, checked `LoadOptions` (the command line builds it once from its
arguments); `load(path, label_columns=[...])` builds it from keywords too.

The readers never follow a link out of the data folder, open only regular files, walk
folders within bounds, check declared sizes against `memory_limit` before allocating,
and turn every failure into a `DataError` (a `ValueError`) with one line saying what is
wrong and where (see `safety.py` and docs/data.md).

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
"""

from __future__ import annotations

import json
import os

# Importing the reader modules registers them (no two claim the same path).
from keras_bigmodel.data import (  # noqa: F401
    arrays,
    digits,
    image_preprocessing,
    images,
    table,
    tabular,
)
from keras_bigmodel.data._text import known_names, shown, shown_ends
from keras_bigmodel.data.dataset import UNNAMED, Batches, Dataset
from keras_bigmodel.data.digits import Digits, load_digits
from keras_bigmodel.data.errors import ClassMismatchError, DataError, DataNotFoundError
from keras_bigmodel.data.image_preprocessing import ImagePreprocessing
from keras_bigmodel.data.images import IMAGE_EXTENSIONS
from keras_bigmodel.data.options import (
    BAD_IMAGES,
    COLOR_MODES,
    DEFAULT_LABEL_COLUMN,
    DEFAULT_MAX_IMAGE_PIXELS,
    DEFAULT_MEMORY_LIMIT,
    MISSING,
    PIXELS,
    LoadOptions,
)
from keras_bigmodel.data.readers import READERS, Reader, reader_for, register_reader
from keras_bigmodel.data.tabular import TabularEncoding, encode_rows

__all__ = [
    "BAD_IMAGES",
    "COLOR_MODES",
    "DATA_FILE",
    "DEFAULT_LABEL_COLUMN",
    "DEFAULT_MAX_IMAGE_PIXELS",
    "DEFAULT_MEMORY_LIMIT",
    "FORMATS",
    "IMAGE_EXTENSIONS",
    "MISSING",
    "PIXELS",
    "READERS",
    "UNNAMED",
    "Batches",
    "ClassMismatchError",
    "DataError",
    "DataNotFoundError",
    "Dataset",
    "Digits",
    "ImagePreprocessing",
    "LoadOptions",
    "Reader",
    "RecordError",
    "TabularEncoding",
    "encode_rows",
    "kind_of_path",
    "load",
    "load_digits",
    "read_record",
    "reader_for",
    "register_reader",
    "shown",
    "shown_ends",
    "write_record",
]

FORMATS = ("images", "npz", "npy", "csv", "digits")  # the formats of READERS
DATA_FILE = "data.json"  # what a trained preset directory records about its data
_MAX_RECORD = 1 << 20


def load(path: str | os.PathLike, options: LoadOptions | None = None, **fields) -> Dataset:
    """Reads users' data (see the module docstring for the formats).

    Args:
        path: A folder of images, a `.npz`, `.npy` or `.csv` file, or `"digits"`.
        options: A `LoadOptions`; or give its fields as keywords (not both).
        **fields: `LoadOptions` fields (`label_columns`, `feature_columns`,
            `drop_columns`, `id_column`, `categorical_columns`, `missing`, `schema`,
            `class_names`, `image_size`, `own_sizes`, `pixels`, `color_mode`,
            `bad_images`, `memory_limit`,
            `max_image_pixels`, `subset`, `require_labels`, `missing_labels`, ...).

    Returns:
        A `Dataset`.

    Raises:
        DataError: Data that cannot be used (the message says why and where), also for
            an exhausted memory budget; `DataNotFoundError` (also a
            `FileNotFoundError`) when there is no such file or folder.
        ValueError / TypeError: Bad options.

    Example:

    ```python
    ds = load("penguins.csv", label_columns=["species"], drop_columns=["year"])
    ds.class_names          # {'species': ['Adelie', 'Chinstrap', 'Gentoo']}
    ```
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"`path` must be a str or os.PathLike. Received: path={path!r}")
    if options is not None and fields:
        raise TypeError("Give `options` or keyword fields, not both")
    if options is None:
        options = LoadOptions(**fields)
    elif not isinstance(options, LoadOptions):
        raise TypeError(f"`options` must be a LoadOptions. Received: {options!r}")
    path = os.fspath(path)
    known = known_names(options.class_names)
    reader = reader_for(path)
    try:
        dataset = reader.read(path, options, known)
    except MemoryError:
        raise DataError(
            f"{path}: out of memory while reading it; lower memory_limit or use less data"
        ) from None
    except RecursionError:
        raise DataError(f"{path}: nested too deeply to read") from None
    if options.require_labels and not dataset.labelled:
        raise DataError(f"{path} holds no labels; {_how_to_label(dataset)}")
    return dataset


def kind_of_path(path: str) -> str | None:
    """What a path holds, without reading it: `"image"`, `"table"` or `"array"` (None
    if no reader claims it). For commands that check data against a model first."""
    for reader in READERS:
        if reader.claims(path):
            return reader.kind
    return None


def _how_to_label(dataset: Dataset) -> str:
    if dataset.format == "csv":
        return (
            f"name the label column with --label-column (label_columns=); there is no "
            f"'{DEFAULT_LABEL_COLUMN}' column among: {shown_ends(dataset.info['columns'])}"
        )
    return {
        "images": "put the images in one sub-folder per class (e.g. cats/, dogs/)",
        "npy": "a .npy holds features only: save features and labels together in a .npz "
        "(np.savez(path, x=features, y=labels))",
        "npz": "add the labels as 'y' (or 'y_<task>' for each task)",
    }.get(dataset.format, "labels are needed here")


# --------------------------------------------------------------------- data.json
_PRESET_FILE = "preset.json"  # zoo.preset_dir.PRESET_FILE (keras_bigmodel never imports zoo)
HASH_FIELD = "data_sha256"


def _sha256(raw: bytes) -> str:
    import hashlib

    return hashlib.sha256(raw).hexdigest()


def _preset_json(directory: str) -> tuple[str, dict | None]:
    from keras_bigmodel import fileio

    path = os.path.join(directory, _PRESET_FILE)
    if not os.path.lexists(path):
        return path, None
    try:
        metadata = json.loads(fileio.read_bounded(path, 64 * _MAX_RECORD).decode("utf-8"))
    except (fileio.UnsafePathError, UnicodeDecodeError, ValueError, RecursionError) as e:
        raise RecordError(f"{path} cannot be read: {e}") from None
    return path, metadata if isinstance(metadata, dict) else None


def write_record(directory: str, record: dict) -> str:
    """Writes a trained model's data description, `DATA_FILE` in its preset directory
    (atomically, replacing rather than following a link), and records its SHA-256 in
    the directory's preset.json (`data_sha256`), so that `read_record` and `verify`
    detect a data.json edited afterwards. Returns the path of data.json."""
    from keras_bigmodel import fileio

    path = fileio.write_json_atomic(os.path.join(directory, DATA_FILE), record, sort_keys=True)
    preset_path, metadata = _preset_json(directory)
    if metadata is not None:
        metadata[HASH_FIELD] = _sha256(fileio.read_bounded(path, _MAX_RECORD))
        fileio.write_json_atomic(preset_path, metadata, sort_keys=True)
    return path


class RecordError(DataError):
    """A data.json that is not what `write_record` writes."""


def _strings(value) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _integers(value) -> bool:
    return isinstance(value, list) and all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    )


def _bad_field(path: str, field: str, expected: str, value) -> RecordError:
    text = repr(value)
    text = text if len(text) <= 80 else text[:77] + "..."
    return RecordError(f"{path}: field {field!r} must be {expected}. Received: {text}")


def read_record(directory: str) -> dict | None:
    """The data description of a trained preset directory (`DATA_FILE`), every field
    checked (the directory is untrusted input), or None when it has none.

    This is what evaluate, predict, explain and quantize use to read new data the way
    the model was trained: `class_names`, `label_columns`, `feature_columns`,
    `schema` (CSV columns' kinds and vocabularies), `image_size`, `color_mode`, ...

    Raises:
        RecordError: A field of the wrong type, invalid JSON, a link or not a regular
            file.
    """
    from keras_bigmodel import fileio

    path = os.path.join(directory, DATA_FILE)
    if not os.path.lexists(path):
        return None
    try:
        raw = fileio.read_bounded(path, _MAX_RECORD, follow_symlinks=False)
    except fileio.UnsafePathError as e:
        raise RecordError(f"{path}: {e.strerror}") from None
    _, metadata = _preset_json(directory)
    expected = (metadata or {}).get(HASH_FIELD)
    if expected is not None and expected != _sha256(raw):
        raise RecordError(
            f"{path} does not match the SHA-256 recorded in {_PRESET_FILE} (edited after "
            f"training?); refused"
        )
    try:
        record = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise RecordError(f"{path} is not valid JSON: {e}") from None
    if not isinstance(record, dict):
        raise RecordError(f"{path} must hold a JSON object")
    names = record.get("class_names", {})
    if not isinstance(names, dict) or not all(_strings(v) for v in names.values()):
        raise _bad_field(path, "class_names", "an object of lists of strings", names)
    from keras_bigmodel.data._text import check_class_name

    for task, values in names.items():
        for value in values:
            check_class_name(value, f"{path} class_names['{task}']")
    for field in ("feature_columns", "label_columns"):
        if field in record and not _strings(record[field]):
            raise _bad_field(path, field, "a list of strings", record[field])
    if "id_column" in record and not isinstance(record["id_column"], str):
        raise _bad_field(path, "id_column", "a string", record["id_column"])
    schema = record.get("schema")
    if schema is not None:
        ok = isinstance(schema, list) and all(
            isinstance(c, dict)
            and isinstance(c.get("name"), str)
            and c.get("kind") in tabular.KINDS
            and (
                c["kind"] == "numeric"
                or (c["kind"] == "categorical" and _strings(c.get("vocabulary")))
                or (c["kind"] == "integer_categorical" and _integers(c.get("vocabulary")))
            )
            for c in schema
        )
        if not ok:
            raise _bad_field(path, "schema", "a list of column specs", schema)
    size = record.get("image_size")
    if size is not None and not (
        isinstance(size, list)
        and len(size) == 2
        and all(isinstance(d, int) and not isinstance(d, bool) and 0 < d <= 65536 for d in size)
    ):
        raise _bad_field(path, "image_size", "[height, width]", size)
    if record.get("color_mode") not in (None, *COLOR_MODES):
        raise _bad_field(
            path, "color_mode", f"one of {list(COLOR_MODES)}", record.get("color_mode")
        )
    if not isinstance(record.get("resized", False), bool):
        raise _bad_field(path, "resized", "true or false", record.get("resized"))
    if record.get("scale") not in (None, "1", "1/255"):
        raise _bad_field(path, "scale", "'1' or '1/255'", record.get("scale"))
    return record
