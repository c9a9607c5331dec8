"""The conditions every Keras call on a checked file runs under.

`loading_guard` forces Keras's safe mode for its duration (whatever
`keras.config.enable_unsafe_deserialization()` said before; the previous setting is
restored afterwards) and blocks the import of any module that the file names, or that
Keras's deserializer imports by name (`keras_hub`, `keras_cv`, `keras_nlp`), if it is
not imported already. The checks of `config_check` refuse such files before Keras
sees them; the guard is the second line, so that a gap in the checks still cannot
make loading run a file found on `sys.path`.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import sys
import threading
from collections.abc import Iterable, Iterator

from keras_bigmodel import _compat
from keras_bigmodel.security.errors import UnsafeModelError
from keras_bigmodel.security.resolve import IMPORTING_PACKAGES

__all__ = ["ImportBlocker", "loading_guard"]


class ImportBlocker(importlib.abc.MetaPathFinder):
    """Refuses to import the named modules (and their packages) while installed.

    Attributes:
        refused: The module names an import was refused for.
    """

    def __init__(self, names: Iterable[str], where: str):
        self._names = frozenset(names)
        self._where = where
        self._thread = threading.get_ident()
        self.refused: list[str] = []

    def find_spec(self, fullname, path=None, target=None):
        if (
            fullname in self._names
            and fullname not in sys.modules
            and threading.get_ident() == self._thread
        ):
            self.refused.append(fullname)
            raise UnsafeModelError(
                f"{self._where}: loading tried to import the module {fullname!r}, which is "
                f"not imported; refused (it would run whatever file of that name is first "
                f"on sys.path)"
            )
        return None


def _blocked_names(modules: Iterable[str]) -> set[str]:
    names = {p for p in IMPORTING_PACKAGES if p not in sys.modules}
    for module in modules:
        if not isinstance(module, str) or not module:
            continue
        parts = module.split(".")
        for i in range(1, len(parts) + 1):
            name = ".".join(parts[:i])
            if name not in sys.modules:
                names.add(name)
    return names


@contextlib.contextmanager
def loading_guard(modules: Iterable[str], where: str) -> Iterator[ImportBlocker]:
    """Safe mode on, and no import of `modules` (or Keras's importable packages) that
    are not imported yet, for the duration.

    Args:
        modules: The module names the file's config mentions.
        where: How to name the file in errors.

    Yields:
        The installed `ImportBlocker` (its `refused` list says whether it fired).

    Example:

    ```python
    with loading_guard(findings.modules, "model.keras") as blocker:
        model = keras_loader(...)
    ```
    """
    blocker = ImportBlocker(_blocked_names(modules), where)
    sys.meta_path.insert(0, blocker)
    try:
        with _compat.safe_mode_scope(True):
            yield blocker
    finally:
        for i, finder in enumerate(sys.meta_path):
            if finder is blocker:
                del sys.meta_path[i]
                break
