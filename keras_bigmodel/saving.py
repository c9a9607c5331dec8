"""Atomic saving and checked, bounded, safe-mode loading of `.keras` files.

`save_model` writes through `fileio.atomic_write`: a save that fails or is killed leaves
the previous file intact. `load_model` opens the file once (a regular file only), runs
`keras_bigmodel.security.inspect_archive` on it, and has Keras load that same open file
under `security.loading_guard` (safe mode forced, no import of a module the file names).
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
import warnings
import zipfile
from collections.abc import Iterator, Mapping
from typing import IO, Any

import keras

from keras_bigmodel import _compat, fileio
from keras_bigmodel.fileio import atomic_path
from keras_bigmodel.security import (
    LoadLimits,
    ModelFileError,
    ModelTooLargeError,
    UnsafeModelError,
    inspect_archive,
    is_hdf5,
    loading_guard,
    resolve_limits,
)
from keras_bigmodel.security.names import unsafe_name_reason

__all__ = [
    "LoadLimits",
    "ModelFileError",
    "ModelTooLargeError",
    "UnsafeModelError",
    "atomic_path",
    "copy_model",
    "load_model",
    "load_model_from_file",
    "save_model",
]


def _check_path(path: Any, arg: str = "path") -> str:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(
            f"`{arg}` must be a str or os.PathLike. Received: {arg}={path!r} "
            f"of type {type(path).__name__}"
        )
    return os.fspath(path)


def copy_model(model: keras.Model, name: str | None = None):
    """A weight-for-weight copy of `model` (optionally renamed), uncompiled, and the
    compile config it had (or None).

    `keras.models.clone_model` of a compiled model builds optimizer variables too;
    saved, they make an int8 file 2.25x the float32 one instead of 0.25x. So the copy
    is rebuilt from the serialized model without its compile config.
    """
    serialized = keras.saving.serialize_keras_object(model)
    compile_config = serialized.pop("compile_config", None)
    if name is not None:
        serialized["config"]["name"] = name
    copy = keras.saving.deserialize_keras_object(serialized)
    copy.set_weights(model.get_weights())
    return copy, compile_config


def save_model(model: keras.Model, path: str | os.PathLike, overwrite: bool = True) -> str:
    """Saves `model` to a `.keras` file atomically.

    Keras writes the archive into a new temporary file beside `path` (never through a
    symbolic link), which is flushed to disk and renamed onto `path`. A failed save
    (an exception, a full disk, an interrupt, the process killed) leaves an existing
    file intact and at most one temporary file, which the next save into that
    directory removes.

    Args:
        model: A `keras.Model`.
        path: Destination path; must end in `.keras`.
        overwrite: If `False`, refuse to replace an existing file.

    Returns:
        The path written, as a string.

    Raises:
        TypeError / ValueError: Bad arguments.
        FileNotFoundError: The directory does not exist.
        FileExistsError: `overwrite=False` and `path` exists.

    Example:

    ```python
    import keras_bigmodel as kbm
    kbm.save_model(model, "model.keras")
    restored = kbm.load_model("model.keras")
    ```
    """
    if not isinstance(model, keras.Model):
        raise TypeError(
            f"`model` must be a keras.Model. Received: model of type {type(model).__name__}"
        )
    path = _check_path(path)
    if not path.endswith(".keras"):
        raise ValueError(f"`path` must end in '.keras'. Received: path={path!r}")
    if not isinstance(overwrite, bool):
        raise TypeError(f"`overwrite` must be a bool. Received: overwrite={overwrite!r}")
    for layer in _compat.all_layers(model):
        reason = unsafe_name_reason(layer.name)
        if reason:
            raise ValueError(
                f"`model` holds a layer named {layer.name!r}, which {reason}; Keras builds "
                "asset and weight paths from layer names, so it cannot be saved safely. "
                "Rename the layer (letters, digits, '_', '-', '.')"
            )
    with fileio.atomic_write(path, overwrite=overwrite) as f:
        _compat.save_model_to_file(model, f)
    return path


def load_model(
    path: str | os.PathLike,
    custom_objects: Mapping[str, Any] | None = None,
    compile: bool = True,
    trusted: bool = False,
    limits: LoadLimits | None = None,
    **limit_overrides: int | None,
) -> keras.Model:
    """Loads a `.keras` file after checking that it holds nothing but a model that fits
    the loading limits.

    The archive is inspected before anything is deserialized (see
    `keras_bigmodel.security`): members, sizes, the weights file and every object in
    the config are checked against an allow-list and the `LoadLimits`, the model's
    variables are counted without allocating them, and Keras then loads the same open
    file with safe mode forced on, unable to import any module the file names.

    Args:
        path: Path of a `.keras` file.
        custom_objects: Extra classes or functions you trust, as for
            `keras.saving.load_model`.
        compile: Whether to compile the model as it was saved.
        trusted: Only for legacy HDF5 (`.h5`) full-model files, which Keras cannot load
            safely: pass `True` if and only if you trust the file's author, since such a
            file can run code. It does not lift any check on `.keras` files.
        limits: A `keras_bigmodel.LoadLimits` (default: `LoadLimits()`).
        **limit_overrides: Individual limits to raise (or lower), e.g.
            `max_params=2_000_000_000`; see `LoadLimits` for the names.

    Returns:
        The `keras.Model`.

    Raises:
        UnsafeModelError: The file was refused (a `ValueError`); nothing in it was
            executed and nothing was written. `ModelTooLargeError`, a subclass, names
            the limit that was hit.
        ModelFileError: The file is corrupt or not a Keras model (a `ValueError`).
        FileNotFoundError: There is no file at `path`.
        TypeError: Bad arguments (an unknown limit name, for instance).

    Example:

    ```python
    model = kbm.load_model("model.keras")
    big = kbm.load_model("big.keras", max_params=2_000_000_000)
    ```
    """
    path = _check_path(path)
    custom_objects = _check_custom_objects(custom_objects)
    if not isinstance(trusted, bool):
        raise TypeError(f"`trusted` must be a bool. Received: trusted={trusted!r}")
    limits = resolve_limits(limits, limit_overrides)
    if os.path.isdir(path):
        raise ModelFileError(
            f"{path!r} is a directory; load a .keras file (or use zoo.load_preset for a "
            f"preset directory)"
        )
    if not os.path.exists(path):
        raise FileNotFoundError(f"No model file at {path!r}")
    try:
        f = fileio.open_regular(path, follow_symlinks=True, max_bytes=limits.archive_bytes)
    except fileio.UnsafePathError as e:
        raise UnsafeModelError(f"{path}: {e.strerror}") from None
    with f:
        head = f.read(8)
        f.seek(0)
        if is_hdf5(head):
            return _load_legacy_h5(path, custom_objects, compile, trusted)
        return _load_from_file(f, path, custom_objects, compile, limits)


def _check_custom_objects(custom_objects):
    if custom_objects is not None and not isinstance(custom_objects, Mapping):
        raise TypeError(
            f"`custom_objects` must be a dict or None. Received: custom_objects={custom_objects!r}"
        )
    return custom_objects


def load_model_from_file(
    f: IO[bytes],
    *,
    where: str,
    custom_objects: Mapping[str, Any] | None = None,
    compile: bool = True,
    limits: LoadLimits | None = None,
) -> keras.Model:
    """`load_model` for an already open, seekable `.keras` file (e.g. one whose hash was
    just checked from the same descriptor, as `zoo.load_preset` does).

    Args:
        f: The open binary file (left open; read from its start).
        where: How to name the file in errors.
        custom_objects, compile, limits: As for `load_model`.

    Returns:
        The `keras.Model`.

    Raises:
        UnsafeModelError: As for `load_model` (so are the other errors).
    """
    return _load_from_file(
        f, where, _check_custom_objects(custom_objects), compile, resolve_limits(limits)
    )


def _load_from_file(f, where: str, custom_objects, compile: bool, limits: LoadLimits):
    """The load itself, for arguments already checked (and limits resolved) once."""
    f.seek(0)
    report = inspect_archive(f, custom_objects=custom_objects, where=where, limits=limits)
    f.seek(0)
    if report.rewritten_config is None:
        return _load_checked(f, where, report, custom_objects, compile)
    with _with_config(f, report.rewritten_config) as patched:
        return _load_checked(patched, where, report, custom_objects, compile)


class _Named(io.BufferedReader):
    """A reader whose `name` only tells Keras where scratch files may go.

    For weights over half the memory it assumes (1 GB without psutil), Keras extracts
    them to a temporary directory beside `fileobj.name`; this puts it in the system's
    temporary directory, not in the model file's (which a load must not write to)."""


def _keras_view(f: IO[bytes]) -> IO[bytes]:
    """`f` as Keras reads it: for an open file, a second reader on the same descriptor
    whose `name` points scratch files to the system's temporary directory; an in-memory
    or spooled copy as it is (asking a spooled file for its descriptor writes it out)."""
    if not isinstance(f, (io.BufferedReader, io.FileIO)):
        return f
    raw = io.FileIO(f.fileno(), "rb", closefd=False)
    raw.name = os.path.join(tempfile.gettempdir(), "keras-bigmodel-load.keras")
    view = _Named(raw)
    view.seek(f.tell())
    return view


@contextlib.contextmanager
def _with_config(f, config_json: bytes) -> Iterator[IO[bytes]]:
    """A copy of the archive `f` whose config.json is `config_json` (in memory up to
    64 MiB, then in an anonymous temporary file)."""
    with tempfile.SpooledTemporaryFile(max_size=64 * 1024 * 1024) as copy:
        with zipfile.ZipFile(f) as source, zipfile.ZipFile(copy, "w") as target:
            for info in source.infolist():
                if info.filename == "config.json":
                    target.writestr(info, config_json)
                    continue
                with source.open(info) as src, target.open(info, "w", force_zip64=True) as dst:
                    while chunk := src.read(1024 * 1024):
                        dst.write(chunk)
        copy.seek(0)
        yield copy


def _load_checked(f, where: str, report, custom_objects, compile):
    view = _keras_view(f)
    try:
        with loading_guard(report.modules, where) as blocker:
            try:
                with warnings.catch_warnings():
                    # A compiled model saved before training has an unbuilt optimizer (its
                    # 2 variables: iterations, learning rate); Keras warns that the
                    # rebuilt one has more, though there was no state to restore.
                    warnings.filterwarnings(
                        "ignore",
                        message=r"Skipping variable loading for optimizer .* the "
                        r"saved optimizer has 2 variables",
                    )
                    return _compat.load_model_from_file(
                        view, custom_objects=custom_objects, compile=compile, safe_mode=True
                    )
            except UnsafeModelError:
                raise
            except (MemoryError, RecursionError) as e:
                what = "memory" if isinstance(e, MemoryError) else "recursion depth"
                size = f" ({report.declared.params:,} parameters)" if report.declared else ""
                raise ModelFileError(
                    f"{where}: Keras ran out of {what} rebuilding the model{size}"
                ) from None
            except Exception as e:
                if blocker.refused:
                    raise UnsafeModelError(
                        f"{where}: loading tried to import {blocker.refused[0]!r}; refused"
                    ) from None
                raise ModelFileError(f"{where}: Keras could not rebuild the model: {e}") from e
    finally:
        if view is not f:
            view.detach()


def _load_legacy_h5(path, custom_objects, compile, trusted):
    if not trusted:
        raise UnsafeModelError(
            f"{path} is a legacy HDF5 full-model file. Keras does not apply safe_mode to "
            f"these (CVE-2025-9905), so loading one can run code; refused. Pass "
            f"trusted=True only if you trust its author, or re-save it as .keras."
        )
    if not path.endswith((".h5", ".hdf5")):
        raise ModelFileError(f"{path} is an HDF5 file; Keras loads those only as .h5/.hdf5")
    try:
        return keras.saving.load_model(path, custom_objects=custom_objects, compile=compile)
    except Exception as e:
        raise ModelFileError(f"{path}: Keras could not load this HDF5 model: {e}") from e
