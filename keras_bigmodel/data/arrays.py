"""`.npz` archives (features, labels and class names by name) and `.npy` feature files.

Bounded before anything is allocated: each `.npz` member's declared shape and dtype
(its `.npy` header) and its uncompressed size (the zip directory) are checked against
`memory_limit`, and a member whose header and size disagree is refused; a `.npy` is
memory-mapped, its declared size checked against the file's, and one row must fit in
`memory_limit` (it is read a batch at a time)."""

from __future__ import annotations

import zipfile

import numpy as np

from keras_bigmodel.data import safety
from keras_bigmodel.data._text import names_for, printable
from keras_bigmodel.data.dataset import (
    UNNAMED,
    Dataset,
    _ArrayFeatures,
    _check_finite,
    _labels_from_array,
)
from keras_bigmodel.data.errors import DataError
from keras_bigmodel.data.options import DEFAULT_LABEL_COLUMN, LoadOptions
from keras_bigmodel.data.readers import Reader, register_reader

__all__ = ["NpyReader", "NpzReader"]

_MAX_MEMBERS = 4096


def _declared_bytes(header_file) -> tuple[tuple, np.dtype, int]:
    """(shape, dtype, bytes) from an `.npy` header, without reading the data."""
    version = np.lib.format.read_magic(header_file)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(header_file)
    elif version in ((2, 0), (3, 0)):
        shape, _, dtype = np.lib.format.read_array_header_2_0(header_file)
    else:  # pragma: no cover (numpy refuses other versions in read_magic)
        raise ValueError(f"unknown .npy version {version}")
    count = 1
    for d in shape:
        count *= int(d)
    return shape, dtype, count * dtype.itemsize


def _too_large(path: str, what: str, nbytes: int, limit: int) -> DataError:
    return DataError(
        f"{printable(path)}: {what} needs {nbytes:,} bytes, over the memory limit of "
        f"{limit:,} bytes (memory_limit); refused before reading it"
    )


def _read_npz(path: str, options: LoadOptions) -> dict[str, np.ndarray]:
    limit = options.memory_limit or DEFAULT_ARRAY_LIMIT
    with safety.open_data_file(path) as f:
        try:
            archive = zipfile.ZipFile(f)
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
            raise DataError(f"{printable(path)} is not a readable .npz archive ({e})") from None
        with archive:
            members = archive.infolist()
            if len(members) > _MAX_MEMBERS:
                raise DataError(f"{printable(path)} holds {len(members):,} arrays; refused")
            total = 0
            for info in members:
                if not info.filename.endswith(".npy"):
                    raise DataError(
                        f"{printable(path)} holds {printable(info.filename)!r}, which is not "
                        f"an array (.npy); not an .npz of arrays"
                    )
                try:
                    with archive.open(info) as member:
                        shape, dtype, declared = _declared_bytes(member)
                except ValueError as e:
                    raise DataError(f"{printable(path)}: {e}; save plain numeric arrays") from None
                except Exception as e:  # zip errors (BadZipFile, bad CRC, ...)
                    raise DataError(
                        f"{printable(path)} is not a readable .npz archive ({e})"
                    ) from None
                name = info.filename[:-4]
                if dtype.hasobject:
                    raise DataError(
                        f"{printable(path)}: array {name!r} holds Python objects, which need "
                        f"pickle (refused); save plain numeric arrays"
                    )
                if info.file_size > declared + 65536 + 4096:
                    raise DataError(
                        f"{printable(path)}: array {name!r} declares shape {shape} "
                        f"({declared:,} bytes) but inflates to {info.file_size:,}; refused"
                    )
                total += max(declared, info.file_size)
                if total > limit:
                    raise _too_large(path, f"array {name!r} of shape {shape}", total, limit)
        f.seek(0)
        try:
            with np.load(f, allow_pickle=False) as npz:
                return {k: npz[k] for k in npz.files}
        except ValueError as e:  # object arrays need pickle, which is refused
            raise DataError(f"{printable(path)}: {e}; save plain numeric arrays") from None
        except Exception as e:  # zip errors (BadZipFile, ...), truncated data
            raise DataError(f"{printable(path)} is not a readable .npz archive ({e})") from None


DEFAULT_ARRAY_LIMIT = 1 << 30  # memory_limit=0 means "always stream images", not "no arrays"


class NpzReader(Reader):
    """`.npz`: `x` (or `x_<input>`), `y` (or `y_<task>`), `class_names[_<task>]`."""

    format = "npz"
    kind = "array"
    extensions = (".npz",)

    def read(self, path: str, options: LoadOptions, known) -> Dataset:
        arrays = _read_npz(path, options)
        shown_path = printable(path)
        xs = {k: v for k, v in arrays.items() if k == "x" or k.startswith("x_")}
        ys = {k: v for k, v in arrays.items() if k == "y" or k.startswith("y_")}
        names = {
            k: v for k, v in arrays.items() if k == "class_names" or k.startswith("class_names_")
        }
        other = sorted(set(arrays) - set(xs) - set(ys) - set(names))
        if other:
            raise DataError(
                f"{shown_path} holds arrays {other} that are neither features ('x' or "
                f"'x_<input>'), labels ('y' or 'y_<task>') nor class names "
                f"('class_names[_<task>]')"
            )
        if not xs:
            raise DataError(
                f"{shown_path} holds no features: name them 'x' (or 'x_<input>' per model "
                f"input); it holds {sorted(arrays)}"
            )
        if "x" in xs and len(xs) > 1:
            raise DataError(
                f"{shown_path} holds both 'x' and {sorted(set(xs) - {'x'})}; use one form"
            )
        if "y" in ys and len(ys) > 1:
            raise DataError(
                f"{shown_path} holds both 'y' and {sorted(set(ys) - {'y'})}; use one form"
            )
        features = {}
        for key, array in xs.items():
            input_name = UNNAMED if key == "x" else key[2:]
            if array.ndim < 2:
                raise DataError(
                    f"{shown_path}: features '{key}' must have one row per example and at "
                    f"least one feature (shape (n, ...)); it has shape {array.shape}"
                )
            if array.dtype.kind not in "biuf":
                raise DataError(
                    f"{shown_path}: features '{key}' must be numbers; they are {array.dtype}"
                )
            _check_finite(f"'{key}'", array)
            features[input_name] = array.astype("float32") if array.dtype == "float64" else array
        lengths = {k: len(v) for k, v in {**xs, **ys}.items()}
        if len(set(lengths.values())) > 1:
            shown = ", ".join(f"{k} has {n:,}" for k, n in lengths.items())
            raise DataError(f"{shown_path}: mismatched lengths: {shown} rows")
        labels, class_names, names_from = {}, {}, {}
        tasks = [DEFAULT_LABEL_COLUMN if k == "y" else k[2:] for k in ys]
        for key, task in zip(ys, tasks):
            names_key = "class_names" if key == "y" else f"class_names_{task}"
            given = None
            if names_key in names:
                raw = np.asarray(names[names_key]).reshape(-1)
                if raw.dtype.kind not in "US":
                    raise DataError(f"{shown_path}: '{names_key}' must be an array of strings")
                given = [str(n) for n in raw]
            labels[task], class_names[task], names_from[task] = _labels_from_array(
                f"'{key}'", ys[key], given, names_for(known, task, tasks)
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


class NpyReader(Reader):
    """`.npy`: one array of features (unlabelled), memory-mapped."""

    format = "npy"
    kind = "array"
    extensions = (".npy",)

    def read(self, path: str, options: LoadOptions, known) -> Dataset:
        shown_path = printable(path)
        limit = options.memory_limit or DEFAULT_ARRAY_LIMIT
        with safety.open_data_file(path) as f:  # a regular file (not a FIFO, device, ...)
            try:
                shape, dtype, declared = _declared_bytes(f)
            except ValueError as e:
                raise DataError(f"{shown_path}: {e}; save a plain numeric array") from None
            header_end = f.tell()
            f.seek(0, 2)
            size = f.tell()
        if dtype.hasobject:
            raise DataError(f"{shown_path} holds Python objects (pickle is refused)")
        if size - header_end < declared:
            raise DataError(
                f"{shown_path} declares shape {shape} ({declared:,} bytes) but holds "
                f"{size - header_end:,}; it is truncated"
            )
        if len(shape) >= 2 and shape[0]:
            row = declared // shape[0] * 4 // max(1, dtype.itemsize)  # as float32
            if row > limit:
                raise _too_large(path, f"one row of shape {tuple(shape[1:])}", row, limit)
        try:
            array = np.load(path, mmap_mode="r", allow_pickle=False)
        except ValueError as e:
            raise DataError(f"{shown_path}: {e}; save a plain numeric array") from None
        except (OSError, EOFError) as e:
            raise DataError(f"{shown_path} is not a readable .npy file ({e})") from None
        if array.ndim < 2:
            raise DataError(
                f"{shown_path}: features must have one row per example (shape (n, ...)); the "
                f"array has shape {array.shape}"
            )
        if array.dtype.kind not in "biuf":
            raise DataError(f"{shown_path}: features must be numbers; they are {array.dtype}")
        _check_finite("the array", array)
        return Dataset(
            path,
            "npy",
            _ArrayFeatures({UNNAMED: array}, in_memory=False),
            ids=[f"row {i}" for i in range(len(array))],
        )


register_reader(NpzReader())
register_reader(NpyReader())
