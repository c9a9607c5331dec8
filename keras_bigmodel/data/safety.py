"""How the readers touch the file system: nothing outside the data root, regular files
only, bounded walks (private to `keras_bigmodel.data`, documented in docs/data.md).

- A symbolic link is followed only when it resolves inside the data root; one that
  points outside is refused with a `DataError` naming the entry. Linked folders are not
  descended into (a `a -> .` loop cannot hang a walk), and counted as ignored.
- Files are opened with `keras_bigmodel.fileio.open_regular`: a FIFO, a device or a
  directory is refused before any byte is read (a FIFO cannot block the reader).
- A walk visits at most `max_files` entries and descends at most `max_depth` levels.
"""

from __future__ import annotations

import os

from keras_bigmodel import fileio
from keras_bigmodel.data._text import printable
from keras_bigmodel.data.errors import DataError

__all__ = ["inside", "open_data_file", "scan", "walk_files"]


def inside(root: str, path: str) -> bool:
    """Whether `path`, links resolved, lies inside `root` (links resolved)."""
    real_root = os.path.realpath(root)
    real = os.path.realpath(path)
    return real == real_root or real.startswith(real_root.rstrip(os.sep) + os.sep)


def _refuse_outside(root: str, path: str) -> None:
    if not inside(root, path):
        target = printable(os.path.realpath(path))
        raise DataError(
            f"{printable(path)} is a symbolic link to {target}, outside the data folder "
            f"{printable(root)}; refused (copy the file into the folder instead)"
        )


def open_data_file(path: str, root: str | None = None):
    """A regular file opened for binary reading; a link only when it stays in `root`
    (`root` None: the file itself is the data, and a link to a regular file is fine)."""
    if root is not None and os.path.islink(path):
        _refuse_outside(root, path)
    try:
        return fileio.open_regular(path, follow_symlinks=True)
    except fileio.UnsafePathError as e:
        raise DataError(f"{printable(path)}: {e.strerror}; data must be a regular file") from None
    except FileNotFoundError:
        raise DataError(f"{printable(path)}: no such file (a dangling link?)") from None
    except OSError as e:
        raise DataError(f"cannot open {printable(path)} ({e.strerror or e})") from None


class _Budget:
    def __init__(self, root: str, max_files: int):
        self.root, self.left, self.max_files = root, max_files, max_files

    def spend(self) -> None:
        self.left -= 1
        if self.left < 0:
            raise DataError(
                f"{printable(self.root)} holds more than {self.max_files:,} entries; refused "
                f"(raise max_files, or point --data at a smaller folder)"
            )


def scan(folder: str, root: str, budget: _Budget | None = None):
    """`(dirs, files, ignored)` of one folder, sorted, hidden entries left out: real
    sub-folders, regular files (links resolved inside `root`), and how many others."""
    dirs, files, ignored = [], [], 0
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as e:
        raise DataError(f"cannot list {printable(folder)} ({e.strerror or e})") from None
    for entry in entries:
        if budget is not None:
            budget.spend()
        if entry.name.startswith("."):
            continue
        if entry.is_symlink():
            _refuse_outside(root, entry.path)
            if os.path.isdir(entry.path):
                ignored += 1  # linked folders are not descended into (no loops)
                continue
        if entry.is_dir(follow_symlinks=False):
            dirs.append(entry.name)
        elif entry.is_file(follow_symlinks=True):
            files.append(entry.name)
        else:
            ignored += 1  # FIFOs, sockets, devices: never opened
    return dirs, files, ignored


def walk_files(folder: str, root: str, max_files: int, max_depth: int, budget=None):
    """Every regular file under `folder` (sorted, recursively, bounded): `(paths,
    ignored)`."""
    budget = budget or _Budget(root, max_files)
    found, ignored = [], 0
    stack = [(folder, 0)]
    while stack:
        current, depth = stack.pop()
        dirs, files, other = scan(current, root, budget)
        ignored += other
        found += [os.path.join(current, f) for f in files]
        if dirs and depth + 1 > max_depth:
            raise DataError(
                f"{printable(current)} is more than {max_depth} folder levels below "
                f"{printable(root)}; refused"
            )
        stack += [(os.path.join(current, d), depth + 1) for d in reversed(dirs)]
    return sorted(found), ignored


def new_budget(root: str, max_files: int) -> _Budget:
    return _Budget(root, max_files)
