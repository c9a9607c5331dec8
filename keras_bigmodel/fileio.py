"""Safe file primitives: atomic writes that never follow symbolic links, bounded reads of
regular files only, and the clean-up of temporary files left by killed writers.

Every file keras-bigmodel writes (models, preset metadata, the command line's metrics,
pictures and CSV files) goes through `atomic_write` or `atomic_path`:

- the data goes to a new temporary file beside the destination, created with
  `O_CREAT | O_EXCL | O_NOFOLLOW` (`tempfile.mkstemp`), flushed and `fsync`-ed, then
  renamed onto the destination. `rename` replaces the directory entry: a symbolic link
  at the destination is replaced, never written through, and an existing file is either
  the old one or the new one, never a mixture;
- the writer holds an exclusive `flock` on its temporary file until the rename, so a
  save killed at any point (even by SIGKILL) leaves the previous file intact plus at
  most one temporary file, named `.<name>.<random>.kbm-tmp[.<ext>]`, which the next
  write into that directory removes (its lock is free: its writer is dead).

Every file keras-bigmodel reads from a place a user names (model files, preset
directories) goes through `open_regular`: `O_NOFOLLOW` where asked for, `O_NONBLOCK`
so that a FIFO cannot block the open, and a check that the result is a regular file of
bounded size (a device such as `/dev/zero` or a `/proc` file is refused, not read).
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import re
import stat
import tempfile
import time
from collections.abc import Iterator
from typing import IO, Any

__all__ = [
    "FORMULA_PREFIXES",
    "TEMP_MARKER",
    "UnsafePathError",
    "atomic_path",
    "atomic_write",
    "clean_stale_temporaries",
    "open_regular",
    "read_bounded",
    "spreadsheet_safe",
    "write_csv",
    "write_json_atomic",
]

try:  # POSIX advisory locks mark a temporary file as belonging to a live writer
    import fcntl
except ImportError:  # pragma: no cover (Windows)
    fcntl = None

TEMP_MARKER = ".kbm-tmp"
# `.name.<8 random chars from mkstemp>.kbm-tmp` plus an optional extension
_TEMP_NAME = re.compile(
    r"^\..+\.[a-z0-9_]{8}" + re.escape(TEMP_MARKER) + r"(\.[A-Za-z0-9]{1,16})?$"
)
# Without flock (Windows), a temporary file is only presumed dead after this long.
_UNLOCKED_STALE_SECONDS = 24 * 3600


class UnsafePathError(OSError, ValueError):
    """A path that must name a regular file names something else (a symbolic link, a
    directory, a FIFO, a device), or a file larger than allowed."""


# ----------------------------------------------------------------------- csv cells
# What makes a spreadsheet run a cell as a formula (OWASP's CSV injection list).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(cell: Any) -> str:
    """A CSV cell that a spreadsheet shows as text, never runs: a value starting with
    `=`, `+`, `-`, `@`, tab or carriage return gets a leading `'` (unless it is a plain
    number, like `-0.5`); undecodable characters of file names become escapes.

    Example:

    ```python
    spreadsheet_safe("=HYPERLINK(...)")     # "'=HYPERLINK(...)"
    spreadsheet_safe("-0.25")               # "-0.25"
    ```
    """
    text = cell if isinstance(cell, str) else str(cell)
    text = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    if text.startswith(FORMULA_PREFIXES):
        try:
            float(text)
        except ValueError:
            return "'" + text
    return text


def write_csv(path: str | os.PathLike, header: list, rows) -> str:
    """Writes a CSV atomically, every cell through `spreadsheet_safe`. Returns the path."""
    import csv

    with atomic_write(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow([spreadsheet_safe(c) for c in header])
        for row in rows:
            writer.writerow([spreadsheet_safe(c) for c in row])
    return os.fspath(path)


# ------------------------------------------------------------------------- reading
def open_regular(
    path: str | os.PathLike,
    *,
    follow_symlinks: bool = False,
    max_bytes: int | None = None,
) -> IO[bytes]:
    """Opens `path` for binary reading if it is a regular file of at most `max_bytes`.

    Args:
        path: The file.
        follow_symlinks: If False (the default), a symbolic link at `path` is refused
            (`O_NOFOLLOW` where the platform has it, an `lstat` check otherwise).
        max_bytes: Refuse a file larger than this (None: no limit).

    Returns:
        A binary file object positioned at the start; the caller closes it.

    Raises:
        UnsafePathError: `path` is a symbolic link (when not followed), not a regular
            file, or too large.
        FileNotFoundError / PermissionError: As for `open`.

    Example:

    ```python
    with open_regular("preset/preset.json", max_bytes=1 << 20) as f:
        data = f.read()
    ```
    """
    path = os.fspath(path)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    flags |= getattr(os, "O_BINARY", 0)
    nofollow = getattr(os, "O_NOFOLLOW", 0)
    if not follow_symlinks:
        if not nofollow and os.path.islink(path):  # pragma: no cover (no O_NOFOLLOW)
            raise UnsafePathError(errno.ELOOP, "is a symbolic link; refused", path)
        flags |= nofollow
    try:
        fd = os.open(path, flags)
    except OSError as e:
        if e.errno == errno.ELOOP and not follow_symlinks:
            raise UnsafePathError(errno.ELOOP, "is a symbolic link; refused", path) from None
        if e.errno in (errno.ENXIO, errno.EISDIR):  # a FIFO without writer, a directory
            raise UnsafePathError(e.errno, "is not a regular file; refused", path) from None
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UnsafePathError(errno.EINVAL, "is not a regular file; refused", path)
        if max_bytes is not None and info.st_size > max_bytes:
            raise UnsafePathError(
                errno.EFBIG,
                f"is {info.st_size} bytes, over the {max_bytes}-byte limit",
                path,
            )
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_bounded(
    source: str | os.PathLike | IO[bytes],
    max_bytes: int,
    *,
    follow_symlinks: bool = False,
) -> bytes:
    """All bytes of a regular file, refusing one longer than `max_bytes` (checked on the
    bytes actually read, so a file that grows after it was opened is refused too).

    Args:
        source: A path (opened with `open_regular`) or an open binary file.
        max_bytes: The largest size accepted.
        follow_symlinks: As for `open_regular`.

    Returns:
        The file's bytes.

    Raises:
        UnsafePathError: Not a regular file, a refused symbolic link, or too large.

    Example:

    ```python
    raw = read_bounded("preset/preset.json", 1 << 20)
    ```
    """
    if isinstance(source, (str, os.PathLike)):
        with open_regular(source, follow_symlinks=follow_symlinks, max_bytes=max_bytes) as f:
            return read_bounded(f, max_bytes)
    data = source.read(max_bytes + 1)
    if len(data) > max_bytes:
        name = getattr(source, "name", "<file>")
        raise UnsafePathError(errno.EFBIG, f"is larger than the {max_bytes}-byte limit", name)
    return data


# ------------------------------------------------------------------------- writing
def _check_destination(path: str, overwrite: bool) -> str:
    directory = os.path.dirname(os.path.abspath(path)) or "."
    if not os.path.isdir(directory):
        raise FileNotFoundError(
            errno.ENOENT,
            f"Cannot write {path!r}: the directory {directory!r} does not exist",
        )
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return directory
    if stat.S_ISDIR(info.st_mode):
        raise IsADirectoryError(errno.EISDIR, "Cannot write a file over a directory", path)
    if not overwrite:
        raise FileExistsError(errno.EEXIST, "exists and overwrite=False", path)
    return directory


def _lock(fd: int) -> None:
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def _new_temporary(directory: str, base: str, suffix: str) -> tuple[int, str]:
    """A new locked temporary file; retried if a concurrent clean-up removed it between
    its creation and its lock (its inode no longer matches the name)."""
    for _ in range(3):
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{base}.", suffix=TEMP_MARKER + suffix)
        try:
            _lock(fd)
            if os.stat(tmp, follow_symlinks=False).st_ino == os.fstat(fd).st_ino:
                return fd, tmp
        except FileNotFoundError:
            pass
        except BaseException:
            os.close(fd)
            with contextlib.suppress(FileNotFoundError):
                os.remove(tmp)
            raise
        os.close(fd)
    raise OSError(
        errno.EAGAIN,
        "Could not create a temporary file (removed concurrently)",
        directory,
    )


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def _fsync_directory(path: str) -> None:
    with contextlib.suppress(OSError):  # make the rename itself durable (POSIX only)
        dir_fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _finish(fd: int, tmp: str, path: str, overwrite: bool) -> None:
    os.fsync(fd)
    if hasattr(os, "fchmod"):
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp's 0600 is not what a saved file gets
    if overwrite:
        os.replace(tmp, path)  # replaces a symbolic link at `path`; never follows it
    else:
        try:
            os.link(tmp, path)  # fails if anything (even a dangling link) is at `path`
        except FileExistsError:
            raise FileExistsError(errno.EEXIST, "exists and overwrite=False", path) from None
        except OSError as e:  # pragma: no cover (file systems without hard links)
            if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EXDEV):
                raise
            if os.path.lexists(path):
                raise FileExistsError(errno.EEXIST, "exists and overwrite=False", path) from None
            os.replace(tmp, path)
        else:
            os.remove(tmp)
    _fsync_directory(path)


@contextlib.contextmanager
def _temporary(path: str | os.PathLike, suffix: str, overwrite: bool) -> Iterator[tuple[int, str]]:
    path = os.fspath(path)
    directory = _check_destination(path, overwrite)
    clean_stale_temporaries(directory)
    fd, tmp = _new_temporary(directory, os.path.basename(path), suffix)
    try:
        yield fd, tmp
        _finish(fd, tmp, path, overwrite)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise
    finally:
        os.close(fd)  # releases the lock


@contextlib.contextmanager
def atomic_write(
    path: str | os.PathLike,
    mode: str = "wb",
    *,
    encoding: str | None = None,
    newline: str | None = None,
    overwrite: bool = True,
) -> Iterator[IO[Any]]:
    """Writes `path` atomically through a file object.

    The body writes to a new temporary file in the destination's directory; on success
    it is flushed, `fsync`-ed and renamed onto `path`. If the body raises, or the
    process dies, `path` keeps its previous content.

    The file object's `name` is a placeholder in the system's temporary directory, so
    that a library which puts scratch files beside `name` (Keras does, for big models)
    puts them there rather than beside the destination.

    Args:
        path: The destination. Its directory must exist. A symbolic link at `path` is
            replaced by the new file, never written through.
        mode: `"wb"` (bytes) or `"w"` (text).
        encoding: Text encoding for `"w"` (default UTF-8).
        newline: As for `open`, for `"w"` (e.g. `""` for the csv module).
        overwrite: If False, refuse (`FileExistsError`) when anything exists at `path`;
            checked atomically when the file is put in place.

    Yields:
        The open file object.

    Raises:
        FileNotFoundError: The directory does not exist.
        IsADirectoryError: `path` is a directory.
        FileExistsError: `overwrite=False` and `path` exists.

    Example:

    ```python
    with atomic_write("out/metrics.json", "w") as f:
        json.dump(metrics, f)
    ```
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"`mode` must be 'wb' or 'w'. Received: mode={mode!r}")
    with _temporary(path, "", overwrite) as (fd, _):
        raw = io.FileIO(fd, "r+b", closefd=False)
        raw.name = os.path.join(tempfile.gettempdir(), os.path.basename(os.fspath(path)))
        binary = io.BufferedRandom(raw)
        stream = (
            binary
            if mode == "wb"
            else io.TextIOWrapper(binary, encoding=encoding or "utf-8", newline=newline)
        )
        try:
            yield stream
            stream.flush()
        finally:
            if mode == "w":
                stream.detach()
            binary.detach()


@contextlib.contextmanager
def atomic_path(
    path: str | os.PathLike, suffix: str = "", *, overwrite: bool = True
) -> Iterator[str]:
    """Yields a new temporary path beside `path`, renamed onto `path` on success.

    For writers that only take a file name (TFLite, some exporters); prefer
    `atomic_write` when the writer accepts a file object. The temporary file exists
    (empty, created without following links) when the body starts.

    Args:
        path: The destination (its directory must exist).
        suffix: Extension for the temporary name (e.g. `".png"`), for writers that
            choose a format from the name.
        overwrite: As for `atomic_write`.

    Yields:
        The temporary path to write.

    Raises:
        FileExistsError: As for `atomic_write` (so are the other errors).

    Example:

    ```python
    with atomic_path("model.tflite") as tmp:
        with open(tmp, "wb") as f:
            f.write(flatbuffer)
    ```
    """
    with _temporary(path, suffix, overwrite) as (_, tmp):
        yield tmp


def write_json_atomic(path: str | os.PathLike, obj: Any, *, indent: int = 2, **kwargs) -> str:
    """Writes `obj` as JSON to `path` atomically (see `atomic_write`); returns the path.

    Example:

    ```python
    write_json_atomic("out/metrics.json", {"accuracy": 0.93})
    ```
    """
    with atomic_write(path, "w") as f:
        json.dump(obj, f, indent=indent, **kwargs)
        f.write("\n")
    return os.fspath(path)


# ------------------------------------------------------------------------ clean-up
def _remove_if_dead(path: str, uid: int | None) -> bool:
    info = os.lstat(path)
    if not stat.S_ISREG(info.st_mode) or (uid is not None and info.st_uid != uid):
        return False
    if fcntl is None:  # pragma: no cover (Windows)
        if time.time() - info.st_mtime <= _UNLOCKED_STALE_SECONDS:
            return False
        os.remove(path)
        return True
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | os.O_NONBLOCK)
    try:
        if os.fstat(fd).st_ino != info.st_ino:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False  # a live writer holds it
        os.remove(path)
        return True
    finally:
        os.close(fd)


def clean_stale_temporaries(directory: str | os.PathLike) -> list[str]:
    """Removes the temporary files of writers that died in `directory`.

    A candidate must match keras-bigmodel's temporary-file name, be a regular file
    owned by this user (never a link), and have no live writer: its writer's `flock`
    is released when that process ends, however it ends. Failures are ignored: this
    is housekeeping.

    Args:
        directory: Where to look (not recursively).

    Returns:
        The paths removed.

    Example:

    ```python
    clean_stale_temporaries("checkpoints")
    ```
    """
    removed = []
    try:
        names = os.listdir(directory)
    except OSError:
        return removed
    uid = os.geteuid() if hasattr(os, "geteuid") else None
    for name in names:
        if TEMP_MARKER not in name or not _TEMP_NAME.match(name):
            continue
        path = os.path.join(directory, name)
        with contextlib.suppress(OSError):
            if _remove_if_dead(path, uid):
                removed.append(path)
    return removed
