"""The errors a refused or broken model file raises (both are `ValueError`s)."""

from __future__ import annotations

__all__ = ["ModelFileError", "ModelTooLargeError", "UnsafeModelError"]


class ModelFileError(ValueError):
    """A model file is missing its parts, corrupt, or not a Keras model archive."""


class UnsafeModelError(ModelFileError):
    """A model file was refused because loading it could import or run code, read
    other files, or exhaust memory, CPU or disk. Nothing in it was executed."""


class ModelTooLargeError(UnsafeModelError):
    """A model file declares more than a loading limit allows (see `LoadLimits`).

    Attributes:
        limit: The name of the limit, e.g. `"max_params"`.
        allowed: Its value.
        found: What the file declares (at least; counting stops at the limit).
    """

    def __init__(self, message: str, limit: str, allowed: int, found: int):
        super().__init__(message)
        self.limit = limit
        self.allowed = allowed
        self.found = found
