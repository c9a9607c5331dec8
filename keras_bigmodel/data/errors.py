"""The errors of `keras_bigmodel.data`: every reader failure is a `DataError`."""

from __future__ import annotations

__all__ = ["ClassMismatchError", "DataError", "DataNotFoundError"]


class DataError(ValueError):
    """Data that cannot be used as given; the message says what is wrong and where."""


class ClassMismatchError(DataError):
    """A label of the data is not one of the classes a model knows."""


class DataNotFoundError(DataError, FileNotFoundError):
    """No such file or folder (also a `FileNotFoundError`)."""
