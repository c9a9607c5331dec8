"""Atomic saving and inspected, safe-mode loading of `.keras` files."""

from __future__ import annotations

import contextlib
import os
import tempfile
import warnings
import zipfile
from typing import Any, Iterator, Mapping

import keras

from keras_bigmodel.security import (
    ModelFileError,
    UnsafeModelError,
    inspect_archive,
    is_hdf5,
)

__all__ = ["ModelFileError", "UnsafeModelError", "atomic_path", "copy_model", "load_model",
           "save_model"]


def _check_path(path: Any, arg: str = "path") -> str:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(
            f"`{arg}` must be a str or os.PathLike. Received: {arg}={path!r} "
            f"of type {type(path).__name__}"
        )
    return os.fspath(path)


@contextlib.contextmanager
def atomic_path(path: str, suffix: str = "") -> Iterator[str]:
    """Yields a temporary path beside `path`; renames it onto `path` on success.

    If the body raises (an exception in serialization, a full disk, Ctrl-C), the
    temporary file is removed and whatever was at `path` before is untouched.
    """
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"Cannot save to {path!r}: the directory {directory!r} does not exist")
    fd, tmp = tempfile.mkstemp(
        dir=directory, prefix=f".{os.path.basename(path)}.", suffix=f".tmp{suffix}"
    )
    os.close(fd)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 is not what a saved file should have
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


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

    The model is written to a temporary file in the same directory, flushed to
    disk and renamed onto `path`, so a failed save (an exception during
    serialization, a full disk, an interrupt) leaves an existing file intact and
    no stray files behind.

    Args:
        model: A `keras.Model`.
        path: Destination path; must end in `.keras`.
        overwrite: If `False`, refuse to replace an existing file.

    Returns:
        The path written, as a string.

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
    if not overwrite and os.path.exists(path):
        raise FileExistsError(f"{path!r} exists and overwrite=False")
    with atomic_path(path, suffix=".keras") as tmp:
        keras.saving.save_model(model, tmp)
    return path


def load_model(
    path: str | os.PathLike,
    custom_objects: Mapping[str, Any] | None = None,
    compile: bool = True,
    trusted: bool = False,
) -> keras.Model:
    """Loads a `.keras` file after checking that it holds nothing but a model.

    The archive is inspected before anything is deserialized (see
    `keras_bigmodel.security`): members, sizes, the weights file and every
    object in the config are checked against an allow-list, and the file is then
    loaded by Keras in `safe_mode` from the same open file, so what was checked
    is what is loaded.

    Args:
        path: Path of a `.keras` file.
        custom_objects: Extra classes or functions you trust, as for
            `keras.saving.load_model`.
        compile: Whether to compile the model as it was saved.
        trusted: Only for legacy HDF5 (`.h5`) full-model files, which Keras
            cannot load safely: pass `True` if and only if you trust the file's
            author, since such a file can run code.

    Returns:
        The `keras.Model`.

    Raises:
        UnsafeModelError: The file was refused (a `ValueError`); nothing in it
            was executed and nothing was written.
        ModelFileError: The file is corrupt or not a Keras model (a `ValueError`).
        FileNotFoundError: There is no file at `path`.
    """
    path = _check_path(path)
    if custom_objects is not None and not isinstance(custom_objects, Mapping):
        raise TypeError(
            f"`custom_objects` must be a dict or None. Received: custom_objects={custom_objects!r}"
        )
    if not isinstance(trusted, bool):
        raise TypeError(f"`trusted` must be a bool. Received: trusted={trusted!r}")
    if os.path.isdir(path):
        raise ModelFileError(
            f"{path!r} is a directory; load a .keras file (or use zoo.load_preset for a "
            f"preset directory)"
        )
    if not os.path.exists(path):
        raise FileNotFoundError(f"No model file at {path!r}")
    with open(path, "rb") as f:
        head = f.read(8)
        f.seek(0)
        if is_hdf5(head):
            return _load_legacy_h5(path, custom_objects, compile, trusted)
        report = inspect_archive(f, custom_objects=custom_objects, where=path)
        f.seek(0)
        if report.rewritten_config is None:
            return _load_checked(f, path, custom_objects, compile)
        with _with_config(f, report.rewritten_config) as patched:
            return _load_checked(patched, path, custom_objects, compile)


@contextlib.contextmanager
def _with_config(f, config_json: bytes):
    """A copy of the archive `f` whose config.json is `config_json` (in memory up to
    64 MiB, then in an anonymous temporary file)."""
    with tempfile.SpooledTemporaryFile(max_size=64 * 1024 * 1024) as copy:
        with zipfile.ZipFile(f) as source, zipfile.ZipFile(copy, "w") as target:
            for info in source.infolist():
                data = config_json if info.filename == "config.json" else source.read(info)
                target.writestr(info, data)
        copy.seek(0)
        yield copy


def _load_checked(f, path, custom_objects, compile):
    try:
        try:
            from keras.src.saving import saving_lib
        except ImportError:  # a Keras without this module: load by path instead
            return keras.saving.load_model(
                path, custom_objects=custom_objects, compile=compile, safe_mode=True
            )
        # Loading from the very file object we inspected closes the window in which
        # the file could be swapped between the check and the load.
        with warnings.catch_warnings():
            # A compiled model saved before training has an unbuilt optimizer (its 2
            # variables: iterations, learning rate); Keras warns that the rebuilt one
            # has more, though there was no state to restore.
            warnings.filterwarnings(
                "ignore", message=r"Skipping variable loading for optimizer .* the saved "
                r"optimizer has 2 variables")
            return saving_lib.load_model(
                f, custom_objects=custom_objects, compile=compile, safe_mode=True
            )
    except (UnsafeModelError, MemoryError):
        raise
    except Exception as e:
        raise ModelFileError(f"{path}: Keras could not rebuild the model: {e}") from e


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
