"""Object names that can become paths.

Keras stores a layer's assets (and, in a directory store, its weights) under a path
built from the names of the layers above it. A name holding a path separator, a
drive or `..` can point that path outside the archive or the extraction directory
(the mechanism of CVE-2026-12479, an arbitrary write through `DiskIOStore` paths).
Keras refuses `/` in a name it is given, but a config can spell any string, so the
loader's check refuses such names itself, and `save_model` never writes one.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["unsafe_name_reason"]

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_DRIVE = re.compile(r"^[A-Za-z]:")


def unsafe_name_reason(name: Any) -> str | None:
    """Why `name` cannot be an object name in a model file, or None if it can."""
    if not isinstance(name, str):
        return None  # Keras refuses non-string names itself, before any path is made
    if "/" in name or "\\" in name:
        return "holds a path separator"
    if name in (".", "..") or name.startswith(".."):
        return "is a relative path component"
    if _DRIVE.match(name):
        return "starts with a drive letter"
    if _CONTROL.search(name):
        return "holds a control character"
    return None
