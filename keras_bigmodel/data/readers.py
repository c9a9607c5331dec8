"""One reader per data format, found by `reader_for(path)`: no format is special-cased
anywhere else (a real folder called `digits` is a folder; the name `digits` with no such
file or folder is scikit-learn's bundled digits)."""

from __future__ import annotations

import os

from keras_bigmodel.data._text import printable
from keras_bigmodel.data.dataset import Dataset
from keras_bigmodel.data.errors import DataError, DataNotFoundError
from keras_bigmodel.data.options import LoadOptions

__all__ = ["READERS", "Reader", "reader_for", "register_reader"]


class Reader:
    """A data format: which paths it reads, and how.

    Subclasses set `format` (the `Dataset.format` they produce), `kind` (what a model
    must take: `"image"`, `"table"` or `"array"`) and implement `claims` and `read`.
    """

    format: str = ""
    kind: str = "array"
    extensions: tuple[str, ...] = ()

    def claims(self, path: str) -> bool:
        """Whether this reader reads `path` (by default: an existing file with one of
        `extensions`)."""
        return os.path.isfile(path) and path.lower().endswith(self.extensions)

    def read(self, path: str, options: LoadOptions, known) -> Dataset:  # pragma: no cover
        raise NotImplementedError


READERS: list[Reader] = []


def register_reader(reader: Reader) -> Reader:
    """Adds a reader (the first that claims a path reads it)."""
    if not isinstance(reader, Reader):
        raise TypeError(f"`reader` must be a Reader. Received: {reader!r}")
    READERS.append(reader)
    return reader


def reader_for(path: str) -> Reader:
    """The reader of `path`, or a `DataError` saying what can be read."""
    for reader in READERS:
        if reader.claims(path):
            return reader
    if not os.path.lexists(path):
        raise DataNotFoundError(f"No such file or folder: {printable(path)}")
    if os.path.islink(path) and not os.path.exists(path):
        raise DataError(f"{printable(path)} is a dangling symbolic link")
    ext = os.path.splitext(path)[1].lower()
    known = ", ".join(sorted({e for r in READERS for e in r.extensions}))
    if os.path.exists(path) and not (os.path.isfile(path) or os.path.isdir(path)):
        raise DataError(f"{printable(path)} is not a regular file or a folder; refused")
    raise DataError(
        f"{printable(path)}: unknown kind of data file '{ext or path}'; give a folder of "
        f"images (one sub-folder per class), a file ending in {known}, or 'digits'"
    )
